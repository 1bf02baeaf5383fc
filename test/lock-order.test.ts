import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dbOf } from '../src/platform/db/database.ts';
import { createOrm, forkEm, type Orm } from '../src/platform/db/orm.ts';
import { requeueFailed } from '../src/outbox/outbox-delivery.repository.ts';
import { claimBatch, discoverNewEvents, recordOutcomes, type ClaimResult } from '../src/outbox/outbox.sql.ts';
import { useTestDatabase } from './support/app.ts';
import { connect } from './support/database.ts';
import { insertEvents, seedMessage, setDeliveryState, setDeliveryStates } from './support/outbox-seed.ts';
import { until } from './support/until.ts';

// Every statement that writes several outbox_delivery rows locks them in ascending aggregate_id
// order, whatever its plan reads first: two such statements then never wait on each other in a
// cycle (a deadlock, which PostgreSQL breaks after deadlock_timeout by failing one of them).

const fixture = useTestDatabase();
const PROJECT_ID = crypto.randomUUID();
/** The last sequence written per aggregate; the project's goes on across tests. */
const written = new Map<string, number>();
let projectSequence = 0;

beforeEach(async () => {
  await fixture.client.query('truncate event_outbox, outbox_delivery');
  written.clear();
});

// The order must hold whatever the plan. On a log this small the planner groups by sorting, which
// happens to come out in key order; without sorts it hashes, as it does over a large log.
let unsorted: Orm | undefined;
beforeAll(async () => {
  unsorted = await createOrm({ kind: 'postgresql', url: fixture.db.url }, { settings: { enable_sort: 'off' } });
});
afterAll(async () => {
  await unsorted?.close(true);
});
const planners: [string, () => Orm][] = [
  ['the plans the planner prefers', () => fixture.orm],
  ['plans that avoid sorting', () => unsorted!],
];

const AGGREGATES = 20;

/** Commits the next event of each of `aggregateIds`, in one statement. */
async function writeEvents(aggregateIds: readonly string[]) {
  await insertEvents(
    fixture.client,
    aggregateIds.map((id) => {
      const sequence = (written.get(id) ?? 0) + 1;
      written.set(id, sequence);
      return { event: seedMessage(PROJECT_ID, id), sequence, projectSequence: ++projectSequence };
    }),
  );
}

/**
 * `count` aggregates with one event each, registered one at a time from the highest id down: their
 * rows lie on disk, become due and are claimed in descending key order, so a statement that locks
 * in the order its plan reads rows reaches the lowest last. Returned in ascending order.
 */
async function registeredHighestFirst(count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => crypto.randomUUID()).sort();
  for (const id of ids.toReversed()) {
    await writeEvents([id]);
    await discoverNewEvents(fixture.orm);
  }
  return ids;
}

/** Claims up to `limit` events, oldest due first, as a publisher does. */
async function claim(limit: number): Promise<ClaimResult & { token: string }> {
  const token = crypto.randomUUID();
  return { token, ...(await claimBatch(fixture.orm, { limit, token, leaseMs: 30_000 })) };
}

const delivered = (batch: ClaimResult) => batch.runs.map((run) => ({ aggregateId: run.aggregateId, deliveredThrough: run.deliveredThrough + run.rows.length }));

const lowest = (ids: readonly string[]) => ids.toSorted()[0]!;

/**
 * Runs `statement` while another transaction holds the row of `held`, and once it waits there,
 * tries each of `probed` with NOWAIT from a third connection: locking in ascending order, a
 * statement waiting on the lowest of its rows has locked none of the others. Returns the
 * statement's result (once `held` is released) and the probed ids that were found locked.
 */
async function lockedWhileWaitingOn<T>(held: string, probed: readonly string[], statement: () => Promise<T>): Promise<{ result: T; locked: string[] }> {
  const holder = await connect(fixture.db.url);
  const prober = await connect(fixture.db.url);
  let running: Promise<T> | undefined;
  try {
    await holder.query('begin');
    await holder.query('select from outbox_delivery where aggregate_id = $1 for update', [held]);
    const { rows } = await holder.query<{ pid: number }>('select pg_backend_pid() as pid');
    running = statement();
    running.catch(() => {});
    await until(async () => (await prober.query('select from pg_stat_activity where $1 = any(pg_blocking_pids(pid))', [rows[0]!.pid])).rowCount! > 0);
    const locked: string[] = [];
    for (const id of probed.filter((id) => id !== held)) {
      try {
        await prober.query('select from outbox_delivery where aggregate_id = $1 for update nowait', [id]);
      } catch (error) {
        if ((error as { code?: string }).code !== '55P03') throw error;
        locked.push(id);
      }
    }
    await holder.query('commit');
    return { result: await running, locked };
  } finally {
    await holder.end();
    await prober.end();
    await running?.catch(() => {});
  }
}

const positions = async (ids: readonly string[]) =>
  (
    await fixture.client.query('select written_through, delivered_through, attempts, failed_at is not null as failed, claim_token from outbox_delivery where aggregate_id = any($1) order by aggregate_id', [ids])
  ).rows;

describe.each(planners)('statements writing several delivery positions lock them in key order, with %s', (_planner, orm) => {
  it('registering new events (discover-events)', async () => {
    const ids = await registeredHighestFirst(AGGREGATES);
    await writeEvents(ids);
    const { result, locked } = await lockedWhileWaitingOn(lowest(ids), ids, () => discoverNewEvents(orm()));
    expect(locked).toEqual([]);
    expect(result).toEqual({ registered: AGGREGATES, recorded: 0 });
    expect(new Set((await positions(ids)).map((row) => row.written_through))).toEqual(new Set([2]));
  });

  it('recording a batch (record-outcome)', async () => {
    const ids = await registeredHighestFirst(AGGREGATES);
    const batch = await claim(AGGREGATES);
    expect(batch.runs).toHaveLength(AGGREGATES);
    const outcomes = delivered(batch).map((run) => ({ ...run, attempts: 0, retryInMs: 0, error: null, failed: false }));
    const { result, locked } = await lockedWhileWaitingOn(lowest(ids), ids, () => recordOutcomes(orm(), batch.token, outcomes));
    expect(locked).toEqual([]);
    expect(result).toBe(AGGREGATES);
    expect(await positions(ids)).toEqual(ids.map(() => ({ written_through: 1, delivered_through: 1, attempts: 0, failed: false, claim_token: null })));
  });

  describe('recording a batch and registering new events in one statement (record-and-discover): the batch first, then the rest', () => {
    /** A claimed batch of the highest ids (they are due first), the lowest only registered; a new event for each. */
    async function batchAndOthers() {
      const ids = await registeredHighestFirst(2 * AGGREGATES);
      const batch = await claim(AGGREGATES);
      const claimed = batch.runs.map((run) => run.aggregateId).sort();
      expect(claimed).toEqual(ids.slice(AGGREGATES));
      await writeEvents(ids);
      const others = ids.slice(0, AGGREGATES);
      const record = () => discoverNewEvents(orm(), true, { token: batch.token, runs: delivered(batch) });
      return { ids, claimed, others, record };
    }

    async function expectRecordedAndRegistered(result: { recorded: number; registered: number }, claimed: string[], others: string[]) {
      expect(result).toEqual({ recorded: AGGREGATES, registered: AGGREGATES });
      expect(await positions(claimed)).toEqual(claimed.map(() => ({ written_through: 2, delivered_through: 1, attempts: 0, failed: false, claim_token: null })));
      expect(await positions(others)).toEqual(others.map(() => ({ written_through: 2, delivered_through: 0, attempts: 0, failed: false, claim_token: null })));
    }

    it('waiting on the lowest of the batch, it has locked nothing else', async () => {
      const { ids, claimed, others, record } = await batchAndOthers();
      const { result, locked } = await lockedWhileWaitingOn(lowest(claimed), ids, record);
      expect(locked).toEqual([]);
      await expectRecordedAndRegistered(result, claimed, others);
    });

    it('waiting on the lowest of the rest, it has locked none of the rest', async () => {
      const { claimed, others, record } = await batchAndOthers();
      const { result, locked } = await lockedWhileWaitingOn(lowest(others), others, record);
      expect(locked).toEqual([]);
      await expectRecordedAndRegistered(result, claimed, others);
    });
  });

  it('requeueing failed events (reprocess-failed)', async () => {
    const ids = Array.from({ length: AGGREGATES }, () => crypto.randomUUID()).sort();
    await writeEvents(ids);
    for (const id of ids.toReversed()) await setDeliveryState(fixture.client, id, { deliveredThrough: 0, attempts: 5, lastError: 'bus down', failed: true });
    const { result, locked } = await lockedWhileWaitingOn(lowest(ids), ids, () => requeueFailed(dbOf(forkEm(orm())), { projectId: PROJECT_ID }));
    expect(locked).toEqual([]);
    expect(result.map((row) => row.aggregate_id).sort()).toEqual(ids);
    expect(await positions(ids)).toEqual(ids.map(() => ({ written_through: 1, delivered_through: 0, attempts: 0, failed: false, claim_token: null })));
  });
});

it('the seed helper that benches run beside a running relay (setDeliveryStates) locks in key order too', async () => {
  const ids = await registeredHighestFirst(AGGREGATES);
  const { locked } = await lockedWhileWaitingOn(lowest(ids), ids, () => setDeliveryStates(fixture.client, ids.map((aggregateId) => ({ aggregateId, deliveredThrough: 1 }))));
  expect(locked).toEqual([]);
  expect(await positions(ids)).toEqual(ids.map(() => ({ written_through: 1, delivered_through: 1, attempts: 0, failed: false, claim_token: null })));
});
