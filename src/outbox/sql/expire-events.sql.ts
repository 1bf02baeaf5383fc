import { namedStatement } from './named-statement.ts';

export interface ExpireEventsParams extends Record<string, unknown> {
  /** Events created before this are expired. */
  cutoff: Date;
  /** At most this many events are removed. */
  batch: number;
}

/**
 * Removes one bounded batch of expired events from the log, and records per stream (project and
 * aggregate) the newest position and time removed, so a client resuming from before it is told
 * its cursor expired instead of silently skipping what is gone.
 *
 * Only events that nothing still needs are removed: delivered (at or below their aggregate's
 * position), registered by the relay and folded into the analytics rollups (both watermarks
 * passed their transaction). The oldest events are looked at by transaction id, at most four
 * batches' worth: an undelivered old event (a failed head) is kept, and so is what lies behind it
 * in the scan, until it is delivered; the cost of one run stays bounded either way.
 */
export const expireEvents = namedStatement<ExpireEventsParams, { removed: number; looked_at: number }>(`
  with below as (
    select least((select transaction_id from analytics_rollup_state where id = 1),
                 (select transaction_id from outbox_relay_state where id = 1)) as transaction_id
  ), oldest as materialized (
    select e.id, e.aggregate_id, e.sequence, e.created_at from below
    join event_outbox e on e.transaction_id < below.transaction_id
    order by e.transaction_id
    limit :batch::int * 4
  ), doomed as (
    select o.id from oldest o join outbox_delivery d on d.aggregate_id = o.aggregate_id
    where o.created_at < :cutoff::timestamptz and o.sequence <= d.delivered_through
    limit :batch::int
  ), removed as (
    delete from event_outbox e using doomed where e.id = doomed.id
    returning e.project_id, e.aggregate_id, e.sequence, e.project_sequence, e.created_at
  ), streams as (
    select project_id as stream_id, 'project' as stream, max(project_sequence) as through, max(created_at) as until from removed group by project_id
    union all
    select aggregate_id, 'aggregate', max(sequence), max(created_at) from removed group by aggregate_id
  ), horizon as (
    insert into event_log_horizon as h (stream_id, stream, expired_through, expired_until)
    select stream_id, stream, through, until from streams
    on conflict (stream_id) do update
    set expired_through = greatest(h.expired_through, excluded.expired_through), expired_until = greatest(h.expired_until, excluded.expired_until)
    returning 1
  )
  select (select count(*) from removed)::int as removed, (select count(*) from oldest)::int as looked_at,
         (select count(*) from horizon)::int as streams`);
