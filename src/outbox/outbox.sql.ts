import { CompiledQuery, sql } from 'kysely';
import type { Db } from '../platform/db/database.ts';
import { runPrepared, type Orm } from '../platform/db/orm.ts';
import type { AggregateType, EventRow, EventType } from '../events/domain-event.ts';
import type { OutboxStatus } from './outbox-event.entity.ts';

/**
 * Every statement the OutboxPublisher runs, in one place. Each takes the query builder of the
 * EntityManager it runs in, so it joins that EntityManager's transaction.
 */

/** A claimed row: the event's columns plus the publisher's bookkeeping. */
export interface OutboxRow extends EventRow {
  event_type: EventType;
  aggregate_type: AggregateType;
  status: OutboxStatus;
  attempts: number;
}

export interface ClaimOptions {
  limit: number;
  token: string;
  leaseMs: number;
  /**
   * The previous batch, all of whose events the bus accepted: the claim counts the events still
   * held under its `token` as published already when it looks for heads, so the next events of
   * their aggregates can be claimed. With `mark`, it also marks them published (where they are
   * still held under that token) in the same statement; without, their update runs elsewhere.
   */
  handedOver?: { ids: readonly string[]; token: string; mark: boolean } | null;
  /** Resume the walk over aggregates after this aggregate id (null: from the start). */
  walkAfter?: string | null;
  /** At most this many aggregates are looked at per claim (default: 2 * limit). */
  walkLimit?: number;
  /** Run as a named prepared statement (default true; see OUTBOX_PREPARED_STATEMENTS). */
  prepared?: boolean;
}

export interface ClaimResult {
  /** The claimed rows, in publishing order: by head, then by sequence. */
  rows: OutboxRow[];
  /** Where the next claim's walk resumes: the last aggregate looked at, or null once the walk reached the end. */
  walkAfter: string | null;
  /** How many handed-over events were marked published (fewer than handed over: their claim lapsed). */
  marked: number;
}

type ClaimRow = OutboxRow & { turn: string; walk_after: string | null; marked: string };

/**
 * Marks the previous batch published and claims the next one, in one statement. The heads of
 * aggregates (the oldest event of each aggregate not yet published) are found by walking the
 * partial index of unpublished events one aggregate at a time (a loose index scan), so a claim
 * costs one index probe per aggregate with undelivered events, not one per undelivered event:
 * 100,000 events queued in one session cost what one does. An aggregate whose head is waiting for
 * a retry, is failed, or is held by another publisher contributes nothing, so a stuck event holds
 * back its own aggregate only.
 *
 * - Claimable heads are taken oldest first. The walk looks at no more than `walkLimit` aggregates
 *   and the next claim continues where it stopped, wrapping round, so with more aggregates than
 *   that the claim stays bounded and every aggregate still gets its turn.
 * - Each head brings up to its share of `limit` events of its run, so a backlog in one session
 *   drains in full batches and a backlog over many sessions gives each one a turn.
 * - Rows are locked with SKIP LOCKED, and the claimable condition is re-checked on the latest row
 *   version: a row another publisher claimed or finished since this statement's snapshot is left
 *   out. Only the gapless prefix of each run from its head is kept, so a run never skips a row
 *   someone else holds.
 * - The claim counts the attempt and sets a lease, and commits before anything is published: a
 *   publisher that dies mid-publish has still used an attempt (a poison pill cannot loop
 *   forever), and its rows become claimable again when the lease lapses.
 *
 * The statement's text is fixed (one per "walk from the start" / "walk after"), and it runs as a
 * prepared statement: under a steady trickle of events it runs hundreds of times a second.
 */
export async function claimBatch(orm: Orm, options: ClaimOptions): Promise<ClaimResult> {
  const rows = await runPrepared(orm, claimBatchQuery(options), options.prepared ?? true);
  const walkAfter = rows[0]?.walk_after ?? null;
  const marked = Number(rows[0]?.marked ?? 0);
  const claimed = rows
    .filter((row) => row.id !== null)
    .sort((a, b) => Number(a.turn) - Number(b.turn) || a.sequence - b.sequence)
    .map(({ turn: _turn, walk_after: _walkAfter, marked: _marked, ...row }) => row);
  return { rows: claimed, walkAfter, marked };
}

/** The statement claimBatch runs (exported so a test can check its plan). */
export function claimBatchQuery(options: ClaimOptions): CompiledQuery<ClaimRow> {
  const { limit, token, leaseMs } = options;
  const parameters = [
    options.handedOver?.mark ? options.handedOver.ids : [],
    options.handedOver?.token ?? null,
    limit,
    options.walkLimit ?? limit * 2,
    leaseMs / 1000,
    token,
    ...(options.walkAfter ? [options.walkAfter] : []),
  ];
  return CompiledQuery.raw(options.walkAfter ? CLAIM_WALKING_AFTER : CLAIM_WALKING_FROM_START, parameters) as CompiledQuery<ClaimRow>;
}

/**
 * Pending, due and not held by a claim. "Pending" is written as "neither published nor failed" on
 * purpose: `status = 'pending'` would let the planner read a session's run through the partial
 * pending index (every due event, then filter by session) instead of the session's own index
 * range. With statistics taken before a sudden backlog it did, once per head, and the claim slowed
 * by an order of magnitude (docs/design-notes.md#measurements-behind-some-choices).
 */
const claimable = (t: string) =>
  `${t}.status <> 'published' and ${t}.status <> 'failed' and ${t}.next_retry_at <= now() and (${t}.claimed_until is null or ${t}.claimed_until <= now())`;

const notHandedOver = `coalesce(claim_token <> $2::uuid, true)`;

// $1 handed-over ids to mark published here, $2 the handed-over batch's claim token, $3 limit,
// $4 walk limit, $5 lease in seconds, $6 this claim's token, $7 (only when walking after an
// aggregate) where the walk starts.
const claimStatement = (walkAfter: boolean) => `
    with recursive marked as (
      update event_outbox
      set status = 'published', published_at = now(), claimed_until = null, claim_token = null, last_error = null
      where id = any($1::uuid[]) and claim_token = $2::uuid
      returning id
    ),
    -- Heads: the first event of each aggregate that is not published, counting the handed-over
    -- batch's (still held under its token) as published: this statement's snapshot does not see
    -- the update above, and that batch may be being marked on another connection. One column
    -- check per row, not a search of the batch's ids.
    walk as (
      (
        select aggregate_id, sequence, status, next_retry_at, claimed_until, created_at, 1 as step
        from event_outbox
        where status <> 'published' and ${notHandedOver} ${walkAfter ? 'and aggregate_id > $7::uuid' : ''}
        order by aggregate_id, sequence
        limit 1
      )
      union all
      (
        select next.*, walk.step + 1
        from walk
        cross join lateral (
          select aggregate_id, sequence, status, next_retry_at, claimed_until, created_at
          from event_outbox
          where status <> 'published' and ${notHandedOver} and aggregate_id > walk.aggregate_id
          order by aggregate_id, sequence
          limit 1
        ) next
        where walk.step < $4::int
      )
    ),
    due_heads as (
      select aggregate_id, sequence as head_sequence, next_retry_at, created_at
      from walk h
      where ${claimable('h')}
      order by next_retry_at, created_at
      limit $3::int
    ),
    heads as (
      select *, row_number() over (order by next_retry_at, created_at) as turn, count(*) over () as head_count from due_heads
    ),
    locked as (
      select run.id, run.aggregate_id, run.sequence, heads.head_sequence, heads.turn
      from heads
      cross join lateral (
        select f.id, f.aggregate_id, f.sequence
        from event_outbox f
        where f.aggregate_id = heads.aggregate_id and f.sequence >= heads.head_sequence and ${claimable('f')}
        order by f.sequence
        -- An equal share of the batch per head; the first heads take what does not divide evenly.
        limit $3::int / heads.head_count + case when heads.turn <= $3::int % heads.head_count then 1 else 0 end
        for update of f skip locked
      ) run
    ),
    -- Sequences are distinct, so a run is gapless from its head exactly while sequence - head
    -- equals the row's rank within the run.
    kept as (
      select id, turn from (
        select locked.*, row_number() over (partition by aggregate_id order by sequence) as rank from locked
      ) ranked
      where sequence - head_sequence = rank - 1
    ),
    claimed as (
      update event_outbox e
      set attempts = e.attempts + 1,
          claimed_until = now() + make_interval(secs => $5::float8),
          claim_token = $6::uuid
      from kept
      where e.id = kept.id
      returning e.id, e.event_type, e.aggregate_type, e.aggregate_id, e.sequence, e.project_sequence, e.project_id,
                e.user_id, e.session_id, e.payload, e.status, e.attempts, e.created_at, e.trace_context, kept.turn
    ),
    -- A walk that stopped at its limit resumes after its last aggregate; one that reached the end starts over.
    summary as (
      select (select aggregate_id from walk where step = $4::int) as walk_after, (select count(*) from marked) as marked
    )
    -- At least one row, so the walk position and the marked count come back even when nothing was claimable.
    select claimed.*, summary.walk_after, summary.marked from summary left join claimed on true`;

const CLAIM_WALKING_FROM_START = claimStatement(false);
const CLAIM_WALKING_AFTER = claimStatement(true);

/** One round trip for the whole batch. Only rows still held under this claim are touched. */
export async function markPublished(db: Db, ids: string[], token: string): Promise<number> {
  if (ids.length === 0) return 0;
  const result = await sql`
    update event_outbox
    set status = 'published', published_at = now(), claimed_until = null, claim_token = null, last_error = null
    where id = any(${ids}::uuid[]) and claim_token = ${token}`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

export interface FailedPublish {
  id: string;
  /** null: give up and mark the event failed. */
  retryInMs: number | null;
  error: string;
}

export async function markFailedAttempts(db: Db, failures: FailedPublish[], token: string): Promise<void> {
  if (failures.length === 0) return;
  await sql`
    update event_outbox e
    set status = case when f.retry_in_ms is null then 'failed' else 'pending' end,
        next_retry_at = case when f.retry_in_ms is null then e.next_retry_at
                             else now() + make_interval(secs => f.retry_in_ms / 1000.0) end,
        last_error = f.error,
        claimed_until = null,
        claim_token = null
    from unnest(${failures.map((f) => f.id)}::uuid[], ${failures.map((f) => f.retryInMs)}::float8[], ${failures.map((f) => f.error)}::text[])
      as f(id, retry_in_ms, error)
    where e.id = f.id and e.claim_token = ${token}`.execute(db);
}

/**
 * Gives back events that were claimed but not attempted (they queue behind an event of their
 * aggregate that just failed), without counting an attempt.
 */
export async function releaseUnattempted(db: Db, ids: string[], token: string): Promise<void> {
  if (ids.length === 0) return;
  await sql`
    update event_outbox
    set attempts = attempts - 1, claimed_until = null, claim_token = null
    where id = any(${ids}::uuid[]) and claim_token = ${token}`.execute(db);
}
