import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrm, migrateToLatest, type Orm } from '../src/platform/db/orm.ts';
import { createLogger } from '../src/platform/logger.ts';
import { OutboxPublisher } from '../src/outbox/outbox.publisher.ts';
import { connect, databaseUrl, quoteIdent, uniqueDatabaseName, withAdminClient } from './support/database.ts';
import { createFlakyBus } from './support/flaky-bus.ts';
import { insertEvents, seedMessage } from './support/outbox-seed.ts';

// The relay's last-read snapshot beside its watermark, added to a database whose relay has been
// registering and delivering events, with one transaction holding its events open across the
// migration: nothing is skipped or delivered twice.

const name = uniqueDatabaseName('chat_outbox_migration_snapshot');
let orm: Orm;
let client: pg.Client;
let late: pg.Client;
beforeAll(async () => {
  await withAdminClient((admin) => admin.query(`create database ${quoteIdent(name)}`));
  orm = await createOrm({ kind: 'postgresql', url: databaseUrl(name) });
  await orm.migrator.up({ to: 'Migration20261201140000_member_list_version' });
  client = await connect(databaseUrl(name));
  late = await connect(databaseUrl(name));
});
afterAll(async () => {
  await late?.end();
  await client?.end();
  await orm?.close(true);
  await withAdminClient((admin) => admin.query(`drop database if exists ${quoteIdent(name)} with (force)`));
});

const PROJECT = '01900000-0000-7000-8000-0000000000f2';
const session = (n: number) => `01900000-0000-7000-8000-00000000001${n}`;
let projectSequence = 0;
const write = (db: pg.Client, sessionId: string, sequence: number) => insertEvents(db, [{ event: seedMessage(PROJECT, sessionId), sequence, projectSequence: ++projectSequence }]);

describe('migration adding the relay snapshot', () => {
  it('applies to a relay that has delivered events and keeps delivering each committed event once, a late commit too', async () => {
    const bus = createFlakyBus();
    const publisher = () =>
      new OutboxPublisher({
        orm,
        bus: bus.bus,
        logger: createLogger({ level: 'silent', pretty: false }),
        options: { batchSize: 100, pollIntervalMs: 50, maxAttempts: 10, backoffBaseMs: 1, backoffMaxMs: 1, claimLeaseMs: 30_000 },
      });
    await write(client, session(1), 1);
    await write(client, session(2), 1);
    // As the previous version's relay leaves them: registered and delivered, its watermark past them.
    await client.query(`
      insert into outbox_delivery (aggregate_id, aggregate_type, project_id, written_through, delivered_through, delivered_at)
      select aggregate_id, min(aggregate_type), min(project_id::text)::uuid, max(sequence), max(sequence), now() from event_outbox group by aggregate_id`);
    await client.query(`update outbox_relay_state set transaction_id = pg_snapshot_xmin(pg_current_snapshot())`);
    // A transaction that wrote before the migration and commits after it.
    await late.query('begin');
    await write(late, session(3), 1);
    await write(client, session(1), 2);

    await migrateToLatest(orm);
    expect((await client.query('select seen_snapshot from outbox_relay_state')).rows).toEqual([{ seen_snapshot: null }]);

    const relay = publisher();
    await relay.runOnce();
    await write(client, session(2), 2);
    await relay.runOnce();
    // Every read since keeps its snapshot, which saw the late transaction running.
    expect((await client.query('select seen_snapshot is not null as kept from outbox_relay_state')).rows).toEqual([{ kept: true }]);
    await late.query('commit');
    await relay.runOnce();
    await relay.runOnce();
    expect(bus.accepted.map((e) => [e.aggregateId.slice(-1), e.sequence])).toEqual([
      ['1', 2],
      ['2', 2],
      ['3', 1],
    ]);
    const { rows } = await client.query(`select distinct status from outbox_event_status`);
    expect(rows).toEqual([{ status: 'published' }]);
  });
});
