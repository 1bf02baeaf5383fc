import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/platform/config.ts';
import { createOrm, type Orm } from '../src/platform/db/orm.ts';
import type { DomainEvent } from '../src/events/domain-event.ts';
import { createLogger } from '../src/platform/logger.ts';
import { OutboxPublisher, retryDelayMs } from '../src/outbox/outbox.publisher.ts';
import { createCommitNotifier, listenForCommits, wakeOnLocalCommit } from '../src/outbox/outbox.wakeups.ts';
import { sendMessage, createChatSession } from '../src/domain/chat/chat.service.ts';
import { createProject } from '../src/domain/projects/project.service.ts';
import { forkEm } from '../src/platform/db/orm.ts';
import { createTestDatabase, type TestDatabase } from './support/app.ts';
import { connect } from './support/database.ts';
import { createFlakyBus } from './support/flaky-bus.ts';
import { seedPendingEvents, setDeliveryState } from './support/outbox-seed.ts';
import { until } from './support/until.ts';

const silent = createLogger({ level: 'silent', pretty: false });
const baseOptions = { batchSize: 200, pollIntervalMs: 50, maxAttempts: 5, backoffBaseMs: 20, backoffMaxMs: 100, claimLeaseMs: 30_000 };

let db: TestDatabase;
let client: pg.Client;
const orms: Orm[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  client = await connect(db.url);
});
afterAll(async () => {
  for (const orm of orms) await orm.close(true);
  await client?.end();
  await db?.drop();
});

async function newOrm() {
  const orm = await createOrm({ kind: 'postgresql', url: db.url });
  orms.push(orm);
  return orm;
}

const countWhere = async (where: string, params: unknown[] = []) =>
  Number((await client.query(`select count(*) from outbox_event_status where ${where}`, params)).rows[0].count);

/** Per aggregate, the sequence numbers in the order the bus accepted them. */
function sequencesByAggregate(events: DomainEvent[]) {
  const map = new Map<string, number[]>();
  for (const event of events) map.set(event.aggregateId, [...(map.get(event.aggregateId) ?? []), event.sequence]);
  return map;
}

describe('OutboxPublisher', () => {
  it('two publishers drain thousands of events: all delivered, none twice, each session in order', async () => {
    const { projectId } = await seedPendingEvents(client, { sessions: 40, perSession: 100 });
    const bus = createFlakyBus();
    const publishers = [
      new OutboxPublisher({ orm: await newOrm(), bus: bus.bus, logger: silent, options: baseOptions }),
      new OutboxPublisher({ orm: await newOrm(), bus: bus.bus, logger: silent, options: baseOptions }),
    ];
    for (const p of publishers) p.start();
    await until(async () => (await countWhere('project_id = $1 and status = $2', [projectId, 'published'])) === 4000, 30_000);
    for (const p of publishers) await p.stop();

    const ours = bus.accepted.filter((e) => e.projectId === projectId);
    expect(ours).toHaveLength(4000);
    expect(new Set(ours.map((e) => e.eventId)).size).toBe(4000);
    for (const [, sequences] of sequencesByAggregate(ours)) expect(sequences).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(await countWhere('claim_token is not null')).toBe(0);
  });

  it('keeps per-session order while an earlier event of the session waits for a retry', async () => {
    const { projectId, sessionIds } = await seedPendingEvents(client, { sessions: 3, perSession: 5 });
    const [stuck] = sessionIds;
    const bus = createFlakyBus();
    let refusals = 2;
    // The stuck session's first event fails twice; a publisher that moved on would send 2..5 first.
    bus.rejects = (event) => event.aggregateId === stuck && event.sequence === 1 && refusals-- > 0;
    const publisher = new OutboxPublisher({ orm: await newOrm(), bus: bus.bus, logger: silent, options: baseOptions });
    publisher.start();
    await until(async () => (await countWhere('project_id = $1 and status = $2', [projectId, 'published'])) === 15);
    await publisher.stop();

    const accepted = bus.accepted.filter((e) => e.projectId === projectId);
    for (const [, sequences] of sequencesByAggregate(accepted)) expect(sequences).toEqual([1, 2, 3, 4, 5]);
    expect(bus.attempts.get(accepted.find((e) => e.aggregateId === stuck && e.sequence === 1)!.eventId)).toBe(3);
  });

  it('reclaims the batch of a publisher killed mid-publish (SIGKILL); events keep their eventId and the attempt counts', async () => {
    const { projectId } = await seedPendingEvents(client, { sessions: 5, perSession: 10 });
    const ids = (await client.query('select id from event_outbox where project_id = $1', [projectId])).rows.map((r) => r.id).sort();
    const child = spawn(process.execPath, [fileURLToPath(new URL('./support/publisher-child.ts', import.meta.url))], {
      env: { ...process.env, CHILD_DATABASE_URL: db.url, CHILD_LEASE_MS: '1000' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await until(async () => (await countWhere('project_id = $1 and claim_token is not null', [projectId])) > 0);
    const claimedByChild = (await client.query('select id from outbox_event_status where project_id = $1 and claim_token is not null', [projectId])).rows.map((r) => r.id);
    child.kill('SIGKILL');
    await exited;

    // The child's attempt counts: it is recorded on the events it held.
    const held = await client.query('select id, attempts from outbox_event_status where id = any($1)', [claimedByChild]);
    for (const row of held.rows) expect(row.attempts).toBe(1);

    const bus = createFlakyBus();
    // The attempt each event was published with, as the survivor claimed it.
    const claimedAttempts = new Map<string, number>();
    const observer = { batchClaimed: (rows: readonly { id: string; attempts: number }[]) => rows.forEach((row) => claimedAttempts.set(row.id, row.attempts)) };
    const survivor = new OutboxPublisher({ orm: await newOrm(), bus: bus.bus, logger: silent, options: baseOptions, observer });
    survivor.start();
    await until(async () => (await countWhere('project_id = $1 and status = $2', [projectId, 'published'])) === 50);
    await survivor.stop();

    expect(bus.accepted.filter((e) => e.projectId === projectId).map((e) => e.eventId).sort()).toEqual(ids);
    for (const id of claimedByChild) expect(claimedAttempts.get(id)).toBe(2);
  });

  it('fails an event whose stored payload breaks the event contract, holds back its session only, and delivers the rest', async () => {
    const { projectId, sessionIds } = await seedPendingEvents(client, { sessions: 2, perSession: 2 });
    const [broken, healthy] = sessionIds as [string, string];
    // As a hand-edited or older row would be: no body.
    await client.query(`update event_outbox set payload = payload - 'body' where aggregate_id = $1 and sequence = 1`, [broken]);
    const bus = createFlakyBus();
    const publisher = new OutboxPublisher({ orm: await newOrm(), bus: bus.bus, logger: silent, options: baseOptions });
    await publisher.runOnce();
    const rows = (await client.query('select sequence, status, last_error, claim_token from outbox_event_status where aggregate_id = $1 order by sequence', [broken])).rows;
    expect(rows[0]).toMatchObject({ status: 'failed', claim_token: null, last_error: expect.stringMatching(/not a valid domain event: the message_created payload has no valid body/) });
    expect(rows[1]).toMatchObject({ status: 'pending', claim_token: null });
    expect(bus.accepted.filter((e) => e.projectId === projectId).map((e) => [e.aggregateId, e.sequence])).toEqual([
      [healthy, 1],
      [healthy, 2],
    ]);
  });

  it('reports only cycles that completed as its last cycle: a cycle that fails leaves the time of the last good one', async () => {
    const { projectId } = await seedPendingEvents(client, { sessions: 1, perSession: 1 });
    const bus = createFlakyBus();
    const publisher = new OutboxPublisher({ orm: await newOrm(), bus: bus.bus, logger: silent, options: { ...baseOptions, claimLeaseMs: 50 } });
    const publish = bus.bus.publish;
    bus.bus.publish = () => {
      throw new Error('bus exploded (injected)');
    };
    await expect(publisher.runOnce()).rejects.toThrow('bus exploded');
    expect(publisher.status().lastCycleAt).toBeNull();
    bus.bus.publish = publish;
    await until(async () => (await publisher.runOnce()) > 0);
    const completed = publisher.status().lastCycleAt;
    expect(completed).toBeInstanceOf(Date);
    expect(await countWhere('project_id = $1 and status = $2', [projectId, 'published'])).toBe(1);
  });

  it('fails an event whose attempts all died with their publisher instead of trying it forever', async () => {
    const { projectId } = await seedPendingEvents(client, { sessions: 1, perSession: 2 });
    // As if publishers had claimed the first event five times and crashed each time.
    const [sessionId] = (await client.query('select distinct aggregate_id from event_outbox where project_id = $1', [projectId])).rows.map((r) => r.aggregate_id);
    await setDeliveryState(client, sessionId, { deliveredThrough: 0, attempts: 5 });
    const bus = createFlakyBus();
    const publisher = new OutboxPublisher({ orm: await newOrm(), bus: bus.bus, logger: silent, options: baseOptions });
    await publisher.runOnce();
    const rows = (await client.query('select sequence, status, last_error, claim_token from outbox_event_status where project_id = $1 order by sequence', [projectId])).rows;
    expect(rows[0]).toMatchObject({ status: 'failed', claim_token: null, last_error: expect.stringMatching(/abandoned/) });
    expect(rows[1]).toMatchObject({ status: 'pending', claim_token: null });
    expect(bus.accepted.filter((e) => e.projectId === projectId)).toEqual([]);
  });

  it('stops gracefully mid-batch: the batch finishes and no event is left claimed', async () => {
    const { projectId } = await seedPendingEvents(client, { sessions: 10, perSession: 30 });
    const bus = createFlakyBus();
    bus.delayMs = 300;
    const publisher = new OutboxPublisher({ orm: await newOrm(), bus: bus.bus, logger: silent, options: { ...baseOptions, batchSize: 50 } });
    publisher.start();
    await until(async () => (await countWhere('project_id = $1 and claim_token is not null', [projectId])) > 0);
    await publisher.stop();
    expect(await countWhere('claim_token is not null')).toBe(0);
    const published = await countWhere('project_id = $1 and status = $2', [projectId, 'published']);
    expect(published).toBeGreaterThan(0);
    expect(published + (await countWhere('project_id = $1 and status = $2', [projectId, 'pending']))).toBe(300);
    expect(publisher.status().running).toBe(false);
  });

  it('wakes on NOTIFY from another process, and sweeps after its LISTEN connection comes back', async () => {
    const bus = createFlakyBus();
    const publisher = new OutboxPublisher({ orm: await newOrm(), bus: bus.bus, logger: silent, options: { ...baseOptions, pollIntervalMs: 600_000 } });
    const listener = listenForCommits({ url: db.url, logger: silent, wake: () => publisher.nudge(), onStateChange: (on) => publisher.setListening(on), retryBaseMs: 1_000 });
    publisher.start();
    try {
      await until(async () => publisher.status().listening);
      // An API-only process's write: its own ORM and no publisher, so it NOTIFYs after commit,
      // and only that NOTIFY can wake this publisher (which polls every ten minutes).
      const writer = await newOrm();
      const notifier = createCommitNotifier(writer, silent);
      wakeOnLocalCommit(writer, () => notifier.signal());
      const project = await createProject(forkEm(writer), 'alice', { name: 'p' });
      const session = await createChatSession(forkEm(writer), 'alice', { projectId: project.id, title: 's' });
      const first = await sendMessage(forkEm(writer), 'alice', { sessionId: session.id, body: 'notified' });
      await until(async () => (await countWhere('id = $1 and status = $2', [first.event.id, 'published'])) === 1, 10_000);

      await listener.simulateDisconnect();
      await until(async () => !publisher.status().listening);
      // Written while nobody listens: the NOTIFY is lost; only the sweep after reconnecting finds it.
      const missed = await sendMessage(forkEm(writer), 'alice', { sessionId: session.id, body: 'missed' });
      await until(async () => publisher.status().listening, 10_000);
      await until(async () => (await countWhere('id = $1 and status = $2', [missed.event.id, 'published'])) === 1, 10_000);
    } finally {
      await listener.stop();
      await publisher.stop();
    }
  });
});

describe('retryDelayMs', () => {
  const options = { backoffBaseMs: 500, backoffMaxMs: 300_000 };
  it('doubles per attempt, stays within half to all of the capped delay, and is capped', () => {
    expect([1, 2, 3, 4].map((n) => retryDelayMs(n, options, () => 1))).toEqual([500, 1000, 2000, 4000]);
    expect(retryDelayMs(3, options, () => 0)).toBe(1000);
    expect(retryDelayMs(40, options, () => 1)).toBe(300_000);
  });
});

describe('config', () => {
  it('documents publisher defaults', () => {
    expect(loadConfig({}).outbox).toEqual({ enabled: true, wake: 'all', batchSize: 500, pollIntervalMs: 1000, maxAttempts: 10, backoffBaseMs: 500, backoffMaxMs: 300_000, claimLeaseMs: 30_000, cycleTimeoutMs: 10_000, listenPingMs: 10_000, preparedStatements: true });
  });
});
