import { ADVANCE_WATERMARK, SEEN_SINCE_WATERMARK, WATERMARK } from './discovery-pieces.ts';
import { namedStatement } from './named-statement.ts';
import { heldUnderClaim } from './recording-pieces.ts';
import type { ClaimedEventRow } from './claim-batch.sql.ts';

export interface RecordDiscoverClaimParams extends Record<string, unknown> {
  /** The claim whose batch the bus accepted in full, or null when there is none to record. */
  token: string | null;
  /** Its aggregates (empty when none), and each one's new position: the last event of its run. */
  aggregate_ids: string[];
  delivered_throughs: number[];
  /** The token of the claim this statement may start. */
  claim_token: string;
  /** Claim at once only when this read saw between 1 and this many events (0: never). */
  claim_limit: number;
  /** The new claim's lease, in seconds. */
  lease_seconds: number;
}

/** One row per claimed event (none claimed: one row with null event columns), each with the counts. */
export type RecordDiscoverClaimRow = { [K in keyof ClaimedEventRow]: ClaimedEventRow[K] | null } & {
  registered: number;
  recorded: number;
  /** Whether the claim statement may find something this one did not claim. */
  claim_more: boolean;
};

/** When the claim this statement starts lapses. */
const LEASE = `now() + make_interval(secs => :lease_seconds::float8)`;

/**
 * The registration upsert claims an existing aggregate when this read claims at all (the proposed
 * row carries the token) and the row, as it was, had nothing waiting.
 */
const IDLE = `(excluded.claim_token is not null and d.delivered_through = d.written_through and d.failed_at is null
                     and d.claim_token is null and d.next_retry_at <= now())`;

/**
 * The statement a publisher starts each cycle with. Under a trickle it is the whole cycle's
 * database work: it records the previous batch (which the bus accepted in full), registers newly
 * committed events, and claims at once the aggregates those events made due, returning their
 * runs, in one round trip and one commit. The claim statement (claim-batch.sql.ts) then runs only
 * when something else may be due (`claim_more`): a backlog, a retry that came due, a burst.
 *
 * Recording and registering are what record-outcome.sql.ts and discover-events.sql.ts do; see
 * those for the why. No row is written twice: an aggregate being recorded gets its newly seen
 * events on the same update (its `written_through` raised there), the registration upsert takes
 * the others. An aggregate whose claim lapsed meanwhile is not recorded, and is registered as any
 * other.
 *
 * What is claimed at once, and why it keeps the claim's promises:
 * - Only when this read saw no more events than a batch holds (`claim_limit`): a burst is left to
 *   the claim statement, which fills batches oldest first.
 * - Only an aggregate that had nothing waiting before these events: fully delivered, not failed,
 *   not waiting for a retry, not claimed. Its run is exactly the events just seen, so no older
 *   event is overtaken, and an aggregate already in line keeps its place there.
 * - The row is written once, by the update or the upsert that registers the events, under the
 *   same locks: the attempt is counted and the lease set before anything is published, as a
 *   claim does, and another publisher cannot hold the aggregate at the same time.
 *
 * Locks: the batch's rows, then the registered ones, each run in key order. Registering, this
 * statement holds the watermark, and then no other statement waits for its batch's rows (claims
 * skip locked rows; only the watermark's holder writes other publishers' claimed rows): only the
 * second run meets other statements, all in key order (docs/design-notes.md#lock-order).
 */
export const recordDiscoverClaim = namedStatement<RecordDiscoverClaimParams, RecordDiscoverClaimRow>(`
  with ${WATERMARK}, seen as materialized (${SEEN_SINCE_WATERMARK}
  ), fast as materialized (
    select coalesce(sum(events), 0) between 1 and :claim_limit::int as claiming from seen
  ), ${heldUnderClaim(`select o.*, s.through as seen_through
    from unnest(:aggregate_ids::uuid[], :delivered_throughs::int[]) as o(aggregate_id, delivered_through)
    left join seen s on s.aggregate_id = o.aggregate_id`)}, recording as (
    -- Claimed at once: everything before the newly seen events was delivered.
    select o.*, (select claiming from fast) and o.delivered_through >= o.written_through and o.seen_through > o.written_through as claim_now
    from held o
  ), recorded as (
    update outbox_delivery d
    set delivered_through = greatest(d.delivered_through, o.delivered_through),
        written_through = greatest(d.written_through, coalesce(o.seen_through, 0)),
        attempts = case when o.claim_now then 1 else 0 end, next_retry_at = now(), last_error = null, failed_at = null,
        delivered_at = case when o.delivered_through > d.delivered_through then now() else d.delivered_at end,
        claimed_until = case when o.claim_now then ${LEASE} end,
        claim_token = case when o.claim_now then :claim_token::uuid end,
        claimed_through = case when o.claim_now then o.seen_through end
    from recording o
    where d.aggregate_id = any(array(select aggregate_id from recording)) and d.aggregate_id = o.aggregate_id
    returning d.aggregate_id, d.delivered_through, d.written_through, d.claimed_through, d.attempts, d.next_retry_at, d.claim_token
  ), registered as (
    -- Raises (or creates) the delivery position of each other aggregate seen, in key order
    -- (discovery-pieces.ts), claiming it when it had nothing waiting.
    insert into outbox_delivery as d (aggregate_id, aggregate_type, project_id, written_through, attempts, claimed_until, claim_token, claimed_through)
    select s.aggregate_id, s.aggregate_type, s.project_id, s.through,
           case when f.claiming then 1 else 0 end,
           case when f.claiming then ${LEASE} end,
           case when f.claiming then :claim_token::uuid end,
           case when f.claiming then s.through end
    from seen s cross join fast f
    where s.aggregate_id not in (select aggregate_id from recorded)
    order by s.aggregate_id
    on conflict (aggregate_id) do update set
      written_through = excluded.written_through,
      attempts = case when ${IDLE} then d.attempts + 1 else d.attempts end,
      claimed_until = case when ${IDLE} then excluded.claimed_until else d.claimed_until end,
      claim_token = case when ${IDLE} then excluded.claim_token else d.claim_token end,
      claimed_through = case when ${IDLE} then excluded.written_through else d.claimed_through end
    where d.written_through < excluded.written_through
    returning d.aggregate_id, d.delivered_through, d.written_through, d.claimed_through, d.attempts, d.next_retry_at, d.claim_token
  ), claimed as (
    select * from recorded where claim_token = :claim_token::uuid
    union all
    select * from registered where claim_token = :claim_token::uuid
  ), ${ADVANCE_WATERMARK}, counts as (
    select (select count(*) from registered)::int as registered,
           (select count(*) from recorded)::int as recorded,
           (select count(*) from advanced)::int as advanced,
           -- Due before this statement (what it registered is not visible to it here): the first
           -- in line, read as the claim reads it, from the index of undelivered aggregates (as
           -- \`exists\`, small tables were planned as a scan of every row); or seen now and left
           -- unclaimed.
           (
             select d.aggregate_id from outbox_delivery d
             where d.written_through > d.delivered_through and d.failed_at is null
               and d.next_retry_at <= now() and (d.claimed_until is null or d.claimed_until <= now())
             order by d.next_retry_at, d.aggregate_id
             limit 1
           ) is not null
           or exists (select from registered where claim_token is distinct from :claim_token::uuid)
           or exists (select from recorded where claim_token is null and written_through > delivered_through) as claim_more
  )
  select counts.registered, counts.recorded, counts.claim_more,
         e.id, e.event_type, e.aggregate_type, c.aggregate_id, e.sequence, e.project_sequence, e.project_id, e.session_id,
         e.user_id, e.payload, e.created_at, e.trace_context, c.attempts, c.delivered_through,
         row_number() over (order by c.aggregate_id, e.sequence) as turn
  from counts
  left join (
    claimed c
    -- A left join: an aggregate whose run cannot be read still comes back, to be released.
    left join lateral (
      select * from event_outbox e
      where e.aggregate_id = c.aggregate_id and e.sequence > c.delivered_through and e.sequence <= c.claimed_through
      order by e.sequence
    ) e on true
  ) on true`);
