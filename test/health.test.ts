import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp } from '../src/app.ts';
import { loadConfig } from '../src/platform/config.ts';
import { createTestDatabase, startTestApp, TEST_JWT_SECRET, useTestApp } from './support/app.ts';
import { quoteIdent, withAdminClient } from './support/database.ts';
import { captureLogs, eventually } from './support/observability.ts';

const getJson = async (url: string) => {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as any };
};

describe('health endpoints', () => {
  const t = useTestApp({ HEALTH_CHECK_TIMEOUT_MS: '1000', OUTBOX_PUBLISHER_ENABLED: 'false' });

  it('live answers 200 while the process serves; ready checks the database and migrations', async () => {
    expect(await getJson(`${t.app.url}/health/live`)).toEqual({ status: 200, body: { status: 'live' } });
    const ready = await getJson(`${t.app.url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ready', checks: { database: { ok: true }, migrations: { ok: true } } });
    expect(ready.body.checks.publisher).toBeUndefined();
  });

  it('ready turns 503 while the database refuses connections, and 200 again when it is back', async () => {
    const name = t.db.name;
    await withAdminClient(async (client) => {
      await client.query(`alter database ${quoteIdent(name)} with allow_connections false`);
      await client.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
    });
    try {
      const ready = await eventually(async () => {
        const result = await getJson(`${t.app.url}/health/ready`);
        expect(result.status).toBe(503);
        return result;
      });
      expect(ready.body).toMatchObject({
        status: 'unready',
        checks: { database: { ok: false, detail: expect.any(String) }, migrations: { ok: false, detail: 'not checked: database unreachable' } },
      });
      // Unauthenticated endpoint: no driver message, host or database name in the answer.
      expect(JSON.stringify(ready.body)).not.toContain(name);
      expect((await fetch(`${t.app.url}/health/live`)).status).toBe(200);
    } finally {
      await withAdminClient((client) => client.query(`alter database ${quoteIdent(name)} with allow_connections true`));
    }
    await eventually(async () => expect((await getJson(`${t.app.url}/health/ready`)).status).toBe(200));
  });

  it('ready requires a running publisher once one is attached', async () => {
    let running = true;
    t.app.health.setPublisherStatusSource({ status: () => ({ running, lastCycleAt: new Date('2026-11-23T10:00:00Z'), listening: true, listenEnabled: true }) });
    try {
      let ready = await getJson(`${t.app.url}/health/ready`);
      expect(ready.status).toBe(200);
      expect(ready.body.checks.publisher).toEqual({ ok: true, listening: true, lastCycleAt: '2026-11-23T10:00:00.000Z' });
      running = false;
      ready = await getJson(`${t.app.url}/health/ready`);
      expect(ready.status).toBe(503);
      expect(ready.body.checks.publisher).toMatchObject({ ok: false, detail: 'publisher not running' });
    } finally {
      t.app.health.setPublisherStatusSource(null);
    }
  });
});

describe('readiness with migrations not applied', () => {
  it('is 503 and names the pending migrations', async () => {
    const db = await createTestDatabase();
    // A database with no tables at all, and an app that is told not to migrate it.
    await withAdminClient(async (client) => {
      await client.query(`drop database ${quoteIdent(db.name)} with (force)`);
      await client.query(`create database ${quoteIdent(db.name)}`);
    });
    const config = loadConfig({ DATABASE_URL: db.url, PORT: '0', HOST: '127.0.0.1', MIGRATE_ON_START: 'false', JWT_SECRET: TEST_JWT_SECRET });
    const app = await startApp(config, captureLogs('silent').logger);
    try {
      const ready = await getJson(`${app.url}/health/ready`);
      expect(ready.status).toBe(503);
      expect(ready.body.checks.database.ok).toBe(true);
      expect(ready.body.checks.migrations).toMatchObject({ ok: false, detail: 'migrations not applied', pending: expect.arrayContaining(['Migration20261123000000_initial']) });
    } finally {
      await app.stop();
      await db.drop();
    }
  });
});

describe('graceful shutdown', () => {
  it('turns ready 503 as soon as stop begins, while the server still answers during the drain', async () => {
    const logs = captureLogs('info');
    const t = await startTestApp({ SHUTDOWN_DRAIN_MS: '3000' }, { logger: logs.logger });
    expect((await fetch(`${t.app.url}/health/ready`)).status).toBe(200);

    const stopping = t.app.stop();
    try {
      const ready = await getJson(`${t.app.url}/health/ready`);
      expect(ready).toEqual({ status: 503, body: { status: 'unready', checks: { shutdown: { ok: false, detail: 'shutting down' } } } });
      expect((await fetch(`${t.app.url}/health/live`)).status).toBe(200);
      expect((await t.gql('{ __typename }')).data).toEqual({ __typename: 'Query' });
    } finally {
      await stopping;
      await t.db.drop();
    }
    await expect(fetch(`${t.app.url}/health/live`)).rejects.toThrow();
  });
});
