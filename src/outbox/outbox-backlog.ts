import { dbOf } from '../platform/db/database.ts';
import { forkEm, type Em, type Orm } from '../platform/db/orm.ts';
import { DELIVERY_COUNT_CAP, deliveryCounts } from './outbox-delivery.repository.ts';
import { deliveryCounts as deliveryCountsStatement } from './sql/delivery-counts.sql.ts';

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
 * Counting stops here. The count reads only aggregates with undelivered events (the partial
 * index of `outbox_delivery`, and the log past the relay's watermark), so a scrape costs time in
 * proportion to the backlog, never to the delivered events the log keeps; the cap bounds that cost
 * when the backlog is huge. Past the cap the gauges read the cap and the oldest age is a lower
 * bound: by then the lag alert has long fired anyway.
 */
export const BACKLOG_COUNT_CAP = DELIVERY_COUNT_CAP;

/** The one query a metrics scrape makes (exported for the test that checks its plan). */
export function outboxBacklogQuery(cap: number = BACKLOG_COUNT_CAP) {
  return deliveryCountsStatement.bind({ project_id: null, cap });
}

export async function readOutboxBacklog(em: Em, cap: number = BACKLOG_COUNT_CAP): Promise<OutboxBacklog> {
  const counts = await deliveryCounts(dbOf(em), null, cap);
  return {
    pending: counts.pending,
    failed: counts.failed,
    // A clock step on the database could make a just-written event look a little in the future.
    oldestPendingAgeSeconds: Math.max(0, counts.oldestPendingAgeSeconds ?? 0),
  };
}

/** Reads the backlog on a fresh EntityManager fork each time: scrapes share no state with requests. */
export function createOutboxBacklogReader(orm: Orm, cap: number = BACKLOG_COUNT_CAP): () => Promise<OutboxBacklog> {
  return () => readOutboxBacklog(forkEm(orm), cap);
}
