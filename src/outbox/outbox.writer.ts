import { sql } from 'kysely';
import { dbOf } from '../platform/db/database.ts';
import type { Em } from '../platform/db/orm.ts';
import type { AggregateType, NewDomainEvent } from '../events/domain-event.ts';
import { currentTraceCarrier } from '../platform/observability/tracing.ts';
import { OutboxEventSchema, type IOutboxEvent } from './outbox-event.entity.ts';

/** Tables that own an `event_sequence` counter, per aggregate type. Never built from input. */
const SEQUENCE_TABLES: Record<AggregateType, string> = {
  chat_session: 'chat_session',
  worker_space: 'worker_space',
};

/**
 * The one way domain code records an event. It only adds to the caller's unit of work: the event
 * row is flushed, committed or rolled back with the change it describes. It opens no connection,
 * no session, and publishes nothing; the OutboxPublisher does that after commit.
 *
 * Each event gets two numbers, both from an atomic `update ... returning` that holds the row's
 * lock until the transaction ends:
 * - `sequence`, per aggregate (chat session or worker space), and
 * - `projectSequence`, per project.
 * Concurrent writers queue on those locks, so the numbers are gapless (a rolled-back increment
 * rolls back too) and follow commit order. A reader that follows them, such as a resuming
 * subscription, cannot skip an event that commits late (docs/design-notes.md#cursors-that-skip-late-commits). The price is that writes to
 * one project are serialised for the rest of their transaction, which we keep short. The project
 * row is always locked first, so two writers never wait on each other in opposite order.
 */
export async function recordEvent(em: Em, event: NewDomainEvent): Promise<IOutboxEvent> {
  if (!em.isInTransaction()) {
    throw new Error('recordEvent must run inside the transaction of the change it describes');
  }
  // One round trip for both numbers. The aggregate's update reads the project's result, so
  // PostgreSQL must lock the project row before the aggregate row.
  const { rows } = await sql<{ project_sequence: number; sequence: number }>`
    with project_number as (
      update project set event_sequence = event_sequence + 1
      where id = ${event.projectId}
      returning event_sequence
    ), aggregate_number as (
      update ${sql.table(SEQUENCE_TABLES[event.aggregate.type])} set event_sequence = event_sequence + 1
      where id = ${event.aggregate.id} and project_id = (select ${event.projectId}::uuid from project_number)
      returning event_sequence
    )
    select project_number.event_sequence as project_sequence, aggregate_number.event_sequence as sequence
    from project_number, aggregate_number`.execute(dbOf(em));
  const projectSequence = rows[0]?.project_sequence;
  const sequence = rows[0]?.sequence;
  if (projectSequence === undefined || sequence === undefined) {
    throw new Error(`cannot record ${event.type}: ${event.aggregate.type} ${event.aggregate.id} is not in project ${event.projectId}`);
  }
  return em.create(OutboxEventSchema, {
    eventType: event.type,
    aggregateType: event.aggregate.type,
    aggregateId: event.aggregate.id,
    sequence,
    projectSequence,
    projectId: event.projectId,
    userId: event.userId,
    sessionId: event.sessionId,
    payload: event.payload,
    // The writing request's trace, which the publisher and the deliveries continue.
    traceContext: currentTraceCarrier(),
  });
}
