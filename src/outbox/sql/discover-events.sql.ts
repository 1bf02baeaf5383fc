import { namedStatement } from './named-statement.ts';

/**
 * Registers newly committed events with their aggregates' delivery positions: reads the log from
 * the relay's transaction-id watermark, raises each aggregate's `written_through` to the highest
 * sequence seen, and moves the watermark up to the oldest transaction still running.
 *
 * Why a transaction id and not an insertion cursor: transactions commit out of the order their
 * events were numbered in. The watermark only passes a transaction id once every transaction
 * below it has ended (`pg_snapshot_xmin`), so an event that commits late is still below the next
 * read's start. Events of transactions at or above the watermark that are visible already are
 * registered now (they are not held back by a slower transaction) and read again next time, which
 * changes nothing: the upsert only ever raises `written_through`, and an unchanged row is not
 * written.
 *
 * One publisher at a time does this (the state row is taken with SKIP LOCKED; another publisher
 * skips the step and claims what is registered). At a trickle the read is a probe of the
 * transaction-id index past the watermark: a handful of rows.
 */
export const discoverEvents = namedStatement<Record<string, never>, { registered: number; discovering: boolean }>(`
  with state as (
    select transaction_id from outbox_relay_state where id = 1 for update skip locked
  ), seen as (
    -- A range between two values known only when it runs (the watermark; the snapshot's xmax, past
    -- which nothing is visible anyway): planned, even generically and with statistics from when
    -- the log was empty, as a short range of the transaction-id index, never a scan of the log.
    select e.aggregate_id, min(e.aggregate_type) as aggregate_type, min(e.project_id::text)::uuid as project_id, max(e.sequence) as through
    from event_outbox e
    where e.transaction_id >= (select transaction_id from state)
      and e.transaction_id < pg_snapshot_xmax(pg_current_snapshot())
    group by e.aggregate_id
  ), registered as (
    insert into outbox_delivery as d (aggregate_id, aggregate_type, project_id, written_through)
    select aggregate_id, aggregate_type, project_id, through from seen
    on conflict (aggregate_id) do update set written_through = excluded.written_through
    where d.written_through < excluded.written_through
    returning d.aggregate_id
  ), advanced as (
    update outbox_relay_state s set transaction_id = pg_snapshot_xmin(pg_current_snapshot()), updated_at = now()
    from state
    where s.id = 1 and s.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
    returning s.id
  )
  select (select count(*) from registered)::int as registered,
         exists (select from state) as discovering,
         (select count(*) from advanced)::int as advanced`);
