import type { Db } from '../platform/db/database.ts';
import { runPrepared, type Orm } from '../platform/db/orm.ts';
import type { AggregateType, EventRow, EventType } from '../events/domain-event.ts';
import type { OutboxStatus } from './outbox-event.entity.ts';
import { claimBatch as claimBatchStatement, type ClaimedEventRow } from './sql/claim-batch.sql.ts';
import { discoverEvents } from './sql/discover-events.sql.ts';
import { ANALYZE_AFTER_REGISTERING, analyzeDelivery } from './sql/analyze-delivery.sql.ts';
import { recordOutcome } from './sql/record-outcome.sql.ts';
import { recordDiscoverClaim } from './sql/record-discover-claim.sql.ts';

/**
 * What the publisher runs, as functions over the statements in ./sql (one file per statement).
 * Statements the publisher runs on every cycle go through named prepared statements.
 */

/** A claimed event: the event's columns plus its aggregate's bookkeeping. */
export interface OutboxRow extends EventRow {
  event_type: EventType;
  aggregate_type: AggregateType;
  status: OutboxStatus;
  /** The attempts of the run this event belongs to, this one counted. */
  attempts: number;
}

/** A claimed aggregate: its run of events and where it stood. */
export interface ClaimedRun {
  aggregateId: string;
  /** Its position before this batch: the run starts at deliveredThrough + 1. */
  deliveredThrough: number;
  /** Attempts of the head, this one counted. */
  attempts: number;
  /** The run, gapless from deliveredThrough + 1 (empty when it could not be read). */
  rows: OutboxRow[];
}

export interface ClaimOptions {
  limit: number;
  token: string;
  leaseMs: number;
  /** Run as a named prepared statement (default true; see OUTBOX_PREPARED_STATEMENTS). */
  prepared?: boolean;
}

export interface ClaimResult {
  /** The claimed rows, in publishing order: by aggregate turn, then by sequence. */
  rows: OutboxRow[];
  runs: ClaimedRun[];
}

/** A batch the bus accepted in full, to be recorded by the next registration (see record-discover-claim.sql.ts). */
export interface DeliveredBatch {
  token: string;
  runs: { aggregateId: string; deliveredThrough: number }[];
}

/** What the statement a publisher's cycle starts with did (see record-discover-claim.sql.ts). */
export interface CycleStart {
  registered: number;
  /** How many aggregates of the delivered batch were still held by its claim, and recorded. */
  recorded: number;
  /** What it claimed at once (empty when it claimed nothing). */
  claimed: ClaimResult;
  /** Whether the claim statement may find something it did not claim. */
  claimMore: boolean;
}

/**
 * Records `delivered` (when given), registers newly committed events, and claims at once what
 * they made due when `claim` is given; see record-discover-claim.sql.ts.
 */
export async function recordDiscoverAndClaim(orm: Orm, delivered: DeliveredBatch | null, claim: ClaimOptions | null, prepared = true): Promise<CycleStart> {
  const rows = await runPrepared(
    orm,
    recordDiscoverClaim.bind({
      token: delivered?.token ?? null,
      aggregate_ids: delivered?.runs.map((run) => run.aggregateId) ?? [],
      delivered_throughs: delivered?.runs.map((run) => run.deliveredThrough) ?? [],
      claim_token: claim?.token ?? ZERO_TOKEN,
      claim_limit: claim?.limit ?? 0,
      lease_seconds: (claim?.leaseMs ?? 0) / 1000,
    }),
    prepared,
  );
  const first = rows[0];
  const registered = await analyzedAfter(orm, first?.registered ?? 0);
  const claimedRows = rows.filter((row): row is typeof row & ClaimedEventRow => row.aggregate_id !== null);
  return { registered, recorded: first?.recorded ?? 0, claimed: runsOf(claimedRows), claimMore: first?.claim_more ?? true };
}

/** A token no claim carries: a statement told to claim nothing is given it. */
const ZERO_TOKEN = '00000000-0000-0000-0000-000000000000';

/**
 * Registers newly committed events with their aggregates (see discover-events.sql.ts), recording
 * `delivered` in the same statement when given; returns how many aggregates were registered and recorded.
 */
export async function discoverNewEvents(orm: Orm, prepared = true, delivered: DeliveredBatch | null = null): Promise<{ registered: number; recorded: number }> {
  if (delivered) {
    const { registered, recorded } = await recordDiscoverAndClaim(orm, delivered, null, prepared);
    return { registered, recorded };
  }
  const rows = await runPrepared(orm, discoverEvents.bind({}), prepared);
  return { registered: await analyzedAfter(orm, rows[0]?.registered ?? 0), recorded: 0 };
}

/** Refreshes `outbox_delivery`'s statistics after a registration that grew it a lot; returns `registered`. */
async function analyzedAfter(orm: Orm, registered: number): Promise<number> {
  if (registered >= ANALYZE_AFTER_REGISTERING) await runPrepared(orm, analyzeDelivery.bind({}), false);
  return registered;
}

/** Claims the next batch (see claim-batch.sql.ts). */
export async function claimBatch(orm: Orm, options: ClaimOptions): Promise<ClaimResult> {
  const rows = await runPrepared(orm, claimBatchStatement.bind({ limit: options.limit, lease_seconds: options.leaseMs / 1000, token: options.token }), options.prepared ?? true);
  return runsOf(rows);
}

function runsOf(rows: ClaimedEventRow[]): ClaimResult {
  rows.sort((a, b) => Number(a.turn) - Number(b.turn));
  const runs = new Map<string, ClaimedRun>();
  for (const row of rows) {
    let run = runs.get(row.aggregate_id);
    if (!run) runs.set(row.aggregate_id, (run = { aggregateId: row.aggregate_id, deliveredThrough: row.delivered_through, attempts: row.attempts, rows: [] }));
    // Gapless from the position only; nothing after a missing number is published.
    if (row.id === null || row.sequence !== run.deliveredThrough + run.rows.length + 1) continue;
    const { attempts, delivered_through: _position, turn: _turn, id, ...event } = row;
    // Types are checked by the event contract when the row is turned into an event (eventFromRow).
    run.rows.push({ ...(event as Omit<OutboxRow, 'id' | 'status' | 'attempts'>), id, status: 'pending', attempts });
  }
  const list = [...runs.values()];
  return { runs: list, rows: list.flatMap((run) => run.rows) };
}

/** What became of one claimed aggregate. */
export interface RunOutcome {
  aggregateId: string;
  deliveredThrough: number;
  attempts: number;
  retryInMs: number;
  error: string | null;
  failed: boolean;
}

/** Records a batch's outcomes and ends its claim; returns how many aggregates were still held by it. */
export async function recordOutcomes(db: Db | Orm, token: string, outcomes: readonly RunOutcome[], prepared = true): Promise<number> {
  if (outcomes.length === 0) return 0;
  const query = recordOutcome.bind({
    token,
    aggregate_ids: outcomes.map((o) => o.aggregateId),
    delivered_throughs: outcomes.map((o) => o.deliveredThrough),
    attempts: outcomes.map((o) => o.attempts),
    retry_in_ms: outcomes.map((o) => o.retryInMs),
    errors: outcomes.map((o) => o.error),
    failed: outcomes.map((o) => o.failed),
  });
  const rows = 'executeQuery' in db ? (await db.executeQuery(query)).rows : await runPrepared(db, query, prepared);
  return rows.length;
}
