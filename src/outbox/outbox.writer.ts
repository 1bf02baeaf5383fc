import type { Insertable, QueryCreator } from 'kysely';
import { dbOf, type Database, type Db, type EventOutboxTable } from '../platform/db/database.ts';
import { newId } from '../platform/db/ids.ts';
import type { Em } from '../platform/db/orm.ts';
import type { NewDomainEvent, UnplacedEvent } from '../events/domain-event.ts';
import { currentTraceCarrier } from '../platform/observability/tracing.ts';
import { traceStatementTransaction } from '../platform/observability/transaction-tracing.ts';
import { wakePublisherAfterCommit } from './outbox.wakeups.ts';

/**
 * Recording an event. Each event gets two numbers, each from an atomic increment that holds its
 * row's lock until the transaction ends:
 * - `sequence`, per aggregate (chat session or worker space), and
 * - `projectSequence`, per project.
 * Concurrent writers queue on those locks, so the numbers are gapless (a rolled-back increment
 * rolls back too) and follow commit order. A reader that follows them, such as a resuming
 * subscription, cannot skip an event that commits late (docs/design-notes.md#cursors-that-skip-late-commits).
 *
 * The lock order, the same for every writer, is what keeps writers from deadlocking and one
 * project's writes from queueing on each other for longer than they must:
 * 1. whatever else the transaction changes, then the aggregate's row;
 * 2. the project's row **last**, in the same statement as the event's insert;
 * 3. commit at once: nothing may follow the event in its transaction.
 * Every write to a project waits for the project row, so the time it is held is the project's
 * write throughput: one statement and the commit (docs/design-notes.md#the-write-path).
 */

/** The aggregate's number: the CTE a statement that records an event starts from. */
export interface AggregateNumber {
  project_id: string;
  event_sequence: number;
}

/** A query creator whose statement has numbered (and locked) the event's aggregate as `aggregate_number`. */
export type WithAggregateNumber = QueryCreator<Database & { aggregate_number: AggregateNumber }>;

/** An event's row before the statement that records it places it in its project and numbers it. */
export type NewEventRow = Omit<Insertable<EventOutboxTable>, 'project_id' | 'sequence' | 'project_sequence'> & { id: string; created_at: Date };

/** The row of a new event: pending, with the writing request's trace context. */
export function newEventRow(event: UnplacedEvent): NewEventRow {
  return {
    id: newId(),
    event_type: event.type,
    aggregate_type: event.aggregate.type,
    aggregate_id: event.aggregate.id,
    user_id: event.userId,
    session_id: event.sessionId,
    // pg would stringify an object, but an array payload would become a PostgreSQL array.
    payload: JSON.stringify(event.payload),
    created_at: new Date(),
    // The writing request's trace, which the publisher and the deliveries continue.
    trace_context: serialisedTraceContext(),
  };
}

function serialisedTraceContext(): string | null {
  const carrier = currentTraceCarrier();
  return carrier ? JSON.stringify(carrier) : null;
}

/**
 * The end of every statement that records an event: takes the project's number (locking its row,
 * last) and inserts the event with both numbers. `from` has numbered the aggregate already, in a
 * CTE `aggregate_number` of one row (no row: nothing is inserted, and the statement returns none).
 */
export function insertNumberedEvent(from: WithAggregateNumber, row: NewEventRow) {
  return from
    .with('project_number', (db) =>
      db
        .updateTable('project')
        .set((eb) => ({ event_sequence: eb('event_sequence', '+', 1) }))
        // Reading the aggregate's CTE here makes PostgreSQL lock the aggregate's row first.
        .where('id', '=', (eb) => eb.selectFrom('aggregate_number').select('aggregate_number.project_id'))
        .returning(['project.id', 'project.event_sequence']),
    )
    .insertInto('event_outbox')
    .columns(['id', 'event_type', 'aggregate_type', 'aggregate_id', 'sequence', 'project_sequence', 'project_id', 'user_id', 'session_id', 'payload', 'created_at', 'trace_context'])
    .expression((eb) =>
      eb
        .selectFrom(['aggregate_number', 'project_number'])
        .select([
          eb.val(row.id).as('id'),
          eb.val(row.event_type).as('event_type'),
          eb.val(row.aggregate_type).as('aggregate_type'),
          eb.val(row.aggregate_id).as('aggregate_id'),
          'aggregate_number.event_sequence',
          'project_number.event_sequence as project_sequence',
          'project_number.id as project_id',
          eb.val(row.user_id).as('user_id'),
          eb.val(row.session_id ?? null).as('session_id'),
          eb.val(row.payload).as('payload'),
          eb.val(row.created_at).as('created_at'),
          eb.val(row.trace_context ?? null).as('trace_context'),
        ]),
    )
    .returning(['event_outbox.id', 'event_outbox.sequence', 'event_outbox.project_sequence', 'event_outbox.project_id']);
}

/** The numbers an event got. */
export interface RecordedEvent {
  id: string;
  sequence: number;
  projectSequence: number;
  projectId: string;
}

/**
 * Runs a statement that records an event (built on `insertNumberedEvent`) in `em`'s transaction,
 * or, outside one, as a transaction of its own, and wakes the publisher once it has committed.
 * The row is built first, so it carries the request's trace context. Resolves to undefined when
 * the statement recorded nothing (its aggregate's CTE found no row).
 */
export async function recordEventWith<Row extends { id: string; sequence: number; project_sequence: number; project_id: string }>(
  em: Em,
  event: UnplacedEvent,
  statement: (em: Em, row: NewEventRow) => Promise<Row | undefined>,
): Promise<RecordedEvent | undefined> {
  const row = newEventRow(event);
  // Database errors as the ORM's typed exceptions (a unique violation is UniqueConstraintViolationException), as from a flush.
  const run = () =>
    statement(em, row).catch((error: unknown) => {
      throw em.getDriver().convertException(error as Error);
    });
  let recorded: Row | undefined;
  if (em.isInTransaction()) {
    // What the unit of work holds goes first, before the project row is locked.
    await em.flush();
    recorded = await run();
  } else {
    recorded = await traceStatementTransaction('INSERT', run);
  }
  if (!recorded) return undefined;
  wakePublisherAfterCommit(em);
  return { id: recorded.id, sequence: recorded.sequence, projectSequence: recorded.project_sequence, projectId: recorded.project_id };
}

/** Tables that own an `event_sequence` counter, per aggregate type. Never built from input. */
const SEQUENCE_TABLES = { chat_session: 'chat_session', worker_space: 'worker_space' } as const;

/**
 * How domain code records an event beside changes made through the unit of work: it flushes those
 * changes (the change the event describes), then numbers and inserts the event in one statement,
 * in the caller's transaction, which must commit right after (see the lock order above). It
 * publishes nothing; the OutboxPublisher does that after commit, woken by it.
 */
export async function recordEvent(em: Em, event: NewDomainEvent): Promise<RecordedEvent> {
  if (!em.isInTransaction()) {
    throw new Error('recordEvent must run inside the transaction of the change it describes');
  }
  const table = SEQUENCE_TABLES[event.aggregate.type];
  const recorded = await recordEventWith(em, event, (tx, row) =>
    insertNumberedEvent(
      dbOf(tx).with('aggregate_number', (q) =>
        q
          .updateTable(table)
          .set((eb) => ({ event_sequence: eb('event_sequence', '+', 1) }))
          .where('id', '=', event.aggregate.id)
          .where('project_id', '=', event.projectId)
          .returning(['project_id', 'event_sequence']),
      ),
      row,
    ).executeTakeFirst(),
  );
  if (!recorded) {
    throw new Error(`cannot record ${event.type}: ${event.aggregate.type} ${event.aggregate.id} is not in project ${event.projectId}`);
  }
  return recorded;
}
