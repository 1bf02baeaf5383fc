import { Migration } from '@mikro-orm/migrations';

/**
 * Analytics read the outbox table itself as the event log (docs/analytics.md). This adds what they
 * need to do that correctly and fast:
 *
 * - `event_outbox.transaction_id`: the id of the transaction that wrote the event. Ids and
 *   timestamps are taken before commit, so transactions commit out of their order; a reader that
 *   only trusts events whose transaction id is below `pg_snapshot_xmin(pg_current_snapshot())`
 *   knows no event it has not seen can still commit "behind" it (docs/analytics.md, docs/design-notes.md#cursors-that-skip-late-commits).
 *   Rows that existed before this migration all get the migration's own transaction id: they are
 *   committed, which is all that matters. (The volatile default rewrites the table once, under an
 *   exclusive lock: run this before the table is large, or backfill in batches instead.)
 * - `analytics_counts_by_hour` / `analytics_counts_by_day`: running totals per project, metric
 *   and key, by hour within each day and by day within each 64-day period, so a count over any
 *   range costs a few subtractions per key instead of a scan of its events.
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

    // Running totals per project, metric and key (what is counted: the event type, user id,
    // session id, "from" agent id or response-time histogram bin; subkey is the "to" agent id of
    // a switch and '' otherwise). cumulative[i + 1] counts the key's events in the first i hours
    // of the UTC day, or the first i days of the 64-day period, so cumulative[1] is always 0 and
    // any run of whole hours or days is one subtraction. The rollup worker rewrites the rows of
    // the current day and period over and over; free space on each page (fillfactor) lets those
    // updates stay on the page (HOT) instead of adding index entries and bloat.
    this.addSql(`
      create table analytics_counts_by_hour (
        project_id uuid not null,
        metric varchar(16) not null check (metric in ('type', 'user', 'session', 'switch', 'response')),
        day date not null,
        key varchar(200) not null,
        subkey varchar(200) not null default '',
        cumulative integer[] not null check (array_length(cumulative, 1) = 25 and cumulative[1] = 0),
        primary key (project_id, metric, day, key, subkey)
      ) with (fillfactor = 70)`);
    this.addSql(`
      create table analytics_counts_by_day (
        project_id uuid not null,
        metric varchar(16) not null check (metric in ('type', 'user', 'session', 'switch', 'response')),
        -- Periods are aligned to the Unix epoch.
        period_start date not null check ((period_start - date '1970-01-01') % 64 = 0),
        key varchar(200) not null,
        subkey varchar(200) not null default '',
        cumulative integer[] not null check (array_length(cumulative, 1) = 65 and cumulative[1] = 0),
        primary key (project_id, metric, period_start, key, subkey)
      ) with (fillfactor = 70)`);

    this.addSql(`
      create table analytics_rollup_state (
        id smallint primary key check (id = 1),
        -- Every event whose transaction id is below this one is counted in analytics_counts_by_*,
        -- and no event at or above it is.
        transaction_id xid8 not null,
        updated_at timestamptz not null default now()
      )`);
    this.addSql(`insert into analytics_rollup_state (id, transaction_id) values (1, '0')`);
  }

  override down(): void {
    this.addSql('drop table if exists analytics_rollup_state');
    this.addSql('drop table if exists analytics_counts_by_day');
    this.addSql('drop table if exists analytics_counts_by_hour');
    this.addSql('drop statistics if exists event_outbox_message_role_stats');
    this.addSql('drop index if exists event_outbox_transaction_id_idx');
    this.addSql('alter table event_outbox drop column if exists transaction_id');
  }
}
