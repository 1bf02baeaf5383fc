import { namedStatement } from './named-statement.ts';

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
 */
export const recordAndDiscover = namedStatement<RecordAndDiscoverParams, { registered: number; recorded: number }>(`
  with state as (
    select transaction_id from outbox_relay_state where id = 1 for update skip locked
  ), seen as materialized (
    select e.aggregate_id, min(e.aggregate_type) as aggregate_type, min(e.project_id::text)::uuid as project_id, max(e.sequence) as through
    from event_outbox e
    where e.transaction_id >= (select transaction_id from state)
      and e.transaction_id < pg_snapshot_xmax(pg_current_snapshot())
    group by e.aggregate_id
  ), recorded as (
    update outbox_delivery d
    set delivered_through = greatest(d.delivered_through, o.delivered_through),
        written_through = greatest(d.written_through, coalesce((select through from seen where seen.aggregate_id = d.aggregate_id), 0)),
        attempts = 0, next_retry_at = now(), last_error = null, failed_at = null,
        delivered_at = case when o.delivered_through > d.delivered_through then now() else d.delivered_at end,
        claimed_until = null, claim_token = null, claimed_through = null
    from unnest(:aggregate_ids::uuid[], :delivered_throughs::int[]) as o(aggregate_id, delivered_through)
    where d.aggregate_id = o.aggregate_id and d.claim_token = :token::uuid
    returning d.aggregate_id
  ), registered as (
    insert into outbox_delivery as d (aggregate_id, aggregate_type, project_id, written_through)
    select aggregate_id, aggregate_type, project_id, through from seen
    where aggregate_id not in (select aggregate_id from recorded)
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
         (select count(*) from recorded)::int as recorded,
         (select count(*) from advanced)::int as advanced`);
