import { namedStatement } from './named-statement.ts';

export interface DeliveryCountsParams extends Record<string, unknown> {
  /** One project's events (null: every project's). */
  project_id: string | null;
  /** Counting stops at this many undelivered events per aggregate class (bounds a scrape's cost in a huge backlog). */
  cap: number;
}

/**
 * Pending and failed events, with the oldest of each, of one project or of all. Only aggregates
 * with undelivered events are looked at: those the relay registered with a position behind what
 * it saw written, and those with events past the relay's watermark it has not registered yet. The
 * cost follows the backlog, never the delivered events the log keeps.
 */
export const deliveryCounts = namedStatement<
  DeliveryCountsParams,
  { pending: number; failed: number; oldest_pending: Date | string | null; oldest_failed: Date | string | null; oldest_pending_age_seconds: number | null }
>(`
  with aggregates as (
    select aggregate_id from outbox_delivery
    where written_through > delivered_through and (:project_id::uuid is null or project_id = :project_id::uuid)
    union
    select e.aggregate_id from outbox_relay_state s join event_outbox e on e.transaction_id >= s.transaction_id
    where s.id = 1 and (:project_id::uuid is null or e.project_id = :project_id::uuid)
  ), undelivered as (
    select coalesce(d.failed_at is not null and e.sequence = d.delivered_through + 1, false) as failed, e.created_at
    from aggregates a
    left join outbox_delivery d on d.aggregate_id = a.aggregate_id
    cross join lateral (
      select sequence, created_at from event_outbox e
      where e.aggregate_id = a.aggregate_id and e.sequence > coalesce(d.delivered_through, 0)
      order by sequence limit :cap::int
    ) e
    limit :cap::int
  )
  select count(*) filter (where not failed)::int as pending,
         count(*) filter (where failed)::int as failed,
         min(created_at) filter (where not failed) as oldest_pending,
         min(created_at) filter (where failed) as oldest_failed,
         extract(epoch from now() - min(created_at) filter (where not failed))::float8 as oldest_pending_age_seconds
  from undelivered`);

export interface FailedEventRow {
  id: string;
  event_type: string;
  sequence: number;
  session_id: string | null;
  attempts: number;
  last_error: string | null;
  created_at: Date | string;
}

/** A project's failed events (each its aggregate's head), oldest first. */
export const failedEvents = namedStatement<{ project_id: string; limit: number }, FailedEventRow>(`
  select e.id, e.event_type, e.sequence, e.session_id, d.attempts, d.last_error, e.created_at
  from outbox_delivery d
  join event_outbox e on e.aggregate_id = d.aggregate_id and e.sequence = d.delivered_through + 1
  where d.failed_at is not null and d.project_id = :project_id::uuid
  order by e.created_at
  limit :limit::int`);
