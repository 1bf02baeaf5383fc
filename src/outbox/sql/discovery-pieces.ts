/**
 * Pieces of the two statements that register newly committed events with their aggregates'
 * delivery positions (discover-events.sql.ts, which explains the watermark, and
 * record-discover-claim.sql.ts). Fixed text: both statements stay constant and can be prepared.
 */

/** The relay's watermark row, taken by one publisher at a time, with the snapshot of its last read. */
export const WATERMARK = `state as (
    select transaction_id, seen_snapshot from outbox_relay_state where id = 1 for update skip locked
  )`;

/**
 * Each aggregate with events at or above the watermark that the last read's snapshot did not see,
 * the highest sequence seen and how many events were read. That snapshot saw every committed transaction below its xmax
 * except those it listed as running, and its read registered all of them: what is left is the
 * transactions from its xmax on and the ones it saw running. Without a last snapshot, everything
 * from the watermark.
 */
export const SEEN_SINCE_WATERMARK = `
    -- Ranges between values known only when it runs (the watermark or the last snapshot's xmax; the
    -- current snapshot's xmax, past which nothing is visible anyway; the transactions the last
    -- snapshot saw running): planned, even generically and with statistics from when the log was
    -- empty, as short ranges of the transaction-id index, never a scan of the log.
    select e.aggregate_id, min(e.aggregate_type) as aggregate_type, min(e.project_id::text)::uuid as project_id, max(e.sequence) as through,
           count(*)::int as events
    from (
      select e.aggregate_id, e.aggregate_type, e.project_id, e.sequence from event_outbox e
      where e.transaction_id >= (select greatest(transaction_id, coalesce(pg_snapshot_xmax(seen_snapshot), transaction_id)) from state)
        and e.transaction_id < pg_snapshot_xmax(pg_current_snapshot())
      union all
      -- One probe of the index per transaction the last snapshot saw running: a lateral join kept
      -- from being flattened (offset 0), so it is never planned as a hash join over the whole log.
      select e.aggregate_id, e.aggregate_type, e.project_id, e.sequence
      from (select pg_snapshot_xip(seen_snapshot) as transaction_id from state) running
      cross join lateral (
        select e.aggregate_id, e.aggregate_type, e.project_id, e.sequence from event_outbox e
        where e.transaction_id = running.transaction_id
        offset 0
      ) e
    ) e
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

/**
 * Moves the watermark up to the oldest transaction still running and keeps this read's snapshot
 * for the next one; writes nothing when neither changed (an idle database).
 */
export const ADVANCE_WATERMARK = `advanced as (
    update outbox_relay_state s
    set transaction_id = greatest(s.transaction_id, pg_snapshot_xmin(pg_current_snapshot())),
        seen_snapshot = pg_current_snapshot(), updated_at = now()
    from state
    where s.id = 1 and (s.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                        or s.seen_snapshot is null or s.seen_snapshot::text <> pg_current_snapshot()::text)
    returning s.id
  )`;
