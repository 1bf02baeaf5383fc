import { sql } from 'kysely';
import type { Db, EventOutboxRow } from '../platform/db/database.ts';
import { EVENT_ROW_COLUMNS, eventFromRow, eventTypeOf, type DomainEvent, type EventRow, type EventType } from './domain-event.ts';

/**
 * The statements that read `event_outbox` as the event log, and the operator's statements on it:
 * subscription replay, delivery status (the `outboxStatus` query and `npm run outbox -- status`
 * share one), and reprocessing. The publisher's claim and marks are in src/outbox/outbox.sql.ts;
 * analytics' reads in src/domain/analytics/analytics.repository.ts.
 */

/** The channel that tells publishers in other processes "events are due". Payload-less: a hint only. */
export const OUTBOX_CHANNEL = 'chat_outbox_pending';

/**
 * The columns `eventFromRow` reads, from `alias` (the table itself when absent). `withTrace: false`
 * leaves out the writer's trace context: a history page continues no trace, so it need not read
 * and parse one more jsonb per row.
 */
export const eventColumns = (alias?: string, { withTrace = true } = {}) => {
  const column = (name: string) => (alias ? sql.ref(`${alias}.${name}`) : sql.ref(name));
  return sql.join(EVENT_ROW_COLUMNS.filter((name) => withTrace || name !== 'trace_context').map(column));
};

/**
 * One gapless position column of event_outbox and what scopes it: `sequence` within an aggregate,
 * or `project_sequence` within a project. Column and table names come from code, never from input.
 */
export interface EventStreamScope {
  id: string;
  scope: 'aggregate_id' | 'project_id';
  position: 'sequence' | 'project_sequence';
  /** Where the newest committed position is kept. */
  counterTable: 'chat_session' | 'project';
}

/** The newest committed position of a stream, kept on its project or session row; null when the row does not exist. */
export async function newestPosition(db: Db, stream: EventStreamScope): Promise<number | null> {
  const row = await db.selectFrom(stream.counterTable).select('event_sequence').where('id', '=', stream.id).executeTakeFirst();
  return row?.event_sequence ?? null;
}

/** The position of event `eventId` in the stream, or null when it is not one of its events. */
export async function positionOfEvent(db: Db, stream: EventStreamScope, eventId: string): Promise<number | null> {
  const { rows } = await sql<{ position: number }>`
    select ${sql.ref(stream.position)} as position from event_outbox
    where id = ${eventId} and ${sql.ref(stream.scope)} = ${stream.id}`.execute(db);
  return rows[0]?.position ?? null;
}

/** Committed events of the stream after `position`, in order, at most `limit`. */
export async function eventsAfter(db: Db, stream: EventStreamScope, position: number, limit: number): Promise<DomainEvent[]> {
  const { rows } = await sql<EventRow>`
    select ${eventColumns()} from event_outbox
    where ${sql.ref(stream.scope)} = ${stream.id} and ${sql.ref(stream.position)} > ${position}
    order by ${sql.ref(stream.position)} limit ${limit}`.execute(db);
  return rows.map(eventFromRow);
}

export interface DeliveryCounts {
  pending: number;
  failed: number;
  oldestPendingAt: Date | null;
  oldestFailedAt: Date | null;
}

/** Pending and failed counts, of one project or of all, read from the partial indexes only. */
export async function deliveryCounts(db: Db, projectId: string | null): Promise<DeliveryCounts> {
  const { rows } = await sql<{ pending: string; failed: string; oldest_pending: string | Date | null; oldest_failed: string | Date | null }>`
    select count(*) filter (where status = 'pending') as pending,
           count(*) filter (where status = 'failed') as failed,
           min(created_at) filter (where status = 'pending') as oldest_pending,
           min(created_at) filter (where status = 'failed') as oldest_failed
    from event_outbox where status <> 'published' ${projectId ? sql`and project_id = ${projectId}` : sql``}`.execute(db);
  const row = rows[0];
  // Raw SQL may return timestamps as strings; callers want Dates.
  const date = (value: string | Date | null | undefined) => (value ? new Date(value) : null);
  return {
    pending: Number(row?.pending ?? 0),
    failed: Number(row?.failed ?? 0),
    oldestPendingAt: date(row?.oldest_pending),
    oldestFailedAt: date(row?.oldest_failed),
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
  const rows = await db
    .selectFrom('event_outbox')
    .select(['id', 'event_type', 'sequence', 'session_id', 'attempts', 'last_error', 'created_at'])
    .where('project_id', '=', projectId)
    .where('status', '=', 'failed')
    .orderBy('created_at')
    .limit(limit)
    .execute();
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

/** A reprocessed event, with the columns the outbox log records name. */
export type ReprocessedRow = Pick<EventOutboxRow, 'id' | 'project_id' | 'attempts' | 'aggregate_type' | 'aggregate_id' | 'sequence'> & { event_type: EventType };

/** Failed events back to pending, with their original id and a fresh set of attempts. */
export async function reprocessFailed(db: Db, filter: { projectId?: string; eventIds?: string[] }): Promise<ReprocessedRow[]> {
  const { rows } = await sql<ReprocessedRow>`
    update event_outbox
    set status = 'pending', attempts = 0, next_retry_at = now()
    where status = 'failed'
      ${filter.projectId ? sql`and project_id = ${filter.projectId}` : sql``}
      ${filter.eventIds ? sql`and id = any(${filter.eventIds}::uuid[])` : sql``}
    returning id, event_type, project_id, attempts, aggregate_type, aggregate_id, sequence`.execute(db);
  if (rows.length > 0) await notifyPublishers(db);
  return rows;
}

/** NOTIFY publishers in other processes that events are due (after commit, when run in a transaction). */
export async function notifyPublishers(db: Db): Promise<void> {
  await sql`select pg_notify(${OUTBOX_CHANNEL}, '')`.execute(db);
}
