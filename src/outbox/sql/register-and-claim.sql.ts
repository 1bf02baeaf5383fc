import { ADVANCE_WATERMARK, SEEN_SINCE_WATERMARK, WATERMARK } from './discovery-pieces.ts';
import { namedStatement } from './named-statement.ts';
import { HELD_UNDER_CLAIM } from './recording-pieces.ts';
import type { ClaimedEventRow } from './claim-batch.sql.ts';

export interface RegisterAndClaimParams extends Record<string, unknown> {
  /** The previous claim, whose batch the bus accepted in full (any token when there is none). */
  token: string;
  /** Its aggregates (empty when there is no batch to record). */
  aggregate_ids: string[];
  /** Each one's new position: the last event of its run. */
  delivered_throughs: number[];
  /** At most this many events in the new batch. */
  limit: number;
  /** The new claim's lease, in seconds. */
  lease_seconds: number;
  /** The new claim's token. */
  new_token: string;
}

/**
 * One row per event claimed (ordered by `turn`), or a single row with a null `aggregate_id` when
 * nothing was; every row carries what the statement did besides.
 */
export type RegisterAndClaimRow = { [K in keyof ClaimedEventRow]: ClaimedEventRow[K] | null } & {
  registered: number;
  recorded: number;
  /** Whether this publisher held the watermark (registered) in this statement. */
  discovering: boolean;
  /** Other aggregates may be due, or the batch was full: the claim statement (claim-batch.sql.ts) runs next. */
  claim_more: boolean;
};

/**
 * The statement a publisher starts each cycle with: records the previous batch (the bus accepted
 * it in full), registers newly committed events and claims the aggregates it touched, in one round
 * trip. Under a trickle, each cycle is this one statement; woken with nothing new, it finds nothing
 * and writes nothing. It is record-and-discover.sql.ts with the claim of claim-batch.sql.ts folded
 * into the same row writes; see those three for the why of each part.
 *
 * What it claims: only aggregates it writes anyway (recorded, or with newly seen events), judged
 * by their state after the write, oldest due first until the batch is full, as the claim does, and
 * only while no other aggregate is due: then the claim statement runs next, so an aggregate that
 * has waited is never overtaken by the events just registered. It claims nothing unless it holds
 * the watermark.
 *
 * The claim rides on the write: a recorded row's update, a registered row's insert or its
 * upsert's update, each sets the claim (attempts + 1, lease, token, `claimed_through`) when the
 * aggregate was chosen. A recorded row is held under the previous claim, so nobody else can have
 * it; a registered row is re-checked on its latest version in the upsert (not failed, not waiting
 * for a retry, not held by a live claim), and only rows that come back with this token are
 * claimed. So two publishers never hold one aggregate, as with the claim statement.
 *
 * Locks: the previous batch's rows, then the registered ones, each run in key order (as
 * record-and-discover.sql.ts, docs/design-notes.md#lock-order); claiming adds no lock, since it
 * only writes rows this statement writes anyway.
 */
export const registerAndClaim = namedStatement<RegisterAndClaimParams, RegisterAndClaimRow>(`
  with ${WATERMARK}, seen as materialized (${SEEN_SINCE_WATERMARK}
  ), ${HELD_UNDER_CLAIM}, batch as (
    select o.aggregate_id, o.delivered_through from held
    join unnest(:aggregate_ids::uuid[], :delivered_throughs::int[]) as o(aggregate_id, delivered_through) on o.aggregate_id = held.aggregate_id
  ), touched as materialized (
    -- Each aggregate this statement writes, as it will be: recorded, or raised to what was seen.
    select b.aggregate_id, greatest(d.delivered_through, b.delivered_through) as delivered_through,
           greatest(d.written_through, s.through) as written_through, now() as next_retry_at, true as claimable
    from batch b join outbox_delivery d on d.aggregate_id = b.aggregate_id left join seen s on s.aggregate_id = b.aggregate_id
    union all
    select s.aggregate_id, coalesce(d.delivered_through, 0), s.through, coalesce(d.next_retry_at, now()),
           coalesce(d.failed_at is null and d.next_retry_at <= now() and (d.claimed_until is null or d.claimed_until <= now()), true)
    from seen s left join outbox_delivery d on d.aggregate_id = s.aggregate_id
    where s.aggregate_id not in (select aggregate_id from batch) and (d.aggregate_id is null or d.written_through < s.through)
  ), due_elsewhere as (
    -- Another aggregate is due: the claim statement takes it, in its turn.
    select exists (
      select from outbox_delivery d
      where d.written_through > d.delivered_through and d.failed_at is null
        and d.next_retry_at <= now() and (d.claimed_until is null or d.claimed_until <= now())
        and d.aggregate_id not in (select aggregate_id from touched)
    ) as due
  ), candidates as (
    select aggregate_id, next_retry_at, least(written_through - delivered_through, :limit::int) as undelivered,
           coalesce(sum(least(written_through - delivered_through, :limit::int)) over (order by next_retry_at, aggregate_id rows between unbounded preceding and 1 preceding), 0) as before
    from touched
    where claimable and written_through > delivered_through
      and exists (select from state) and not (select due from due_elsewhere)
  ), chosen as materialized (
    select aggregate_id, least(undelivered, :limit::int - before) as share from candidates where before < :limit::int
  ), recorded as (
    update outbox_delivery d
    set delivered_through = t.delivered_through,
        written_through = t.written_through,
        attempts = case when c.share is null then 0 else 1 end,
        next_retry_at = t.next_retry_at, last_error = null, failed_at = null,
        delivered_at = case when t.delivered_through > d.delivered_through then now() else d.delivered_at end,
        claimed_until = case when c.share is not null then now() + make_interval(secs => :lease_seconds::float8) end,
        claim_token = case when c.share is not null then :new_token::uuid end,
        claimed_through = case when c.share is not null then least(t.delivered_through + c.share, t.written_through) end
    from batch b join touched t on t.aggregate_id = b.aggregate_id left join chosen c on c.aggregate_id = b.aggregate_id
    where d.aggregate_id = b.aggregate_id
    returning d.aggregate_id, d.delivered_through, d.claimed_through, d.attempts, d.next_retry_at, d.claim_token
  ), registered as (
    -- Fed in key order, so the upsert locks in key order (docs/design-notes.md#lock-order).
    insert into outbox_delivery as d (aggregate_id, aggregate_type, project_id, written_through, attempts, claimed_until, claim_token, claimed_through)
    select s.aggregate_id, s.aggregate_type, s.project_id, s.through,
           case when c.share is null then 0 else 1 end,
           case when c.share is not null then now() + make_interval(secs => :lease_seconds::float8) end,
           case when c.share is not null then :new_token::uuid end,
           case when c.share is not null then least(c.share, s.through) end
    from seen s left join chosen c on c.aggregate_id = s.aggregate_id
    where s.aggregate_id not in (select aggregate_id from batch)
    order by s.aggregate_id
    on conflict (aggregate_id) do update
    set written_through = excluded.written_through,
        -- Claimed only if chosen and still claimable on the row's latest version.
        attempts = case when excluded.claim_token is not null and d.failed_at is null and d.next_retry_at <= now() and (d.claimed_until is null or d.claimed_until <= now())
                        then d.attempts + 1 else d.attempts end,
        claimed_until = case when excluded.claim_token is not null and d.failed_at is null and d.next_retry_at <= now() and (d.claimed_until is null or d.claimed_until <= now())
                             then excluded.claimed_until else d.claimed_until end,
        claimed_through = case when excluded.claim_token is not null and d.failed_at is null and d.next_retry_at <= now() and (d.claimed_until is null or d.claimed_until <= now())
                               then least(d.delivered_through + excluded.claimed_through, excluded.written_through) else d.claimed_through end,
        claim_token = case when excluded.claim_token is not null and d.failed_at is null and d.next_retry_at <= now() and (d.claimed_until is null or d.claimed_until <= now())
                           then excluded.claim_token else d.claim_token end
    where d.written_through < excluded.written_through
    returning d.aggregate_id, d.delivered_through, d.claimed_through, d.attempts, d.next_retry_at, d.claim_token
  ), ${ADVANCE_WATERMARK}, claimed as (
    select * from recorded where claim_token = :new_token::uuid
    union all
    select * from registered where claim_token = :new_token::uuid
  ), summary as (
    select (select count(*) from registered)::int as registered,
           (select count(*) from recorded)::int as recorded,
           exists (select from state) as discovering,
           (not exists (select from state) or (select due from due_elsewhere)
             or exists (select from touched t where t.claimable and t.written_through > t.delivered_through and t.aggregate_id not in (select aggregate_id from chosen))
             or exists (select from chosen c join touched t using (aggregate_id) where t.delivered_through + c.share < t.written_through)
           ) as claim_more,
           (select count(*) from advanced)::int as advanced
  )
  select e.id, e.event_type, e.aggregate_type, c.aggregate_id, e.sequence, e.project_sequence, e.project_id, e.session_id,
         e.user_id, e.payload, e.created_at, e.trace_context, c.attempts, c.delivered_through,
         row_number() over (order by c.next_retry_at, c.aggregate_id, e.sequence) as turn,
         s.registered, s.recorded, s.discovering, s.claim_more
  from summary s
  left join claimed c on true
  -- A left join: an aggregate whose run cannot be read still comes back, to be released.
  left join lateral (
    select * from event_outbox e
    where e.aggregate_id = c.aggregate_id and e.sequence > c.delivered_through and e.sequence <= c.claimed_through
    order by e.sequence
  ) e on true`);
