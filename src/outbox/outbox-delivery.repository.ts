import type { Db } from '../platform/db/database.ts';
import { eventTypeOf, type EventType } from '../events/domain-event.ts';
import { deliveryCounts as deliveryCountsStatement, failedEvents as failedEventsStatement } from './sql/delivery-counts.sql.ts';
import { reprocessFailed as reprocessFailedStatement, type ReprocessedRow } from './sql/reprocess-failed.sql.ts';

/**
 * The operator's view of delivery: per-event states derived from the aggregates' positions
 * (`outboxStatus`, `npm run outbox -- status` and the backlog gauges share one statement), and
 * requeueing failed events. Statements are in ./sql, one per file.
 */

export type { ReprocessedRow };

export interface DeliveryCounts {
  pending: number;
  failed: number;
  oldestPendingAt: Date | null;
  oldestFailedAt: Date | null;
  /** Seconds since the oldest pending event was created, by the database clock. */
  oldestPendingAgeSeconds: number | null;
}

/** Counting stops here (per query): a scrape in a huge backlog costs at most this many index reads. */
export const DELIVERY_COUNT_CAP = 100_000;

/** Pending and failed counts, of one project or of all; cost in proportion to the backlog only. */
export async function deliveryCounts(db: Db, projectId: string | null, cap: number = DELIVERY_COUNT_CAP): Promise<DeliveryCounts> {
  const { rows } = await db.executeQuery(deliveryCountsStatement.bind({ project_id: projectId, cap }));
  const row = rows[0];
  // Raw SQL may return timestamps as strings; callers want Dates.
  const date = (value: string | Date | null | undefined) => (value ? new Date(value) : null);
  return {
    pending: Number(row?.pending ?? 0),
    failed: Number(row?.failed ?? 0),
    oldestPendingAt: date(row?.oldest_pending),
    oldestFailedAt: date(row?.oldest_failed),
    oldestPendingAgeSeconds: row?.oldest_pending_age_seconds ?? null,
  };
}

export interface FailedEventInfo {
  eventId: string;
  type: EventType;
  sequence: number;
  sessionId: string | null;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
}

/** The oldest failed events of a project, at most `limit`. */
export async function failedEvents(db: Db, projectId: string, limit: number): Promise<FailedEventInfo[]> {
  const { rows } = await db.executeQuery(failedEventsStatement.bind({ project_id: projectId, limit }));
  return rows.map((row) => ({
    eventId: row.id,
    type: eventTypeOf(row),
    sequence: row.sequence,
    sessionId: row.session_id,
    attempts: row.attempts,
    lastError: row.last_error,
    createdAt: new Date(row.created_at),
  }));
}

/** Failed events back to due, with their original id and a fresh set of attempts. Wakes nobody: see outbox-reprocessing.ts. */
export async function requeueFailed(db: Db, filter: { projectId?: string; eventIds?: readonly string[] }): Promise<ReprocessedRow[]> {
  const { rows } = await db.executeQuery(reprocessFailedStatement.bind({ project_id: filter.projectId ?? null, event_ids: filter.eventIds ? [...filter.eventIds] : null }));
  return rows;
}
