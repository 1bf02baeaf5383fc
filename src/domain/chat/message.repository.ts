import { sql } from 'kysely';
import { dbOf, type Db } from '../../platform/db/database.ts';
import { runHot, type Em } from '../../platform/db/orm.ts';
import { statementTemplate } from '../../platform/db/statement-template.ts';
import { insertNumberedEvent, type NewEventRow } from '../../outbox/outbox.writer.ts';
import type { MessageRole } from '../../events/domain-event.ts';

export interface NewMessage {
  id: string;
  sessionId: string;
  authorUserId: string;
  role: MessageRole;
  body: string;
  replyToId: string | null;
  createdAt: Date;
}

/**
 * A message and its `message_created` event in one statement, in this order: the session's number
 * (its row locked; only if `memberUserId` is a member of its project, when given), the message,
 * then the project's number (its row locked last) and the event. Outside a transaction the
 * statement is its own, so PostgreSQL commits it as it ends and the project row is held for no
 * round trip at all; this is the write path of `sendMessage` (docs/design-notes.md#the-write-path).
 *
 * No row back: the session does not exist, or `memberUserId` is not a member of its project, and
 * nothing was written.
 */
export async function insertMessageWithEvent(em: Em, message: NewMessage, memberUserId: string | null, event: NewEventRow) {
  const values: MessageWithEventValues = {
    ...message,
    memberUserId: memberUserId ?? '',
    eventId: event.id,
    eventType: event.event_type,
    aggregateType: event.aggregate_type,
    aggregateId: event.aggregate_id,
    eventUserId: event.user_id,
    eventSessionId: event.session_id ?? null,
    payload: event.payload,
    eventCreatedAt: event.created_at,
    traceContext: event.trace_context ?? null,
  };
  const query = messageWithEvent.compile(dbOf(em), values, memberUserId === null ? 'anyone' : 'member');
  // sendMessage's statement stands alone (no transaction), so it runs prepared: PostgreSQL parsed
  // and planned it for longer than it ran.
  return (await runHot(em, query))[0];
}

type MessageWithEventValues = NewMessage & {
  memberUserId: string;
  eventId: string;
  eventType: string;
  aggregateType: string;
  aggregateId: string;
  eventUserId: string;
  eventSessionId: string | null;
  payload: unknown;
  eventCreatedAt: Date;
  traceContext: unknown;
};

// The statement is built once per shape (with or without the membership check), not per message.
const messageWithEvent = statementTemplate(
  ['id', 'sessionId', 'authorUserId', 'role', 'body', 'replyToId', 'createdAt', 'memberUserId', 'eventId', 'eventType', 'aggregateType', 'aggregateId', 'eventUserId', 'eventSessionId', 'payload', 'eventCreatedAt', 'traceContext'],
  (db: Db, v: MessageWithEventValues, shape: 'member' | 'anyone') =>
    messageWithEventStatement(db, v, shape === 'member' ? v.memberUserId : null, {
      id: v.eventId,
      event_type: v.eventType,
      aggregate_type: v.aggregateType,
      aggregate_id: v.aggregateId,
      user_id: v.eventUserId,
      session_id: v.eventSessionId,
      payload: v.payload,
      created_at: v.eventCreatedAt,
      trace_context: v.traceContext,
    }),
);

/** The statement of `insertMessageWithEvent`, not yet run (for the benchmark's database ceiling, which runs it on pg directly). */
export function messageWithEventStatement(db: Db, message: NewMessage, memberUserId: string | null, event: NewEventRow) {
  const numbered = db
    .with('aggregate_number', (q) =>
      q
        .updateTable('chat_session')
        .set((eb) => ({ event_sequence: eb('event_sequence', '+', 1) }))
        .where('chat_session.id', '=', message.sessionId)
        .$if(memberUserId !== null, (update) =>
          update.where((eb) =>
            eb.exists(
              eb
                .selectFrom('project_member')
                .select(sql.lit(1).as('member'))
                .whereRef('project_member.project_id', '=', 'chat_session.project_id')
                .where('project_member.user_id', '=', memberUserId!),
            ),
          ),
        )
        .returning(['chat_session.project_id', 'chat_session.event_sequence']),
    )
    .with('new_message', (q) =>
      q
        .insertInto('message')
        .columns(['id', 'session_id', 'project_id', 'author_user_id', 'role', 'body', 'reply_to_id', 'created_at'])
        .expression((eb) =>
          eb
            .selectFrom('aggregate_number')
            .select([
              eb.val(message.id).as('id'),
              eb.val(message.sessionId).as('session_id'),
              'aggregate_number.project_id',
              eb.val(message.authorUserId).as('author_user_id'),
              eb.val(message.role).as('role'),
              eb.val(message.body).as('body'),
              eb.val(message.replyToId).as('reply_to_id'),
              eb.val(message.createdAt).as('created_at'),
            ]),
        )
        .returning('message.id'),
    );
  return insertNumberedEvent(numbered, event);
}
