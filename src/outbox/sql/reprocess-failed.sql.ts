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
 * failed event is always its aggregate's head, so this is one row per aggregate.
 */
export const reprocessFailed = namedStatement<ReprocessFailedParams, ReprocessedRow>(`
  with requeued as (
    update outbox_delivery d
    set failed_at = null, attempts = 0, next_retry_at = now(), last_error = null
    where d.failed_at is not null
      and (:project_id::uuid is null or d.project_id = :project_id::uuid)
      and (:event_ids::uuid[] is null or exists (
        select from event_outbox e
        where e.aggregate_id = d.aggregate_id and e.sequence = d.delivered_through + 1 and e.id = any(:event_ids::uuid[])))
    returning d.aggregate_id, d.delivered_through, d.attempts
  )
  select e.id, e.event_type, e.project_id, r.attempts, e.aggregate_type, e.aggregate_id, e.sequence
  from requeued r join event_outbox e on e.aggregate_id = r.aggregate_id and e.sequence = r.delivered_through + 1`);
