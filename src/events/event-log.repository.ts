import { sql } from 'kysely';
import type { Db } from '../platform/db/database.ts';
import { EVENT_ROW_COLUMNS, eventFromRow, type DomainEvent, type EventRow } from './domain-event.ts';

/**
 * The statements that read `event_outbox` as the event log: subscription replay and positions.
 * Delivery state (status, reprocessing) and the publisher's statements are in src/outbox/sql/;
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

/** What retention removed from a stream (a project or an aggregate): its newest position and time, or null when nothing was. */
export interface ExpiredHorizon {
  expiredThrough: number;
  expiredUntil: Date;
}

export async function expiredHorizon(db: Db, streamId: string): Promise<ExpiredHorizon | null> {
  const { rows } = await sql<{ expired_through: number; expired_until: Date | string }>`
    select expired_through, expired_until from event_log_horizon where stream_id = ${streamId}`.execute(db);
  const row = rows[0];
  return row ? { expiredThrough: row.expired_through, expiredUntil: new Date(row.expired_until) } : null;
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

/** NOTIFY publishers in other processes that events are due (after commit, when run in a transaction). */
export async function notifyPublishers(db: Db): Promise<void> {
  await sql`select pg_notify(${OUTBOX_CHANNEL}, '')`.execute(db);
}
