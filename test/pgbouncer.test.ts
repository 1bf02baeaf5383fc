import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrm, migrateToLatest } from '../src/platform/db/orm.ts';
import { startTestApp, createTestDatabase, type TestApp, type TestDatabase } from './support/app.ts';
import { connect, databaseUrl, quoteIdent, uniqueDatabaseName, withAdminClient } from './support/database.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { pgbouncerFound, startPgBouncer, type PgBouncer } from './support/pgbouncer.ts';
import { SESSION_EVENTS, subscribe } from './support/subscriber.ts';
import { SESSION_EVENTS as SESSION_HISTORY } from './support/analytics.ts';
import { until } from './support/until.ts';

// Shown in the test names, so a run without PgBouncer says why these did not run.
const skip = pgbouncerFound ? '' : ' [skipped: pgbouncer is not on PATH; `apt-get install pgbouncer` provides it, .ci/run installs it]';
if (!pgbouncerFound) console.warn(`PgBouncer tests${skip}`);

/** The settings docs/operations.md#pgbouncer gives for a pooler in transaction mode. */
const BEHIND_TRANSACTION_POOLER = { OUTBOX_WAKE: 'in-process', DB_PREPARED_STATEMENTS: 'false', OUTBOX_POLL_INTERVAL_MS: '200' };

describe.skipIf(!pgbouncerFound)(`behind PgBouncer in transaction mode${skip}`, () => {
  let bouncer: PgBouncer;
  let db: TestDatabase;
  let empty: string;
  let t: TestApp;
  let direct: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    empty = uniqueDatabaseName('chat_outbox_pgbouncer_empty');
    await withAdminClient((client) => client.query(`create database ${quoteIdent(empty)}`));
    bouncer = await startPgBouncer([db.name, empty]);
    direct = await connect(db.url);
  });
  afterAll(async () => {
    await t?.stop();
    await direct?.end();
    await bouncer?.stop();
    await db?.drop();
    if (empty) await withAdminClient((client) => client.query(`drop database if exists ${quoteIdent(empty)} with (force)`));
  });

  it(`applies the migrations to an empty database through the pooler${skip}`, async () => {
    const before = await bouncer.transactions(empty);
    const orm = await createOrm({ kind: 'postgresql', url: bouncer.url(empty) });
    try {
      expect((await migrateToLatest(orm)).length).toBeGreaterThan(0);
      expect(await migrateToLatest(orm)).toEqual([]);
    } finally {
      await orm.close(true);
    }
    expect(await bouncer.transactions(empty)).toBeGreaterThan(before);
    const check = await connect(databaseUrl(empty));
    try {
      const applied = await check.query(`select count(*)::int as n from mikro_orm_migrations`);
      expect(applied.rows[0].n).toBeGreaterThan(0);
      expect((await check.query(`select to_regclass('event_outbox') is not null as present`)).rows[0].present).toBe(true);
    } finally {
      await check.end();
    }
  });

  it(`serves queries, mutations and a WebSocket subscription, with the publisher delivering${skip}`, async () => {
    t = await startTestApp({ ...BEHIND_TRANSACTION_POOLER, DATABASE_URL: bouncer.url(db.name) }, { db });
    const before = await bouncer.transactions(db.name);

    const ready = await fetch(`${t.app.url}/health/ready`);
    expect(ready.status).toBe(200);

    const { projectId, sessionId } = await createProjectFixture(t, 'alice');
    const projects = await t.gql<{ projects: { nodes: { id: string }[] } }>('{ projects { nodes { id } } }', {}, { as: 'alice' });
    expect(projects.data?.projects.nodes.map((p) => p.id)).toEqual([projectId]);

    const sub = await subscribe(t.app.graphqlUrl, await t.token('alice'), SESSION_EVENTS, { sessionId });
    try {
      const sent = await t.gql(SEND_MESSAGE, { sessionId, body: 'through the pooler' }, { as: 'alice' });
      expect(sent.errors).toBeUndefined();
      await sub.waitForCount(1);
      expect(sub.events[0]).toMatchObject({ eventId: sent.data.sendMessage.eventId, type: 'MESSAGE_CREATED', message: { body: 'through the pooler' } });
      expect(sub.errors).toEqual([]);
    } finally {
      await sub.stop();
    }
    await until(async () => (await direct.query(`select status from outbox_event_status where id = $1`, [sub.events[0]!.eventId])).rows[0]?.status === 'published');
    // History pages and membership checks, which run as prepared statements without a pooler, read
    // through it (a statement prepared on one server connection is unknown to the next).
    // Many at once, so client connections land on different server connections.
    for (let round = 0; round < 5; round++) {
      const pages = await Promise.all(Array.from({ length: 12 }, () => t.gql(SESSION_HISTORY, { projectId, sessionId, first: 1 }, { as: 'alice' })));
      for (const history of pages) {
        expect(history.errors).toBeUndefined();
        expect(history.data.sessionEventHistory.edges[0].node.message.body).toBe('through the pooler');
      }
    }

    // It all went through PgBouncer, and the publisher's cycles keep going through it.
    const served = await bouncer.transactions(db.name);
    expect(served).toBeGreaterThan(before);
    await until(async () => (await bouncer.transactions(db.name)) > served + 2, 5_000);
  });
});
