import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { TEST_DATABASE_URL } from './database.ts';
import { freePort } from './ports.ts';

export const pgbouncerFound = spawnSync('pgbouncer', ['--version'], { encoding: 'utf8' }).status === 0;

export interface PgBouncer {
  /** A postgres:// URL for `database` through the pooler. */
  url(database: string): string;
  /** SHOW STATS of the admin console: transactions served per database. */
  transactions(database: string): Promise<number>;
  stop(): Promise<void>;
}

/**
 * A PgBouncer of its own in transaction mode, in front of the test server, for `databases` (names
 * on the test server). It runs with the settings docs/operations.md#pgbouncer tells operators to
 * use; `ignore_startup_parameters` includes `options`, which the app sends (`-c jit=off`).
 */
export async function startPgBouncer(databases: string[]): Promise<PgBouncer> {
  const server = new URL(TEST_DATABASE_URL);
  const user = decodeURIComponent(server.username || 'postgres');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'chat-outbox-pgbouncer-'));
  const pidFile = join(dir, 'pgbouncer.pid');
  const logFile = join(dir, 'pgbouncer.log');
  const lines = [
    '[databases]',
    ...databases.map((name) => `${name} = host=${server.hostname} port=${server.port || 5432} dbname=${name} user=${user}`),
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${join(dir, 'userlist.txt')}`,
    'pool_mode = transaction',
    'default_pool_size = 5',
    'ignore_startup_parameters = extra_float_digits, options',
    `admin_users = ${user}`,
    `pidfile = ${pidFile}`,
    `logfile = ${logFile}`,
  ];
  writeFileSync(join(dir, 'pgbouncer.ini'), `${lines.join('\n')}\n`);
  writeFileSync(join(dir, 'userlist.txt'), `"${user}" ""\n`);

  // PgBouncer refuses to run as root ("PgBouncer should not run as root"): as root, hand the
  // folder to the postgres system user and let PgBouncer switch to it.
  const args = ['-d'];
  if (process.getuid?.() === 0) {
    const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error('running as root and there is no postgres user for PgBouncer to run as');
    chownSync(dir, uid, gid);
    for (const file of ['pgbouncer.ini', 'userlist.txt']) chownSync(join(dir, file), uid, gid);
    args.push('-u', 'postgres');
  }
  const started = spawnSync('pgbouncer', [...args, join(dir, 'pgbouncer.ini')], { encoding: 'utf8', timeout: 10_000 });
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  if (started.status !== 0) throw new Error(`pgbouncer did not start: ${started.stderr}${log()}`);

  const url = (database: string) => `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${database}`;
  // It daemonizes before it listens: wait until it answers.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url('pgbouncer') });
    try {
      await client.connect();
      await client.query('show version');
      break;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`pgbouncer is not answering: ${String(error)}\n${log()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      await client.end().catch(() => {});
    }
  }

  return {
    url,
    async transactions(database) {
      const client = new pg.Client({ connectionString: url('pgbouncer') });
      await client.connect();
      try {
        // Without parameters pg uses the simple query protocol, the only one the admin console speaks.
        const stats = await client.query('show stats');
        return Number(stats.rows.find((row) => row.database === database)?.total_xact_count ?? 0);
      } finally {
        await client.end();
      }
    },
    async stop() {
      if (existsSync(pidFile)) {
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // already gone
        }
        const until = Date.now() + 5_000;
        while (existsSync(pidFile) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
