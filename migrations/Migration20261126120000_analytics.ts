import { Migration } from '@mikro-orm/migrations';

/**
 * Analytics read the outbox table itself as the event log (docs/analytics.md). This adds what they
 * need to do that correctly and fast:
 *
 * - `event_outbox.transaction_id`: the id of the transaction that wrote the event. Ids and
 *   timestamps are taken before commit, so transactions commit out of their order; a reader that
 *   only trusts events whose transaction id is below `pg_snapshot_xmin(pg_current_snapshot())`
 *   knows no event it has not seen can still commit "behind" it (docs/analytics.md, TRAPS #1).
 *   Rows that existed before this migration all get the migration's own transaction id: they are
 *   committed, which is all that matters. (The volatile default rewrites the table once, under an
 *   exclusive lock: run this before the table is large, or backfill in batches instead.)
 * - `analytics_rollup`: event counts per project, metric and time bucket, at five nested bucket
 *   widths so a range of any length is summed from a bounded number of rows.
 * - `analytics_rollup_state`: how far the rollup worker has folded events in, as a transaction id.
 */
export class Migration20261126120000_analytics extends Migration {
  override up(): void {
    this.addSql(`alter table event_outbox add column transaction_id xid8 not null default pg_current_xact_id()`);
    // The rollup worker reads "events whose transaction id is in [watermark, horizon)": a range on this index.
    this.addSql(`create index event_outbox_transaction_id_idx on event_outbox (transaction_id)`);
    // Response times look up "the previous agent message of this session" by walking the session's
    // (aggregate_id, sequence) index backwards. Without knowing that about half of all messages
    // are agent messages, the planner expects a long walk and reads the whole session instead.
    // Statistics cost nothing on writes, unlike another index on this hot table.
    this.addSql(`create statistics event_outbox_message_role_stats on ((payload->>'role')) from event_outbox`);

    this.addSql(`
      create table analytics_rollup (
        project_id uuid not null,
        metric varchar(16) not null check (metric in ('type', 'user', 'session', 'switch', 'response')),
        -- Widths nest (each divides the next) and buckets are aligned to the Unix epoch, so a
        -- 24-hour bucket is a UTC day.
        bucket_hours integer not null check (bucket_hours in (1, 24, 96, 384, 1536)),
        bucket_start timestamptz not null,
        -- What is counted: the event type, user id, session id, "from" agent id or response-time
        -- histogram bin; subkey is the "to" agent id of a switch and '' otherwise.
        key varchar(200) not null,
        subkey varchar(200) not null default '',
        value integer not null check (value > 0),
        -- Reads sum value over key ranges of this index: including it makes them index-only scans.
        primary key (project_id, metric, bucket_hours, bucket_start, key, subkey) include (value)
      )`);

    this.addSql(`
      create table analytics_rollup_state (
        id smallint primary key check (id = 1),
        -- Every event whose transaction id is below this one is counted in analytics_rollup, and
        -- no event at or above it is.
        transaction_id xid8 not null,
        updated_at timestamptz not null default now()
      )`);
    this.addSql(`insert into analytics_rollup_state (id, transaction_id) values (1, '0')`);
  }

  override down(): void {
    this.addSql('drop table if exists analytics_rollup_state');
    this.addSql('drop table if exists analytics_rollup');
    this.addSql('drop statistics if exists event_outbox_message_role_stats');
    this.addSql('drop index if exists event_outbox_transaction_id_idx');
    this.addSql('alter table event_outbox drop column if exists transaction_id');
  }
}
