import { sql } from 'kysely';
import type { Em } from '../db/orm.ts';
import { OutboxEventSchema, type AggregateType, type EventType, type IOutboxEvent } from './outbox-event.entity.ts';

export interface NewEvent {
  type: EventType;
  aggregate: { type: AggregateType; id: string };
  projectId: string;
  userId: string;
  sessionId: string | null;
  /** Everything a subscriber needs to render the event: delivery must not read the database. */
  payload: Record<string, unknown>;
}

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
 * The sequence number comes from an atomic `update ... returning` on the aggregate's row, which
 * holds that row's lock until the transaction ends. Concurrent writers to one aggregate therefore
 * queue up, numbers are gapless (a rolled-back increment is rolled back too), and within one
 * aggregate sequence order is commit order, so a reader that follows sequence numbers cannot skip
 * an event that commits late.
 */
export async function recordEvent(em: Em, event: NewEvent): Promise<IOutboxEvent> {
  if (!em.isInTransaction()) {
    throw new Error('recordEvent must run inside the transaction of the change it describes');
  }
  const table = SEQUENCE_TABLES[event.aggregate.type];
  const { rows } = await sql<{ event_sequence: number }>`
    update ${sql.table(table)} set event_sequence = event_sequence + 1
    where id = ${event.aggregate.id}
    returning event_sequence`.execute(em.getKysely());
  const sequence = rows[0]?.event_sequence;
  if (sequence === undefined) {
    throw new Error(`cannot record ${event.type}: ${event.aggregate.type} ${event.aggregate.id} does not exist`);
  }
  return em.create(OutboxEventSchema, {
    eventType: event.type,
    aggregateType: event.aggregate.type,
    aggregateId: event.aggregate.id,
    sequence,
    projectId: event.projectId,
    userId: event.userId,
    sessionId: event.sessionId,
    payload: event.payload,
    status: 'pending',
    attempts: 0,
  });
}
