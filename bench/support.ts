import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createOrm, migrateToLatest, type Orm } from '../src/platform/db/orm.ts';

/** Benchmarks run against the local PostgreSQL, each on a database of its own that is dropped at the end. */
export const SERVER_URL = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

export function databaseUrl(name: string, serverUrl = SERVER_URL) {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function withAdmin<T>(work: (client: pg.Client) => Promise<T>, serverUrl = SERVER_URL): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A database of its own on `serverUrl` (default: the machine's server), migrated unless `migrate: false`. */
export async function createBenchDatabase(prefix: string, serverUrl = SERVER_URL, { migrate = true } = {}) {
  const name = `${prefix}_${Date.now().toString(36)}`;
  await withAdmin((c) => c.query(`create database "${name}"`), serverUrl);
  const url = databaseUrl(name, serverUrl);
  if (migrate) {
    const orm = await createOrm({ kind: 'postgresql', url });
    await migrateToLatest(orm);
    await orm.close();
  }
  return {
    name,
    url,
    drop: () => withAdmin(async (c) => void (await c.query(`drop database if exists "${name}" with (force)`)), serverUrl),
  };
}

export const API_SERVER_SCRIPT = fileURLToPath(new URL('../src/main.ts', import.meta.url));
export const BARE_SERVER_SCRIPT = fileURLToPath(new URL('./peers/bare-server.ts', import.meta.url));

/**
 * Runs a server script (default: this project's `src/main.ts`) in its own process with `env`, as
 * in production, so the bench's clients do not share its event loop. Resolves once it logs
 * "is listening" with its GraphQL URL.
 */
export async function startServerProcess(env: Record<string, string>, script = API_SERVER_SCRIPT, nodeArgs: string[] = []) {
  const child = spawn(process.execPath, [...nodeArgs, script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const deadline = Date.now() + 30_000;
  while (!/is listening/.test(output)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`server did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const line = output.split('\n').find((l) => l.includes('is listening'))!;
  const graphqlUrl = (JSON.parse(line) as { url: string }).url;
  return {
    graphqlUrl,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU milliseconds (user and system) a process has used so far, all its threads; 0 once it has ended (Linux). */
export function cpuMsOf(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND) * 1000; // utime, stime
  } catch {
    return 0;
  }
}

/**
 * CPU milliseconds used so far by every PostgreSQL process on the machine (backends and the
 * background processes): a bench that samples it around a measurement gets the database's cost of
 * the work, on top of whatever else the machine's servers did meanwhile.
 */
export function postgresCpuMs(): number {
  let ms = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'postgres') ms += cpuMsOf(Number(entry));
    } catch {
      // Ended meanwhile.
    }
  }
  return ms;
}

/** Resident set size of a process in bytes (Linux). */
export function rssOf(pid: number): number {
  const statm = readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ');
  return Number(statm[1]) * 4096;
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
