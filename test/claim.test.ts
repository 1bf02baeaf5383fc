import pg from 'pg';
import { beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/platform/logger.ts';
import { OutboxPublisher } from '../src/outbox/outbox.publisher.ts';
import { claimBatch, discoverNewEvents, recordDiscoverAndClaim, recordOutcomes, type ClaimOptions, type ClaimResult, type DeliveredBatch } from '../src/outbox/outbox.sql.ts';
import { claimBatch as claimBatchStatement } from '../src/outbox/sql/claim-batch.sql.ts';
import { discoverEvents } from '../src/outbox/sql/discover-events.sql.ts';
import { recordDiscoverClaim } from '../src/outbox/sql/record-discover-claim.sql.ts';
import { recordOutcome } from '../src/outbox/sql/record-outcome.sql.ts';
import { useTestDatabase } from './support/app.ts';
import { createFlakyBus } from './support/flaky-bus.ts';
import { insertEvents, seedMessage, seedPendingEvents, setDeliveryState, setDeliveryStates } from './support/outbox-seed.ts';
import { recordPoolQueries } from './support/pool-spy.ts';
import { until } from './support/until.ts';

// How the relay finds and claims the next events: registering new events from the log, the
// per-aggregate positions, and what a claim may and may not take.

const fixture = useTestDatabase();
beforeEach(async () => {
  await fixture.client.query('truncate event_outbox, outbox_delivery');
});

const silent = createLogger({ level: 'silent', pretty: false });

/** Registers what has committed, then claims, as a publisher's cycle does; returns the claim's token with its result. */
async function claim(options: Partial<ClaimOptions> & { limit: number }) {
  await discoverNewEvents(fixture.orm);
  const token = options.token ?? crypto.randomUUID();
  return { token, ...(await claimBatch(fixture.orm, { leaseMs: 30_000, ...options, token })) };
}

/** Records every run of a claim as delivered, as a publisher does once the bus accepted the batch. */
async function deliver(batch: ClaimResult & { token: string }) {
  return recordOutcomes(
    fixture.orm,
    batch.token,
    batch.runs.map((run) => ({ aggregateId: run.aggregateId, deliveredThrough: run.deliveredThrough + run.rows.length, attempts: 0, retryInMs: 0, error: null, failed: false })),
  );
}

/** A publisher over `bus` that polls only every ten minutes: what it does between, a nudge or a commit made it do. */
const publisherOver = (bus: ReturnType<typeof createFlakyBus>, batchSize: number) =>
  new OutboxPublisher({
    orm: fixture.orm,
    bus: bus.bus,
    logger: silent,
    options: { batchSize, pollIntervalMs: 600_000, maxAttempts: 5, backoffBaseMs: 20, backoffMaxMs: 100, claimLeaseMs: 30_000 },
  });

const statusOf = async (ids: string[]) => (await fixture.client.query('select distinct status from outbox_event_status where id = any($1)', [ids])).rows.map((row) => row.status);

/** An aggregate id that sorts at `rank` (0-255). */
const aggregateAt = (rank: number) => `${rank.toString(16).padStart(2, '0')}000000-0000-4000-8000-000000000000`;

const PROJECT_ID = '00000000-0000-4000-8000-00000000000f';

/** One event of `aggregateId`, as the write path would have numbered it. */
async function insertEvent(aggregateId: string, sequence: number, status: 'pending' | 'failed' = 'pending', db: pg.Client = fixture.client) {
  const { rows } = await db.query<{ next: number }>('select coalesce(max(project_sequence), 0)::int + 1 as next from event_outbox');
  const [id] = await insertEvents(db, [
    {
      event: seedMessage(PROJECT_ID, aggregateId, { authorUserId: 'u', body: 'x' }),
      sequence,
      projectSequence: rows[0]!.next + Math.floor(Math.random() * 1_000_000),
      status,
      lastError: status === 'failed' ? 'injected' : null,
    },
  ]);
  return id!;
}

describe('claimBatch', () => {
  it('drains a long backlog in one session in full batches, in sequence order', async () => {
    const { sessionIds } = await seedPendingEvents(fixture.client, { sessions: 1, perSession: 1_200 });
    const first = await claim({ limit: 500 });
    expect(first.rows.map((row) => row.sequence)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect(new Set(first.rows.map((row) => row.aggregate_id))).toEqual(new Set(sessionIds));
    expect(await deliver(first)).toBe(1);
    expect(await statusOf(first.rows.map((row) => row.id))).toEqual(['published']);
    const second = await claim({ limit: 500 });
    expect(second.rows.map((row) => row.sequence)).toEqual(Array.from({ length: 500 }, (_, i) => i + 501));
  });

  it('claims the same without a prepared statement (OUTBOX_PREPARED_STATEMENTS=false)', async () => {
    await seedPendingEvents(fixture.client, { sessions: 2, perSession: 3 });
    const first = await claim({ limit: 4, prepared: false });
    expect(first.rows.map((row) => row.sequence)).toEqual([1, 2, 3, 1]);
    await deliver(first);
    const second = await claim({ limit: 4, prepared: false });
    expect(second.rows.map((row) => row.sequence)).toEqual([2, 3]);
  });

  it('holds back the next event of a session until the earlier one is recorded: two claims never hold one session', async () => {
    const { sessionIds } = await seedPendingEvents(fixture.client, { sessions: 1, perSession: 2 });
    const first = await claim({ limit: 1 });
    expect(first.rows.map((row) => row.sequence)).toEqual([1]);
    // The first event is claimed and not yet published: nobody may take the second.
    expect((await claim({ limit: 10 })).rows).toEqual([]);
    await deliver(first);
    const second = await claim({ limit: 10 });
    expect(second.rows.map((row) => [row.aggregate_id, row.sequence])).toEqual([[sessionIds[0], 2]]);
  });

  it('records an outcome only while the claim still holds the session: a lapsed claim taken over moves nothing', async () => {
    await seedPendingEvents(fixture.client, { sessions: 1, perSession: 3 });
    const first = await claim({ limit: 10, leaseMs: 1 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    // The lease lapsed and another publisher claimed the session again: the same events, same ids, from the same head.
    const second = await claim({ limit: 10 });
    expect(second.rows.map((row) => row.id)).toEqual(first.rows.map((row) => row.id));
    expect(second.runs[0]!.attempts).toBe(2);
    expect(await deliver(first)).toBe(0);
    expect(await statusOf(first.rows.map((row) => row.id))).toEqual(['pending']);
    expect(await deliver(second)).toBe(1);
    expect(await statusOf(first.rows.map((row) => row.id))).toEqual(['published']);
  });

  it('fills a batch from the sessions that waited longest, each a gapless run from its head', async () => {
    await seedPendingEvents(fixture.client, { sessions: 3, perSession: 4 });
    const { rows } = await claim({ limit: 10 });
    const perSession = new Map<string, number[]>();
    for (const row of rows) perSession.set(row.aggregate_id, [...(perSession.get(row.aggregate_id) ?? []), row.sequence]);
    expect([...perSession.values()].map((s) => s.length)).toEqual([4, 4, 2]);
    for (const sequences of perSession.values()) expect(sequences).toEqual(Array.from({ length: sequences.length }, (_, i) => i + 1));
  });

  it('gives every session its turn: a recorded session goes to the back of the line', async () => {
    for (let rank = 1; rank <= 4; rank++) for (let sequence = 1; sequence <= 3; sequence++) await insertEvent(aggregateAt(rank), sequence);
    const served: string[] = [];
    for (let i = 0; i < 8; i++) {
      const batch = await claim({ limit: 2 });
      served.push(...new Set(batch.rows.map((row) => row.aggregate_id)));
      await deliver(batch);
    }
    // Each session's first two events, one session per claim, before any session's third.
    expect(served.slice(0, 4).sort()).toEqual([1, 2, 3, 4].map(aggregateAt));
    expect(served.slice(4).sort()).toEqual([1, 2, 3, 4].map(aggregateAt));
  });

  it('skips sessions whose head failed or waits for a retry', async () => {
    await insertEvent(aggregateAt(1), 1, 'failed');
    await insertEvent(aggregateAt(1), 2);
    await insertEvent(aggregateAt(2), 1);
    await setDeliveryState(fixture.client, aggregateAt(2), { deliveredThrough: 0, attempts: 1, lastError: 'bus down', retryInSeconds: 3600 });
    await insertEvent(aggregateAt(3), 1);
    const batch = await claim({ limit: 10 });
    expect(batch.rows.map((row) => row.aggregate_id)).toEqual([aggregateAt(3)]);
  });
});

describe('registering new events', () => {
  it('registers an event that commits late, behind a later transaction, and never moves past it', async () => {
    // Transaction A writes first (its id is lower) but commits last.
    const late = new pg.Client({ connectionString: fixture.db.url });
    await late.connect();
    try {
      await late.query('begin');
      const lateId = await insertEvent(aggregateAt(1), 1, 'pending', late);
      const earlyId = await insertEvent(aggregateAt(2), 1);
      const first = await claim({ limit: 10 });
      expect(first.rows.map((row) => row.id)).toEqual([earlyId]);
      await deliver(first);
      // Claims in between find nothing new, and must not forget the open transaction.
      expect((await claim({ limit: 10 })).rows).toEqual([]);
      await late.query('commit');
      const second = await claim({ limit: 10 });
      expect(second.rows.map((row) => row.id)).toEqual([lateId]);
    } finally {
      await late.end();
    }
  });

  it('lets two publishers register at once without losing or doubling an event', async () => {
    await seedPendingEvents(fixture.client, { sessions: 50, perSession: 4 });
    await Promise.all([discoverNewEvents(fixture.orm), discoverNewEvents(fixture.orm), discoverNewEvents(fixture.orm)]);
    await discoverNewEvents(fixture.orm);
    const { rows } = await fixture.client.query('select sum(written_through)::int as written, count(*)::int as aggregates from outbox_delivery');
    expect(rows[0]).toEqual({ written: 200, aggregates: 50 });
  });
});

describe('claiming at once, in the statement that registers (record-discover-claim)', () => {
  /** The statement a publisher's cycle starts with: records `delivered`, registers, claims at once. */
  async function startCycle(options: { limit?: number; delivered?: DeliveredBatch } = {}) {
    const token = crypto.randomUUID();
    return { token, ...(await recordDiscoverAndClaim(fixture.orm, options.delivered ?? null, { limit: options.limit ?? 500, token, leaseMs: 30_000 })) };
  }
  const deliveredAll = (start: { token: string; claimed: ClaimResult }): DeliveredBatch => ({
    token: start.token,
    runs: start.claimed.runs.map((run) => ({ aggregateId: run.aggregateId, deliveredThrough: run.deliveredThrough + run.rows.length })),
  });

  it('claims the new event of an idle session as it registers it, counting the attempt; the claim statement then has nothing to do', async () => {
    const id = await insertEvent(aggregateAt(1), 1);
    const start = await startCycle();
    expect(start.claimed.rows.map((row) => [row.id, row.sequence, row.attempts])).toEqual([[id, 1, 1]]);
    expect(start.claimMore).toBe(false);
    // Held by that claim: no one else takes it, and its record publishes it.
    expect((await claim({ limit: 10 })).rows).toEqual([]);
    expect(await deliver({ token: start.token, ...start.claimed })).toBe(1);
    expect(await statusOf([id])).toEqual(['published']);
  });

  it('records a batch and claims its session\'s next event in the same update', async () => {
    const first = await insertEvent(aggregateAt(1), 1);
    const start = await startCycle();
    const second = await insertEvent(aggregateAt(1), 2);
    const next = await startCycle({ delivered: deliveredAll(start) });
    expect(next.recorded).toBe(1);
    expect(next.claimed.rows.map((row) => [row.id, row.sequence, row.attempts])).toEqual([[second, 2, 1]]);
    expect(await statusOf([first])).toEqual(['published']);
    expect(await statusOf([second])).toEqual(['pending']);
  });

  it('leaves a session with events already waiting to its turn in line: nothing overtakes them', async () => {
    await insertEvent(aggregateAt(1), 1);
    await insertEvent(aggregateAt(1), 2);
    await discoverNewEvents(fixture.orm);
    await insertEvent(aggregateAt(1), 3);
    const start = await startCycle();
    expect(start.claimed.rows).toEqual([]);
    expect(start.claimMore).toBe(true);
    expect((await claim({ limit: 10 })).rows.map((row) => row.sequence)).toEqual([1, 2, 3]);
  });

  it('does not claim at once a session whose head failed or that another claim holds', async () => {
    await insertEvent(aggregateAt(1), 1, 'failed');
    await insertEvent(aggregateAt(2), 1);
    const held = await claim({ limit: 10 });
    expect(held.rows.map((row) => row.aggregate_id)).toEqual([aggregateAt(2)]);
    await insertEvent(aggregateAt(1), 2);
    await insertEvent(aggregateAt(2), 2);
    const start = await startCycle();
    expect(start.claimed.rows).toEqual([]);
    // Left to the claim statement, which takes neither: one is failed, the other still held.
    expect(start.claimMore).toBe(true);
    expect((await claim({ limit: 10 })).rows).toEqual([]);
  });

  it('claims nothing at once when the read saw more events than a batch holds: a burst goes through the claim, oldest first', async () => {
    await seedPendingEvents(fixture.client, { sessions: 3, perSession: 2 });
    const start = await startCycle({ limit: 5 });
    expect(start.registered).toBe(3);
    expect(start.claimed.rows).toEqual([]);
    expect(start.claimMore).toBe(true);
    expect((await claim({ limit: 5 })).rows).toHaveLength(5);
  });

  it('under a trickle, a publisher never runs the claim statement: each cycle is this one', async () => {
    const { recorded: statements, restore } = await recordPoolQueries(fixture.orm, (query) => query.text);
    const bus = createFlakyBus();
    const publisher = publisherOver(bus, 500);
    const ids: string[] = [];
    publisher.start();
    try {
      for (let rank = 1; rank <= 5; rank++) {
        const id = await insertEvent(aggregateAt(rank), 1);
        ids.push(id);
        publisher.nudge();
        await until(() => bus.accepted.some((event) => event.eventId === id), 5_000);
      }
    } finally {
      await publisher.stop();
      restore();
    }
    expect(bus.accepted.map((event) => event.eventId)).toEqual(ids);
    expect(await statusOf(ids)).toEqual(['published']);
    // Each event was claimed by the statement that registered it (and that recorded the one
    // before): the claim statement never ran, and a cycle was one statement.
    expect(statements.filter((text) => text === claimBatchStatement.text)).toEqual([]);
    expect(statements.filter((text) => text === recordDiscoverClaim.text).length).toBeGreaterThanOrEqual(5);
  });
});

describe('the claim plan', () => {
  /** The scans of the claim statement, planned for these values and as the generic plan a prepared statement settles on. */
  async function tableScans() {
    const compiled = claimBatchStatement.bind({ limit: 500, lease_seconds: 30, token: crypto.randomUUID() });
    await fixture.client.query('set jit = off');
    const lines: string[] = [];
    for (const mode of ['force_custom_plan', 'force_generic_plan']) {
      await fixture.client.query(`set plan_cache_mode = ${mode}`);
      const plan = (await fixture.client.query(`explain ${compiled.sql}`, [...compiled.parameters])).rows.map((row) => row['QUERY PLAN'] as string);
      lines.push(...plan.filter((line) => /(Scan|Update).* on (event_outbox|outbox_delivery)/.test(line)).map((line) => line.trim().replace(/\s+\(cost=.*$/, '')));
    }
    await fixture.client.query('reset plan_cache_mode');
    return lines;
  }

  it('reads candidates from a partial index of undelivered aggregates and each run by its key, however many events are delivered', async () => {
    const { sessionIds } = await seedPendingEvents(fixture.client, { sessions: 1_000, perSession: 20 });
    await setDeliveryStates(fixture.client, sessionIds.map((aggregateId) => ({ aggregateId, deliveredThrough: 10 })));
    await fixture.client.query('vacuum analyze event_outbox');
    await fixture.client.query('vacuum analyze outbox_delivery');
    const scans = await tableScans();
    expect(scans.length).toBeGreaterThan(0);
    expect(scans.filter((line) => /Seq Scan on event_outbox|Bitmap Heap Scan on event_outbox/.test(line))).toEqual([]);
    // Candidates come from a partial index of aggregates with undelivered events, never the whole table.
    expect(scans.some((line) => /Index Scan using outbox_delivery_(due|undelivered)_idx/.test(line))).toBe(true);
    expect(scans.filter((line) => / on event_outbox\b/.test(line)).every((line) => line.includes('event_outbox_aggregate_sequence_key'))).toBe(true);
  });

  it('reads the rows it claims by their key, however many aggregates are delivered', async () => {
    // Ten thousand sessions whose events are all delivered, beside a thousand with some to deliver.
    const delivered = await seedPendingEvents(fixture.client, { sessions: 10_000, perSession: 1 });
    await setDeliveryStates(fixture.client, delivered.sessionIds.map((aggregateId) => ({ aggregateId, deliveredThrough: 1 })));
    const { sessionIds } = await seedPendingEvents(fixture.client, { sessions: 1_000, perSession: 5 });
    await setDeliveryStates(fixture.client, sessionIds.map((aggregateId) => ({ aggregateId, deliveredThrough: 0 })));
    await fixture.client.query('vacuum analyze outbox_delivery');
    const scans = await tableScans();
    expect(scans.some((line) => /Update on outbox_delivery/.test(line))).toBe(true);
    expect(scans.filter((line) => /Seq Scan on outbox_delivery|Bitmap Heap Scan on outbox_delivery/.test(line))).toEqual([]);
  });
});

describe('the recording plans', () => {
  /**
   * The rows every node of the plan of `sql`, prepared as the publisher prepares it, handled (rows ×
   * loops, summed), executed and rolled back.
   */
  async function rowsHandled(sql: string, parameters: readonly unknown[]) {
    await fixture.client.query('begin');
    try {
      await fixture.client.query(`prepare recording as ${sql}`);
      // EXECUTE takes no bound parameters: each goes as a literal of unknown type, as text would.
      const element = (value: unknown) => (value === null ? 'NULL' : `"${String(value).replace(/["\\]/g, '\\$&')}"`);
      const literal = (value: unknown) => fixture.client.escapeLiteral(Array.isArray(value) ? `{${value.map(element).join(',')}}` : String(value));
      const { rows } = await fixture.client.query(`explain (analyze, format json) execute recording(${parameters.map(literal).join(', ')})`);
      const sum = (node: { 'Actual Rows': number; 'Actual Loops': number; Plans?: unknown[] }): number =>
        node['Actual Rows'] * node['Actual Loops'] + (node.Plans ?? []).reduce<number>((total, child) => total + sum(child as typeof node), 0);
      return sum(rows[0]['QUERY PLAN'][0].Plan);
    } finally {
      await fixture.client.query('rollback');
      await fixture.client.query('deallocate all');
    }
  }

  it('records a batch of 500 aggregates in work that grows with the batch, not its square, in generic and custom plans', async () => {
    // A backlog over very many short sessions: a batch holds 500 of them, and with 30,000 the
    // generic plan of a lookup by `= any(...)` believes it finds one row.
    const { sessionIds } = await seedPendingEvents(fixture.client, { sessions: 30_000, perSession: 1 });
    await setDeliveryStates(fixture.client, sessionIds.map((aggregateId) => ({ aggregateId, deliveredThrough: 0 })));
    await fixture.client.query('vacuum analyze outbox_delivery');
    const batch = await claim({ limit: 500 });
    expect(batch.runs).toHaveLength(500);
    const aggregateIds = batch.runs.map((run) => run.aggregateId);
    const statements = [
      recordOutcome.bind({
        token: batch.token,
        aggregate_ids: aggregateIds,
        delivered_throughs: aggregateIds.map(() => 1),
        attempts: aggregateIds.map(() => 0),
        retry_in_ms: aggregateIds.map(() => 0),
        errors: aggregateIds.map(() => null),
        failed: aggregateIds.map(() => false),
      }),
      recordDiscoverClaim.bind({ token: batch.token, aggregate_ids: aggregateIds, delivered_throughs: aggregateIds.map(() => 1), claim_token: crypto.randomUUID(), claim_limit: 500, lease_seconds: 30 }),
    ];
    await fixture.client.query('set jit = off');
    for (const mode of ['force_custom_plan', 'force_generic_plan']) {
      await fixture.client.query(`set plan_cache_mode = ${mode}`);
      for (const statement of statements) {
        // Quadratic plans handled 250,000 rows here (the outcomes rescanned once per row).
        expect(await rowsHandled(statement.sql, statement.parameters)).toBeLessThan(20 * 500);
      }
    }
    await fixture.client.query('reset plan_cache_mode');
    // And the batch records for real, every aggregate once.
    expect(await deliver(batch)).toBe(500);
  });
});

describe('the claim\'s row writes', () => {
  it('stay on their rows\' pages (HOT): a claim of 500 freshly registered aggregates adds no index entry', async () => {
    // A backlog over many short sessions: every aggregate of the batch is claimed by one update of
    // its attempt, lease, token and run, none of which an index holds.
    await seedPendingEvents(fixture.client, { sessions: 2_000, perSession: 1 });
    await discoverNewEvents(fixture.orm);
    const claim = claimBatchStatement.bind({ limit: 500, lease_seconds: 30, token: crypto.randomUUID() });
    // This connection's counts not yet reported (this transaction's, and maybe earlier ones'), before and after.
    const counts = async () =>
      (await fixture.client.query(`select n_tup_upd::int as updated, n_tup_hot_upd::int as hot from pg_stat_xact_user_tables where relname = 'outbox_delivery'`)).rows[0];
    await fixture.client.query('begin');
    try {
      const before = await counts();
      const { rows } = await fixture.client.query(claim.sql, [...claim.parameters]);
      expect(rows).toHaveLength(500);
      const after = await counts();
      // With the table's pages filled to 80 %, four claims in five moved their row and indexed it anew.
      expect({ updated: after.updated - before.updated, hot: after.hot - before.hot }).toEqual({ updated: 500, hot: 500 });
    } finally {
      await fixture.client.query('rollback');
    }
  });
});

describe('the registration plan', () => {
  it('reads the log past the watermark and the last snapshot by the transaction-id index, in generic and custom plans, with a transaction held open', async () => {
    const { sessionIds } = await seedPendingEvents(fixture.client, { sessions: 1_000, perSession: 20 });
    await setDeliveryStates(fixture.client, sessionIds.map((aggregateId) => ({ aggregateId, deliveredThrough: 20 })));
    const open = new pg.Client({ connectionString: fixture.db.url });
    await open.connect();
    try {
      await open.query('begin');
      await open.query('select pg_current_xact_id()');
      await fixture.client.query(discoverEvents.text);
      await insertEvent(aggregateAt(1), 1);
      await fixture.client.query(discoverEvents.text);
      await fixture.client.query('vacuum analyze event_outbox');
      await fixture.client.query('set jit = off');
      for (const mode of ['force_custom_plan', 'force_generic_plan']) {
        await fixture.client.query(`set plan_cache_mode = ${mode}`);
        await fixture.client.query(`prepare registration as ${discoverEvents.text}`);
        const plan = (await fixture.client.query('explain execute registration')).rows.map((row) => row['QUERY PLAN'] as string).join('\n');
        await fixture.client.query('deallocate registration');
        expect(plan).not.toMatch(/Seq Scan on event_outbox/);
        expect(plan).toContain('event_outbox_transaction_id_idx');
      }
      await fixture.client.query('reset plan_cache_mode');
      // Read by two short ranges, it still registers what commits.
      await insertEvent(aggregateAt(2), 1);
      expect((await claim({ limit: 10 })).rows.map((row) => row.aggregate_id)).toEqual([aggregateAt(1), aggregateAt(2)]);
    } finally {
      await open.query('rollback');
      await open.end();
    }
  });
});

describe('OutboxPublisher with many blocked sessions', () => {
  it('finds a due event behind more failed sessions than a batch holds, without waiting for a poll', async () => {
    for (const rank of [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]) {
      await insertEvent(aggregateAt(rank), 1, 'failed');
      await insertEvent(aggregateAt(rank), 2);
    }
    const bus = createFlakyBus();
    const publisher = publisherOver(bus, 2);
    const middle = await insertEvent(aggregateAt(6), 1);
    publisher.start();
    try {
      await until(() => bus.accepted.some((event) => event.eventId === middle), 5_000);
      const early = await insertEvent(aggregateAt(0), 1);
      publisher.nudge();
      await until(() => bus.accepted.some((event) => event.eventId === early), 5_000);
      expect(bus.accepted.map((event) => event.eventId)).toEqual([middle, early]);
    } finally {
      await publisher.stop();
    }
  });
});
