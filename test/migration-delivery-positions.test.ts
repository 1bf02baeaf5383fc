import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrm, migrateToLatest, type Orm } from '../src/platform/db/orm.ts';
import { createLogger } from '../src/platform/logger.ts';
import { OutboxPublisher } from '../src/outbox/outbox.publisher.ts';
import { connect, databaseUrl, quoteIdent, uniqueDatabaseName, withAdminClient } from './support/database.ts';
import { createFlakyBus } from './support/flaky-bus.ts';
import { seedMessage } from './support/outbox-seed.ts';

// The move from per-row marks to delivery positions, applied to a database that already holds
// events in every state, as a deployment of the previous version leaves it.

const name = uniqueDatabaseName('chat_outbox_migration');
let orm: Orm;
let client: pg.Client;
beforeAll(async () => {
  await withAdminClient((admin) => admin.query(`create database ${quoteIdent(name)}`));
  orm = await createOrm({ kind: 'postgresql', url: databaseUrl(name) });
  await orm.migrator.up({ to: 'Migration20261201120000_agent_credentials' });
  client = await connect(databaseUrl(name));
});
afterAll(async () => {
  await client?.end();
  await orm?.close(true);
  await withAdminClient((admin) => admin.query(`drop database if exists ${quoteIdent(name)} with (force)`));
});

const PROJECT = '01900000-0000-7000-8000-0000000000f1';
const session = (n: number) => `01900000-0000-7000-8000-00000000000${n}`;

/** An event in the previous schema's shape, with its per-row status. */
async function oldEvent(sessionId: string, sequence: number, projectSequence: number, state: { status: string; attempts?: number; lastError?: string; claimed?: boolean }) {
  const event = seedMessage(PROJECT, sessionId, { body: `s${sessionId.slice(-1)} #${sequence}` });
  const { rows } = await client.query(
    `insert into event_outbox (id, event_type, aggregate_type, aggregate_id, sequence, project_sequence, project_id, user_id, session_id, payload,
                               status, attempts, last_error, published_at, claimed_until, claim_token)
     values (gen_random_uuid(), $1, 'chat_session', $2, $3, $4, $5, 'u', $2, $6, $7::varchar, $8, $9, case when $7::varchar = 'published' then now() end,
             case when $10::boolean then now() + interval '1 minute' end, case when $10::boolean then gen_random_uuid() end)
     returning id`,
    [event.type, sessionId, sequence, projectSequence, PROJECT, event.payload, state.status, state.attempts ?? 0, state.lastError ?? null, state.claimed ?? false],
  );
  return rows[0].id as string;
}

describe('migration to delivery positions', () => {
  it('keeps every event and its state: published, failed with the session held behind it, waiting for a retry, pending', async () => {
    let p = 0;
    // Session 1: all published. Session 2: 1 published, 2 failed, 3 pending behind it.
    // Session 3: 1 waiting for its retry (2 attempts), 2 pending. Session 4: pending, one claimed by a publisher of the old version.
    for (const s of [1, 2, 3]) await oldEvent(session(1), s, ++p, { status: 'published', attempts: 1 });
    await oldEvent(session(2), 1, ++p, { status: 'published', attempts: 1 });
    const failed = await oldEvent(session(2), 2, ++p, { status: 'failed', attempts: 10, lastError: 'bus down' });
    await oldEvent(session(2), 3, ++p, { status: 'pending' });
    await oldEvent(session(3), 1, ++p, { status: 'pending', attempts: 2, lastError: 'timeout' });
    await oldEvent(session(3), 2, ++p, { status: 'pending' });
    await oldEvent(session(4), 1, ++p, { status: 'pending', attempts: 1, claimed: true });
    await oldEvent(session(4), 2, ++p, { status: 'pending' });

    await migrateToLatest(orm);

    const { rows } = await client.query('select aggregate_id, sequence, status, attempts, last_error, claim_token from outbox_event_status order by project_sequence');
    const states = rows.map((row) => [row.aggregate_id.slice(-1), row.sequence, row.status, row.attempts, row.last_error]);
    expect(states).toEqual([
      ['1', 1, 'published', 0, null],
      ['1', 2, 'published', 0, null],
      ['1', 3, 'published', 0, null],
      ['2', 1, 'published', 0, null],
      ['2', 2, 'failed', 10, 'bus down'],
      ['2', 3, 'pending', 0, null],
      ['3', 1, 'pending', 2, 'timeout'],
      ['3', 2, 'pending', 0, null],
      ['4', 1, 'pending', 1, null],
      ['4', 2, 'pending', 0, null],
    ]);
    // The old version's lease is gone with its columns: nothing is held.
    expect(rows.every((row) => row.claim_token === null)).toBe(true);

    // A publisher of this version delivers what was pending, in order, and holds the failed session.
    const bus = createFlakyBus();
    const publisher = new OutboxPublisher({
      orm,
      bus: bus.bus,
      logger: createLogger({ level: 'silent', pretty: false }),
      options: { batchSize: 100, pollIntervalMs: 50, maxAttempts: 10, backoffBaseMs: 1, backoffMaxMs: 1, claimLeaseMs: 30_000 },
    });
    await client.query(`update outbox_delivery set next_retry_at = now()`); // the retry is due
    await publisher.runOnce();
    expect(bus.accepted.map((e) => [e.aggregateId.slice(-1), e.sequence])).toEqual([
      ['3', 1],
      ['3', 2],
      ['4', 1],
      ['4', 2],
    ]);
    expect((await client.query('select status from outbox_event_status where id = $1', [failed])).rows[0].status).toBe('failed');
    // New events after the migration are found from the relay's watermark.
    await oldEventAfterMigration(session(1), 4, ++p);
    await publisher.runOnce();
    expect(bus.accepted.at(-1)).toMatchObject({ sequence: 4 });
  });
});

async function oldEventAfterMigration(sessionId: string, sequence: number, projectSequence: number) {
  const event = seedMessage(PROJECT, sessionId);
  await client.query(
    `insert into event_outbox (id, event_type, aggregate_type, aggregate_id, sequence, project_sequence, project_id, user_id, session_id, payload)
     values (gen_random_uuid(), $1, 'chat_session', $2, $3, $4, $5, 'u', $2, $6)`,
    [event.type, sessionId, sequence, projectSequence, PROJECT, event.payload],
  );
}
