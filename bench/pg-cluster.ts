import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import pg from 'pg';

/**
 * A PostgreSQL cluster of the bench's own, with production settings: autovacuum on, defaults
 * otherwise. The machine's shared server runs with a CI drop-in (autovacuum off), which no
 * production deployment runs; a relay or write path whose cost grows with dead tuples would look
 * worse (or better) there than it is. Needs the Debian postgresql-common tools and root.
 *
 * BENCH_CLUSTER=off skips it (the bench then measures the machine's server only).
 */
export interface BenchCluster {
  /** Admin URL (database `postgres`). */
  url: string;
  label: string;
  stop(): Promise<void>;
}

const version = () => readdirSync('/etc/postgresql').sort().at(-1)!;
const run = (command: string, args: string[]) => execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

export async function startBenchCluster(name: string, port: number): Promise<BenchCluster | null> {
  if (process.env.BENCH_CLUSTER === 'off') return null;
  const v = version();
  // A cluster left behind by an interrupted run.
  if (run('pg_lsclusters', ['-h']).split('\n').some((line) => line.split(/\s+/)[1] === name)) {
    run('pg_dropcluster', ['--stop', v, name]);
  }
  run('pg_createcluster', [v, name, '--port', String(port), '--', '--auth=trust']);
  run('pg_ctlcluster', ['--skip-systemctl-redirect', v, name, 'start']);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const dropped = { done: false };
  const drop = () => {
    if (dropped.done) return;
    dropped.done = true;
    try {
      run('pg_dropcluster', ['--stop', v, name]);
    } catch {
      // Already gone.
    }
  };
  process.once('exit', drop);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const { rows } = await client.query<{ autovacuum: string }>('show autovacuum');
  await client.end();
  return {
    url,
    label: `own cluster :${port} (PostgreSQL ${v}, autovacuum ${rows[0]!.autovacuum})`,
    stop: async () => drop(),
  };
}

/**
 * The servers a bench reports: its own cluster first (when it can start one), then the machine's.
 * BENCH_TARGETS=cluster or =machine keeps one of them (as bench:writes reads it).
 */
export async function benchServers(name: string, port: number, machineUrl: string) {
  const targets = process.env.BENCH_TARGETS?.split(',') ?? ['cluster', 'machine'];
  const cluster = targets.includes('cluster') ? await startBenchCluster(name, port) : null;
  const machine = { url: machineUrl, label: `machine server ${new URL(machineUrl).host} (autovacuum ${await autovacuumOf(machineUrl)})` };
  const servers = [...(cluster ? [cluster] : []), ...(targets.includes('machine') ? [machine] : [])];
  return { servers, stop: async () => cluster?.stop() };
}

async function autovacuumOf(url: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ autovacuum: string }>('show autovacuum')).rows[0]!.autovacuum;
  } finally {
    await client.end();
  }
}
