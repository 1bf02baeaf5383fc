import pg from 'pg';
import { createOrm, migrateToLatest, type Orm } from '../src/platform/db/orm.ts';

/** Benchmarks run against the local PostgreSQL, each on a database of its own that is dropped at the end. */
export const SERVER_URL = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

export function databaseUrl(name: string) {
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: SERVER_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function createBenchDatabase(prefix: string) {
  const name = `${prefix}_${Date.now().toString(36)}`;
  await withAdmin((c) => c.query(`create database "${name}"`));
  const url = databaseUrl(name);
  const orm = await createOrm({ kind: 'postgresql', url });
  await migrateToLatest(orm);
  await orm.close();
  return {
    name,
    url,
    drop: () => withAdmin(async (c) => void (await c.query(`drop database if exists "${name}" with (force)`))),
  };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export const fmt = (n: number, digits = 2) => n.toFixed(digits);

export async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await work();
  return [result, performance.now() - start];
}

export type { Orm };
