import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, TEST_JWT_SECRET, type TestDatabase } from './support/app.ts';
import { connect } from './support/database.ts';
import { SESSION_EVENTS, subscribe } from './support/subscriber.ts';
import { seedPendingEvents, setDeliveryState } from './support/outbox-seed.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

describe('the server process (src/main.ts) on PostgreSQL and Redis', () => {
  it('starts, serves a subscription, and on SIGTERM closes everything and exits 0', async () => {
    const child = spawn(process.execPath, ['src/main.ts'], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: db.url, REDIS_URL: 'redis://127.0.0.1:6379', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', NODE_ENV: 'test', JWT_SECRET: TEST_JWT_SECRET },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const deadline = Date.now() + 20_000;
    while (!/is listening/.test(output) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const url = JSON.parse(output.split('\n').find((line) => line.includes('is listening'))!).url as string;

    // A subscription is open while the process is asked to stop.
    const token = (await promisify(execFile)(process.execPath, ['scripts/token.ts', 'alice'], { cwd: root, env: { ...process.env, JWT_SECRET: TEST_JWT_SECRET } })).stdout.trim();
    const sub = await subscribe(url, token, SESSION_EVENTS, { sessionId: '01900000-0000-7000-8000-000000000000' });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await sub.waitFor((s) => s.completed);
    await sub.stop();
    expect(output).toMatch(/outbox publisher stopped/);
  });
});

describe('the server process without a way to check tokens', () => {
  it.each([
    ['DATABASE_URL is set', { DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/none' }],
    ['HOST is 0.0.0.0', { HOST: '0.0.0.0', PGLITE_DATA_DIR: '/nonexistent/never-created' }],
  ])('refuses to start when %s, with one line that says what to set, and exits 1', async (_when, env) => {
    const run = promisify(execFile)(process.execPath, ['src/main.ts'], {
      cwd: root,
      env: { ...process.env, JWT_SECRET: '', JWT_JWKS_URL: '', DATABASE_URL: '', HOST: '', PORT: '0', ...env },
    });
    const failure = await run.then(
      () => null,
      (error: { code: number; stderr: string; stdout: string }) => error,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stdout).toBe('');
    expect(failure?.stderr).toMatch(/^Configuration error: set JWT_SECRET \(a random string of at least 32 characters\) or JWT_JWKS_URL \(with JWT_ISSUER and JWT_AUDIENCE\): [^\n]+\n$/);
  });
});

describe('npm run outbox', () => {
  it('requeues failed events with their ids and reports counts', async () => {
    const client = await connect(db.url);
    try {
      // Two sessions whose first events the publisher gave up on.
      const { projectId, sessionIds } = await seedPendingEvents(client, { sessions: 2, perSession: 1 });
      for (const sessionId of sessionIds) await setDeliveryState(client, sessionId, { deliveredThrough: 0, attempts: 10, lastError: 'x', failed: true });
      const ids = (await client.query('select id from event_outbox where project_id = $1 order by project_sequence', [projectId])).rows.map((r) => r.id);
      const run = (...args: string[]) =>
        promisify(execFile)(process.execPath, ['scripts/outbox.ts', ...args], { cwd: root, env: { ...process.env, DATABASE_URL: db.url } });

      expect((await run('status', '--project', projectId)).stdout).toMatch(/failed: 2/);
      const out = (await run('reprocess', '--event', ids[0])).stdout;
      expect(out).toContain(`requeued 1 failed event(s):\n${ids[0]}`);
      const rows = (await client.query('select id, status, attempts from outbox_event_status where project_id = $1 order by project_sequence', [projectId])).rows;
      expect(rows).toEqual([{ id: ids[0], status: 'pending', attempts: 0 }, { id: ids[1], status: 'failed', attempts: 10 }]);
      await expect(run('reprocess', '--event', 'nope')).rejects.toMatchObject({ code: 2 });
      await expect(run('reprocess')).rejects.toMatchObject({ code: 2 });
    } finally {
      await client.end();
    }
  });
});

describe('npm run db:migrate', () => {
  it('applies every migration to an empty database through the MikroORM CLI', async () => {
    const name = `chat_outbox_cli_${Date.now().toString(36)}`;
    const { withAdminClient, databaseUrl } = await import('./support/database.ts');
    await withAdminClient((c) => c.query(`create database ${name}`));
    try {
      const url = databaseUrl(name);
      await promisify(execFile)('npm', ['run', '-s', 'db:migrate'], { cwd: root, env: { ...process.env, DATABASE_URL: url } });
      const client = await connect(url);
      try {
        const applied = (await client.query('select name from mikro_orm_migrations order by id')).rows.map((r) => r.name);
        const { readdirSync } = await import('node:fs');
        const files = readdirSync(new URL('../migrations', import.meta.url)).filter((f) => f.endsWith('.ts')).map((f) => f.replace(/\.ts$/, '')).sort();
        expect(applied).toEqual(files);
      } finally {
        await client.end();
      }
    } finally {
      await withAdminClient((c) => c.query(`drop database if exists ${name} with (force)`));
    }
  });
});
