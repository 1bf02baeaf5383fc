/**
 * Pieces of the two statements that register newly committed events with their aggregates'
 * delivery positions (discover-events.sql.ts, which explains the watermark, and
 * record-and-discover.sql.ts). Fixed text: both statements stay constant and can be prepared.
 */

/** The relay's watermark row, taken by one publisher at a time. */
export const WATERMARK = `state as (
    select transaction_id from outbox_relay_state where id = 1 for update skip locked
  )`;

/** Each aggregate with events at or above the watermark, and the highest sequence seen. */
export const SEEN_SINCE_WATERMARK = `
    -- A range between two values known only when it runs (the watermark; the snapshot's xmax, past
    -- which nothing is visible anyway): planned, even generically and with statistics from when
    -- the log was empty, as a short range of the transaction-id index, never a scan of the log.
    select e.aggregate_id, min(e.aggregate_type) as aggregate_type, min(e.project_id::text)::uuid as project_id, max(e.sequence) as through
    from event_outbox e
    where e.transaction_id >= (select transaction_id from state)
      and e.transaction_id < pg_snapshot_xmax(pg_current_snapshot())
    group by e.aggregate_id`;

/**
 * Raises (or creates) the delivery position of each aggregate seen, except those `except` names.
 * The insert locks rows in the order its select feeds them: in key order, not the order the
 * `group by` happens to give (docs/design-notes.md#lock-order).
 */
export const registered = (except = '') => `registered as (
    insert into outbox_delivery as d (aggregate_id, aggregate_type, project_id, written_through)
    select aggregate_id, aggregate_type, project_id, through from seen${except ? `\n    where aggregate_id not in (${except})` : ''}
    order by aggregate_id
    on conflict (aggregate_id) do update set written_through = excluded.written_through
    where d.written_through < excluded.written_through
    returning d.aggregate_id
  )`;

/** Moves the watermark up to the oldest transaction still running. */
export const ADVANCE_WATERMARK = `advanced as (
    update outbox_relay_state s set transaction_id = pg_snapshot_xmin(pg_current_snapshot()), updated_at = now()
    from state
    where s.id = 1 and s.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
    returning s.id
  )`;
