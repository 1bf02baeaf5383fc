import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The server the suite runs against. Tests create and drop their own databases on it. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

export function databaseUrl(name: string): string {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Runs statements on the maintenance database (CREATE/DROP DATABASE cannot run in a transaction). */
export async function withAdminClient<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

export function uniqueDatabaseName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

/** A plain pg client on a test database, for checking what is stored and for injecting faults. */
export async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

/**
 * Makes every insert into `table` fail inside the database, as a full disk or a constraint would,
 * so a test can show what the rest of the transaction does. Returns the undo.
 */
export async function failInsertsInto(client: pg.Client, table: string): Promise<() => Promise<void>> {
  const fn = `fail_insert_${table}`;
  await client.query(`
    create or replace function ${fn}() returns trigger language plpgsql as $$
    begin raise exception 'injected failure on insert into ${table}'; end $$`);
  await client.query(`create trigger ${fn} before insert on ${table} for each row execute function ${fn}()`);
  return async () => {
    await client.query(`drop trigger ${fn} on ${table}`);
    await client.query(`drop function ${fn}()`);
  };
}

/** Runs `work` while every insert into `table` fails (see failInsertsInto), and returns its result. */
export async function whileInsertsFail<T>(client: pg.Client, table: string, work: () => Promise<T>): Promise<T> {
  const undo = await failInsertsInto(client, table);
  try {
    return await work();
  } finally {
    await undo();
  }
}
