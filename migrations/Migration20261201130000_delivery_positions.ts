import { Migration } from '@mikro-orm/migrations';

/**
 * Delivery positions instead of per-row marks: the event log becomes append-only.
 *
 * The publisher delivers each aggregate's events in sequence order, so what it has delivered is
 * one number per aggregate, like a consumer offset per partition: `outbox_delivery` holds, per
 * aggregate (chat session or worker space), the highest sequence the bus accepted
 * (`delivered_through`), the highest sequence the relay has seen committed (`written_through`),
 * and the bookkeeping of the aggregate's head, the one event after `delivered_through` (its
 * attempts, retry time, last error, whether it failed for good, the lease of a claim).
 *
 * New events are found by reading the log by transaction id from a watermark kept in
 * `outbox_relay_state` (every event whose transaction id is below it is registered in
 * `outbox_delivery`); the watermark only moves up to the oldest transaction still running, so an
 * event that commits late behind others is never skipped.
 *
 * Per event, `outbox_event_status` shows the seed's states (published | failed | pending, with
 * attempts, next_retry_at, last_error and the claim) derived from the aggregate's position.
 *
 * Existing data: each aggregate's position is the event before its first unpublished one, and
 * that event's attempts, retry time, error and failed state become the head's. Events claimed
 * when this runs lose their lease (stop publishers of the previous version first).
 */
export class Migration20261201130000_delivery_positions extends Migration {
  override up(): void {
    this.addSql(`
      create table outbox_delivery (
        aggregate_id uuid primary key,
        aggregate_type varchar(32) not null check (aggregate_type in ('chat_session', 'worker_space')),
        project_id uuid not null,
        written_through integer not null default 0 check (written_through >= 0),
        delivered_through integer not null default 0 check (delivered_through >= 0),
        -- Of the head (delivered_through + 1), counted when a claim starts.
        attempts integer not null default 0 check (attempts >= 0),
        next_retry_at timestamptz not null default now(),
        last_error text,
        -- The head failed for good (past max attempts, or not a valid event): the aggregate is held until reprocessed.
        failed_at timestamptz,
        claimed_until timestamptz,
        claim_token uuid,
        -- The run a claim holds: (delivered_through, claimed_through].
        claimed_through integer,
        delivered_at timestamptz,
        constraint outbox_delivery_position_check check (delivered_through <= written_through),
        constraint outbox_delivery_claim_check check ((claimed_until is null) = (claim_token is null) and (claim_token is null) = (claimed_through is null))
      ) with (fillfactor = 80)`);
    // The claim reads due aggregates oldest first; only aggregates with undelivered events are in it.
    this.addSql(`
      create index outbox_delivery_due_idx on outbox_delivery (next_retry_at, aggregate_id)
      where written_through > delivered_through and failed_at is null`);
    // Status per project: aggregates with undelivered (pending or failed) events.
    this.addSql(`create index outbox_delivery_undelivered_idx on outbox_delivery (project_id) where written_through > delivered_through`);

    this.addSql(`
      create table outbox_relay_state (
        id smallint primary key check (id = 1),
        -- Every event whose transaction id is below this one is registered in outbox_delivery.
        transaction_id xid8 not null,
        updated_at timestamptz not null default now()
      )`);
    // First, so every event of a transaction below this watermark is visible to the backfill below.
    this.addSql(`insert into outbox_relay_state (id, transaction_id) values (1, pg_snapshot_xmin(pg_current_snapshot()))`);

    this.addSql(`
      insert into outbox_delivery (aggregate_id, aggregate_type, project_id, written_through, delivered_through,
                                   attempts, next_retry_at, last_error, failed_at, delivered_at)
      select a.aggregate_id, a.aggregate_type, a.project_id, a.written_through,
             coalesce(h.sequence - 1, a.written_through),
             coalesce(h.attempts, 0), coalesce(h.next_retry_at, now()), h.last_error,
             case when h.status = 'failed' then now() end,
             a.last_published_at
      from (
        select aggregate_id, min(aggregate_type) as aggregate_type, (array_agg(project_id))[1] as project_id,
               max(sequence) as written_through, max(published_at) as last_published_at
        from event_outbox group by aggregate_id
      ) a
      left join lateral (
        select sequence, status, attempts, next_retry_at, last_error from event_outbox e
        where e.aggregate_id = a.aggregate_id and e.status <> 'published'
        order by sequence limit 1
      ) h on true`);

    this.addSql('drop index if exists event_outbox_pending_idx');
    this.addSql('drop index if exists event_outbox_failed_idx');
    this.addSql('drop index if exists event_outbox_unpublished_idx');
    this.addSql(`
      alter table event_outbox
        drop constraint if exists event_outbox_claim_check,
        drop constraint if exists event_outbox_published_at_check,
        drop column status, drop column attempts, drop column next_retry_at, drop column last_error,
        drop column claimed_until, drop column claim_token, drop column published_at`);
    // Append-only now: no update needs room on the page.
    this.addSql('alter table event_outbox reset (fillfactor)');

    // Retention: per stream (a project, or an aggregate), the newest position and created_at removed.
    this.addSql(`
      create table event_log_horizon (
        stream_id uuid primary key,
        stream varchar(16) not null check (stream in ('project', 'aggregate')),
        expired_through integer not null check (expired_through > 0),
        expired_until timestamptz not null
      )`);

    this.addSql(`
      create view outbox_event_status as
      select e.id, e.event_type, e.aggregate_type, e.aggregate_id, e.sequence, e.project_sequence, e.project_id,
             e.user_id, e.session_id, e.created_at,
             (case when e.sequence <= coalesce(d.delivered_through, 0) then 'published'
                   when d.failed_at is not null and e.sequence = d.delivered_through + 1 then 'failed'
                   else 'pending' end)::varchar(16) as status,
             (case when e.sequence <= coalesce(d.delivered_through, 0) then 0
                   when e.sequence = coalesce(d.delivered_through, 0) + 1 then coalesce(d.attempts, 0)
                   when e.sequence <= d.claimed_through then d.attempts
                   else 0 end) as attempts,
             (case when e.sequence = coalesce(d.delivered_through, 0) + 1 then coalesce(d.next_retry_at, now()) end) as next_retry_at,
             (case when e.sequence = d.delivered_through + 1 then d.last_error end) as last_error,
             (case when e.sequence > d.delivered_through and e.sequence <= d.claimed_through then d.claimed_until end) as claimed_until,
             (case when e.sequence > d.delivered_through and e.sequence <= d.claimed_through then d.claim_token end) as claim_token,
             (case when e.sequence <= coalesce(d.delivered_through, 0) then d.delivered_at end) as published_at
      from event_outbox e
      left join outbox_delivery d on d.aggregate_id = e.aggregate_id`);
  }

  override down(): void {
    this.addSql('drop view if exists outbox_event_status');
    this.addSql('drop table if exists event_log_horizon');
    this.addSql(`
      alter table event_outbox
        add column status varchar(16) not null default 'pending' check (status in ('pending', 'published', 'failed')),
        add column attempts integer not null default 0 check (attempts >= 0),
        add column next_retry_at timestamptz not null default now(),
        add column last_error text,
        add column claimed_until timestamptz,
        add column claim_token uuid,
        add column published_at timestamptz`);
    this.addSql(`
      update event_outbox e set status = 'published', published_at = coalesce(d.delivered_at, now())
      from outbox_delivery d where d.aggregate_id = e.aggregate_id and e.sequence <= d.delivered_through`);
    this.addSql(`
      update event_outbox e set status = case when d.failed_at is not null then 'failed' else 'pending' end,
             attempts = d.attempts, next_retry_at = d.next_retry_at, last_error = d.last_error
      from outbox_delivery d where d.aggregate_id = e.aggregate_id and e.sequence = d.delivered_through + 1`);
    this.addSql(`alter table event_outbox add constraint event_outbox_claim_check check ((claimed_until is null) = (claim_token is null))`);
    this.addSql(`alter table event_outbox add constraint event_outbox_published_at_check check ((status = 'published') = (published_at is not null))`);
    this.addSql(`alter table event_outbox set (fillfactor = 50)`);
    this.addSql(`create index event_outbox_pending_idx on event_outbox (next_retry_at, created_at) where status = 'pending'`);
    this.addSql(`create index event_outbox_failed_idx on event_outbox (project_id, created_at) where status = 'failed'`);
    this.addSql(`create index event_outbox_unpublished_idx on event_outbox (aggregate_id, sequence) where status <> 'published'`);
    this.addSql('drop table if exists outbox_relay_state');
    this.addSql('drop table if exists outbox_delivery');
  }
}
