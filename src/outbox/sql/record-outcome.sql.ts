import { namedStatement } from './named-statement.ts';
import { heldUnderClaim } from './recording-pieces.ts';

export interface RecordOutcomeParams extends Record<string, unknown> {
  token: string;
  /** Per claimed aggregate, in the same order: */
  aggregate_ids: string[];
  /** The new position: the last event of its run the bus accepted (or the old position). */
  delivered_throughs: number[];
  /** The head's attempts from now on (0 once the head moved). */
  attempts: number[];
  /** When the head is due next, in ms from now (0: at once, at the back of the line). */
  retry_in_ms: number[];
  /** The head's last error, or null. */
  errors: (string | null)[];
  /** Whether the head failed for good. */
  failed: boolean[];
}

/**
 * Records what became of a claimed batch, one row per aggregate, in one statement: the new
 * position, and the state of the new head (due now, waiting for a retry, or failed), and ends the
 * claim. Only aggregates still held under this claim's token are touched: a claim whose lease
 * lapsed and was taken over records nothing (its events go out again, with the same eventId).
 * Those rows are locked first, in key order (recording-pieces.ts).
 */
export const recordOutcome = namedStatement<RecordOutcomeParams, { aggregate_id: string }>(`
  with ${heldUnderClaim(`select * from unnest(:aggregate_ids::uuid[], :delivered_throughs::int[], :attempts::int[], :retry_in_ms::float8[], :errors::text[], :failed::bool[])
    as o(aggregate_id, delivered_through, attempts, retry_in_ms, error, failed)`)}
  update outbox_delivery d
  set delivered_through = greatest(d.delivered_through, o.delivered_through),
      attempts = o.attempts,
      next_retry_at = now() + make_interval(secs => o.retry_in_ms / 1000.0),
      last_error = o.error,
      failed_at = case when o.failed then now() end,
      delivered_at = case when o.delivered_through > d.delivered_through then now() else d.delivered_at end,
      claimed_until = null, claim_token = null, claimed_through = null
  from held o
  where d.aggregate_id = any(array(select aggregate_id from held)) and d.aggregate_id = o.aggregate_id
  returning d.aggregate_id`);
