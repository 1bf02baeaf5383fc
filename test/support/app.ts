import { inject } from 'vitest';
import { startApp, type App, type AppOverrides } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger, type Logger } from '../../src/logger.ts';
import type pg from 'pg';
import { connect, databaseUrl, quoteIdent, uniqueDatabaseName, withAdminClient } from './database.ts';

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A fresh, migrated database for one test file, cloned from the run's template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = uniqueDatabaseName('chat_outbox_test');
  const template = inject('templateDatabase');
  await withAdminClient((client) => client.query(`create database ${quoteIdent(name)} template ${quoteIdent(template)}`));
  return {
    name,
    url: databaseUrl(name),
    drop: () => withAdminClient(async (client) => void (await client.query(`drop database if exists ${quoteIdent(name)} with (force)`))),
  };
}

export interface TestApp {
  app: App;
  db: TestDatabase;
  /** Signs a bearer token for any user id. */
  token(userId: string, expiresIn?: string): Promise<string>;
  /** POSTs one GraphQL operation through the real HTTP server. */
  gql<T = any>(query: string, variables?: Record<string, unknown>, options?: { as?: string | null }): Promise<GqlResult<T>>;
  stop(): Promise<void>;
}

export interface GqlResult<T> {
  status: number;
  data?: T;
  errors?: { message: string; path?: string[]; extensions?: { code?: string; [key: string]: unknown } }[];
}

/**
 * Starts the whole app (as `npm start` does, against PostgreSQL) on a free port, on its own
 * database, or on `options.db` to run a second instance against the same one.
 */
export async function startTestApp(
  env: Record<string, string> = {},
  options: AppOverrides & { db?: TestDatabase; logger?: Logger } = {},
): Promise<TestApp> {
  const { db: shared, logger, ...overrides } = options;
  const db = shared ?? (await createTestDatabase());
  const config = loadConfig({ DATABASE_URL: db.url, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', ...env });
  const app = await startApp(config, logger ?? createLogger({ level: config.logLevel, pretty: false }), overrides);
  return {
    app,
    db,
    token: (userId, expiresIn) => app.tokens.sign(userId, expiresIn ? { expiresIn } : {}),
    async gql(query, variables, options = {}) {
      const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
      if (options.as) headers.authorization = `Bearer ${await app.tokens.sign(options.as)}`;
      const response = await fetch(app.graphqlUrl, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
      return { status: response.status, ...((await response.json()) as object) };
    },
    async stop() {
      await app.stop();
      if (!shared) await db.drop();
    },
  };
}

/**
 * startTestApp, plus a plain pg client on its database for checking what is stored and injecting
 * faults. `t.stop()` also closes the client.
 */
export async function startTestAppWithClient(...args: Parameters<typeof startTestApp>): Promise<{ t: TestApp; db: pg.Client }> {
  const t = await startTestApp(...args);
  const db = await connect(t.db.url);
  const stop = t.stop;
  t.stop = async () => {
    await db.end().catch(() => {});
    await stop();
  };
  return { t, db };
}

/** The first error's code, for asserting on rejected operations. */
export const errorCode = (result: GqlResult<unknown>) => result.errors?.[0]?.extensions?.code;
