import { sql } from 'kysely';
import { dbOf } from '../platform/db/database.ts';
import { forkEm, type Em, type Orm } from '../platform/db/orm.ts';

/** What the outbox gauges show: the state of the whole database, the same from every instance. */
export interface OutboxBacklog {
  /** Pending events (due or waiting for a retry), counted up to `BACKLOG_COUNT_CAP`. */
  pending: number;
  /** Failed events (past max retries, waiting for reprocessing), counted up to `BACKLOG_COUNT_CAP`. */
  failed: number;
  /** Seconds since the oldest pending event was created, by the database clock; 0 when none is pending. */
  oldestPendingAgeSeconds: number;
}

/**
 * Counting stops here. Both counts walk a partial index (`event_outbox_pending_idx`,
 * `event_outbox_failed_idx`), so a scrape costs time in proportion to the backlog, never to the
 * published rows the table keeps; the cap bounds that cost when the backlog is huge
 * (docs/design-notes.md#measurements-behind-some-choices). Past the cap the gauge reads the cap, and the
 * oldest age is taken from the first `cap` rows in claim order, which makes it a lower bound: by then
 * the lag alert has long fired anyway.
 */
export const BACKLOG_COUNT_CAP = 100_000;

/**
 * The one query a metrics scrape makes (exported for the test that checks its plan). `order by next_retry_at, created_at` matches the pending
 * index, so the capped scan reads it in order (events that never failed have next_retry_at =
 * created_at, so the oldest are first) instead of letting the planner pick arbitrary rows.
 */
export function outboxBacklogQuery(cap: number = BACKLOG_COUNT_CAP) {
  return sql<{ pending: number; failed: number; oldest_pending_age_seconds: number | null }>`
    select
      count(*)::int as pending,
      extract(epoch from now() - min(pending.created_at))::float8 as oldest_pending_age_seconds,
      (select count(*)::int from (
        select 1 from event_outbox where status = 'failed' limit ${cap}
      ) as failed) as failed
    from (
      select created_at from event_outbox where status = 'pending'
      order by next_retry_at, created_at
      limit ${cap}
    ) as pending`;
}

export async function readOutboxBacklog(em: Em, cap: number = BACKLOG_COUNT_CAP): Promise<OutboxBacklog> {
  const { rows } = await outboxBacklogQuery(cap).execute(dbOf(em));
  const row = rows[0]!;
  return {
    pending: row.pending,
    failed: row.failed,
    // A clock step on the database could make a just-written event look a little in the future.
    oldestPendingAgeSeconds: Math.max(0, row.oldest_pending_age_seconds ?? 0),
  };
}

/** Reads the backlog on a fresh EntityManager fork each time: scrapes share no state with requests. */
export function createOutboxBacklogReader(orm: Orm, cap: number = BACKLOG_COUNT_CAP): () => Promise<OutboxBacklog> {
  return () => readOutboxBacklog(forkEm(orm), cap);
}
