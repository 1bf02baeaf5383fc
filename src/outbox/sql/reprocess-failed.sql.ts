import { namedStatement } from './named-statement.ts';
import type { EventType } from '../../events/domain-event.ts';

export interface ReprocessFailedParams extends Record<string, unknown> {
  /** Only this project's failed events (null: every project's). */
  project_id: string | null;
  /** Only these failed events (null: all that match the project). */
  event_ids: string[] | null;
}

/** A requeued event, with the columns the outbox log records name. */
export interface ReprocessedRow {
  id: string;
  event_type: EventType;
  project_id: string;
  attempts: number;
  aggregate_type: string;
  aggregate_id: string;
  sequence: number;
}

/**
 * Puts failed heads back to due, with their original eventId and a fresh set of attempts. A
 * failed event is always its aggregate's head, so this is one row per aggregate. The rows are
 * locked first, in key order, and the update writes only those (docs/design-notes.md#lock-order).
 */
export const reprocessFailed = namedStatement<ReprocessFailedParams, ReprocessedRow>(`
  with failed as materialized (
    select d.aggregate_id from outbox_delivery d
    where d.failed_at is not null
      and (:project_id::uuid is null or d.project_id = :project_id::uuid)
      and (:event_ids::uuid[] is null or exists (
        select from event_outbox e
        where e.aggregate_id = d.aggregate_id and e.sequence = d.delivered_through + 1 and e.id = any(:event_ids::uuid[])))
    order by d.aggregate_id
    for no key update of d
  ), requeued as (
    update outbox_delivery d
    set failed_at = null, attempts = 0, next_retry_at = now(), last_error = null
    from failed
    where d.aggregate_id = failed.aggregate_id
    returning d.aggregate_id, d.delivered_through, d.attempts
  )
  select e.id, e.event_type, e.project_id, r.attempts, e.aggregate_type, e.aggregate_id, e.sequence
  from requeued r join event_outbox e on e.aggregate_id = r.aggregate_id and e.sequence = r.delivered_through + 1`);
