import { beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/platform/logger.ts';
import { OutboxPublisher } from '../src/outbox/outbox.publisher.ts';
import { claimBatch, claimBatchQuery, type ClaimOptions } from '../src/outbox/outbox.sql.ts';
import { useTestDatabase } from './support/app.ts';
import { createFlakyBus } from './support/flaky-bus.ts';
import { insertEvents, seedMessage, seedPendingEvents } from './support/outbox-seed.ts';
import { until } from './support/until.ts';

// How the claim finds the next events: the walk over aggregates, its bound, and events handed to
// the bus whose bookkeeping is still in flight.

const fixture = useTestDatabase();
beforeEach(async () => {
  await fixture.client.query('truncate event_outbox');
});

const silent = createLogger({ level: 'silent', pretty: false });

/** Claims and commits, as the publisher does; returns the claim's token with its result. */
async function claim(options: Partial<ClaimOptions> & { limit: number }) {
  const token = options.token ?? crypto.randomUUID();
  return { token, ...(await claimBatch(fixture.orm, { leaseMs: 30_000, ...options, token })) };
}

/** What a publisher passes to its next claim once the bus accepted a batch. */
const handOver = (batch: { token: string; rows: { id: string }[] }) => ({ ids: batch.rows.map((row) => row.id), token: batch.token, mark: true });

const statusOf = async (ids: string[]) => (await fixture.client.query('select distinct status from event_outbox where id = any($1)', [ids])).rows.map((row) => row.status);

/** An aggregate id that sorts at `rank` (0-255): the walk visits aggregates in id order. */
const aggregateAt = (rank: number) => `${rank.toString(16).padStart(2, '0')}000000-0000-4000-8000-000000000000`;

const PROJECT_ID = '00000000-0000-4000-8000-00000000000f';

/** One event of `aggregateId`, as the write path would have numbered it. */
async function insertEvent(aggregateId: string, sequence: number, status: 'pending' | 'failed' = 'pending') {
  const { rows } = await fixture.client.query<{ next: number }>('select coalesce(max(project_sequence), 0)::int + 1 as next from event_outbox');
  const [id] = await insertEvents(fixture.client, [
    {
      event: seedMessage(PROJECT_ID, aggregateId, { authorUserId: 'u', body: 'x' }),
      sequence,
      projectSequence: rows[0]!.next,
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
    // Handed to the bus: the next claim marks them published, and the run goes on from 501.
    const second = await claim({ limit: 500, handedOver: handOver(first) });
    expect(second.marked).toBe(500);
    expect(await statusOf(first.rows.map((row) => row.id))).toEqual(['published']);
    expect(second.rows.map((row) => row.sequence)).toEqual(Array.from({ length: 500 }, (_, i) => i + 501));
  });

  it('claims the same without a prepared statement (OUTBOX_PREPARED_STATEMENTS=false)', async () => {
    await seedPendingEvents(fixture.client, { sessions: 2, perSession: 3 });
    const first = await claim({ limit: 4, prepared: false });
    expect(first.rows.map((row) => row.sequence).sort()).toEqual([1, 1, 2, 2]);
    const second = await claim({ limit: 4, prepared: false, handedOver: handOver(first) });
    expect(second.marked).toBe(4);
    expect(second.rows.map((row) => row.sequence)).toEqual([3, 3]);
  });

  it('holds back the next event of a session until the earlier one is published or handed over', async () => {
    const { sessionIds } = await seedPendingEvents(fixture.client, { sessions: 1, perSession: 2 });
    const first = await claim({ limit: 1 });
    expect(first.rows.map((row) => row.sequence)).toEqual([1]);
    // The first event is claimed and not yet published: nobody may take the second.
    expect((await claim({ limit: 10 })).rows).toEqual([]);
    const second = await claim({ limit: 10, handedOver: handOver(first) });
    expect(second.rows.map((row) => [row.aggregate_id, row.sequence])).toEqual([[sessionIds[0], 2]]);
  });

  it('leaves the update of a handed-over batch to the caller when told to, still claiming past it', async () => {
    const { sessionIds } = await seedPendingEvents(fixture.client, { sessions: 1, perSession: 2 });
    const first = await claim({ limit: 1 });
    const second = await claim({ limit: 10, handedOver: { ...handOver(first), mark: false } });
    expect(second.marked).toBe(0);
    expect(await statusOf(first.rows.map((row) => row.id))).toEqual(['pending']);
    expect(second.rows.map((row) => [row.aggregate_id, row.sequence])).toEqual([[sessionIds[0], 2]]);
  });

  it('marks handed-over events published only while they are still held under the claim that handed them over', async () => {
    await seedPendingEvents(fixture.client, { sessions: 1, perSession: 1 });
    const first = await claim({ limit: 1 });
    // The lease lapsed and another publisher claimed the event again.
    await fixture.client.query('update event_outbox set claim_token = $1', [crypto.randomUUID()]);
    const second = await claim({ limit: 1, handedOver: handOver(first) });
    expect(second.marked).toBe(0);
    expect(await statusOf(first.rows.map((row) => row.id))).toEqual(['pending']);
  });

  it('shares a batch between sessions, each a gapless run from its head', async () => {
    await seedPendingEvents(fixture.client, { sessions: 3, perSession: 10 });
    const { rows } = await claim({ limit: 10 });
    const perSession = new Map<string, number[]>();
    for (const row of rows) perSession.set(row.aggregate_id, [...(perSession.get(row.aggregate_id) ?? []), row.sequence]);
    // 10 over 3 heads: 4, 3, 3, each a gapless run from its head.
    expect([...perSession.values()].map((s) => s.length).sort()).toEqual([3, 3, 4]);
    for (const sequences of perSession.values()) expect(sequences).toEqual(Array.from({ length: sequences.length }, (_, i) => i + 1));
  });

  it('looks at no more than walkLimit aggregates per claim, then resumes after the last one', async () => {
    for (let rank = 1; rank <= 5; rank++) await insertEvent(aggregateAt(rank), 1);
    const first = await claim({ limit: 10, walkLimit: 2 });
    expect(first.rows.map((row) => row.aggregate_id)).toEqual([aggregateAt(1), aggregateAt(2)]);
    expect(first.walkAfter).toBe(aggregateAt(2));
    const second = await claim({ limit: 10, walkLimit: 2, walkAfter: first.walkAfter });
    expect(second.rows.map((row) => row.aggregate_id)).toEqual([aggregateAt(3), aggregateAt(4)]);
    const third = await claim({ limit: 10, walkLimit: 2, walkAfter: second.walkAfter });
    // Reached the end: the next walk starts over.
    expect(third.rows.map((row) => row.aggregate_id)).toEqual([aggregateAt(5)]);
    expect(third.walkAfter).toBeNull();
  });

  it('skips sessions whose head failed or waits for a retry, and reports the walk position even when it claims nothing', async () => {
    await insertEvent(aggregateAt(1), 1, 'failed');
    await insertEvent(aggregateAt(1), 2);
    await insertEvent(aggregateAt(2), 1);
    await fixture.client.query(`update event_outbox set next_retry_at = now() + interval '1 hour' where aggregate_id = $1`, [aggregateAt(2)]);
    await insertEvent(aggregateAt(3), 1);
    const blocked = await claim({ limit: 10, walkLimit: 2 });
    expect(blocked.rows).toEqual([]);
    expect(blocked.walkAfter).toBe(aggregateAt(2));
    const after = await claim({ limit: 10, walkLimit: 2, walkAfter: blocked.walkAfter });
    expect(after.rows.map((row) => row.aggregate_id)).toEqual([aggregateAt(3)]);
  });
});

describe('the claim plan', () => {
  /**
   * How the claim statement reads event_outbox, planned for these values and as the generic plan
   * a prepared statement settles on: the scans of the table and the indexes they use.
   */
  async function tableScans(options: Partial<ClaimOptions> = {}) {
    const compiled = claimBatchQuery({ limit: 500, token: crypto.randomUUID(), leaseMs: 30_000, ...options });
    await fixture.client.query('set jit = off');
    const lines: string[] = [];
    for (const mode of ['force_custom_plan', 'force_generic_plan']) {
      await fixture.client.query(`set plan_cache_mode = ${mode}`);
      const plan = (await fixture.client.query(`explain ${compiled.sql}`, [...compiled.parameters])).rows.map((row) => row['QUERY PLAN'] as string);
      lines.push(...plan.filter((line) => /(Scan|Update).* on event_outbox/.test(line)).map((line) => line.trim().replace(/\s+\(cost=.*$/, '')));
    }
    await fixture.client.query('reset plan_cache_mode');
    return lines;
  }

  // Only per-session ranges of the unpublished index, and the primary key for the update: never
  // the pending index (all due events, filtered by session) or a sequential scan.
  const expected = (line: string) =>
    /^(-> +)?((Index|Index Only) Scan using|Bitmap Index Scan on) (event_outbox_unpublished_idx|event_outbox_pkey)\b/.test(line) ||
    /^(-> +)?(Update on|Bitmap Heap Scan on) event_outbox\b/.test(line);

  it('reads only per-session index ranges when a sudden backlog arrives after statistics said the table was empty', async () => {
    await fixture.client.query('analyze event_outbox');
    await seedPendingEvents(fixture.client, { sessions: 200, perSession: 100 });
    const scans = await tableScans();
    expect(scans.length).toBeGreaterThan(0);
    expect(scans.filter((line) => !expected(line))).toEqual([]);
  });

  it('reads only per-session index ranges with fresh statistics over a large backlog and many published events', async () => {
    await seedPendingEvents(fixture.client, { sessions: 1_000, perSession: 20 });
    await fixture.client.query(`update event_outbox set status = 'published', published_at = now() where sequence <= 10`);
    await fixture.client.query('vacuum analyze event_outbox');
    const handedOver = (await fixture.client.query('select id from event_outbox where sequence = 11 limit 400')).rows.map((row) => row.id);
    const scans = await tableScans({ handedOver: { ids: handedOver, token: crypto.randomUUID(), mark: true }, walkAfter: aggregateAt(1) });
    expect(scans.filter((line) => !expected(line))).toEqual([]);
  });
});

describe('OutboxPublisher walking many blocked sessions', () => {
  it('finds a due event behind more blocked sessions than one claim looks at, and after a wrap-round, without waiting for a poll', async () => {
    // batchSize 2: each claim looks at 4 aggregates. Ranks 1-5 and 7-12 have a failed head.
    for (const rank of [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]) {
      await insertEvent(aggregateAt(rank), 1, 'failed');
      await insertEvent(aggregateAt(rank), 2);
    }
    const bus = createFlakyBus();
    const publisher = new OutboxPublisher({
      orm: fixture.orm,
      bus: bus.bus,
      logger: silent,
      options: { batchSize: 2, pollIntervalMs: 600_000, maxAttempts: 5, backoffBaseMs: 20, backoffMaxMs: 100, claimLeaseMs: 30_000 },
    });
    const middle = await insertEvent(aggregateAt(6), 1);
    publisher.start();
    try {
      // Found by the walks that follow the first one, which stopped at its limit.
      await until(() => bus.accepted.some((event) => event.eventId === middle), 5_000);
      // Let the walk settle past rank 6, then write before where it stands: reached only by
      // walking on to the end and coming round from the start.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const early = await insertEvent(aggregateAt(0), 1);
      publisher.nudge();
      await until(() => bus.accepted.some((event) => event.eventId === early), 5_000);
      expect(bus.accepted.map((event) => event.eventId)).toEqual([middle, early]);
    } finally {
      await publisher.stop();
    }
  });
});
