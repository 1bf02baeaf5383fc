import { ADVANCE_WATERMARK, registered, SEEN_SINCE_WATERMARK, WATERMARK } from './discovery-pieces.ts';
import { namedStatement } from './named-statement.ts';
import { heldUnderClaim } from './recording-pieces.ts';

export interface RecordAndDiscoverParams extends Record<string, unknown> {
  /** The claim whose batch the bus accepted in full. */
  token: string;
  aggregate_ids: string[];
  /** Each aggregate's new position: the last event of its run. */
  delivered_throughs: number[];
}

/**
 * The statement a publisher starts a cycle with under a trickle of events: records the previous
 * batch (which the bus accepted in full) and registers newly committed events, in one round trip.
 * Both are what record-outcome.sql.ts and discover-events.sql.ts do; see those for the why.
 *
 * No row is written twice: an aggregate being recorded gets its newly seen events on the same
 * update (its `written_through` raised there), the registration upsert takes the others. An
 * aggregate whose claim lapsed meanwhile is not recorded, and is registered as any other.
 *
 * Locks: the batch's rows, then the registered ones, each run in key order. Registering, this
 * statement holds the watermark, and then no other statement waits for its batch's rows (claims
 * skip locked rows; only the watermark's holder writes other publishers' claimed rows): only the
 * second run meets other statements, all in key order (docs/design-notes.md#lock-order).
 */
export const recordAndDiscover = namedStatement<RecordAndDiscoverParams, { registered: number; recorded: number }>(`
  with ${WATERMARK}, seen as materialized (${SEEN_SINCE_WATERMARK}
  ), ${heldUnderClaim('select * from unnest(:aggregate_ids::uuid[], :delivered_throughs::int[]) as o(aggregate_id, delivered_through)')}, recorded as (
    update outbox_delivery d
    set delivered_through = greatest(d.delivered_through, o.delivered_through),
        written_through = greatest(d.written_through, coalesce((select through from seen where seen.aggregate_id = d.aggregate_id), 0)),
        attempts = 0, next_retry_at = now(), last_error = null, failed_at = null,
        delivered_at = case when o.delivered_through > d.delivered_through then now() else d.delivered_at end,
        claimed_until = null, claim_token = null, claimed_through = null
    from held o
    where d.aggregate_id = any(array(select aggregate_id from held)) and d.aggregate_id = o.aggregate_id
    returning d.aggregate_id
  ), ${registered('select aggregate_id from recorded')}, ${ADVANCE_WATERMARK}
  select (select count(*) from registered)::int as registered,
         (select count(*) from recorded)::int as recorded,
         (select count(*) from advanced)::int as advanced`);
