import { sql } from 'kysely';
import type { Db } from '../../platform/db/database.ts';
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
export function insertMessageWithEvent(db: Db, message: NewMessage, memberUserId: string | null, event: NewEventRow) {
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
  return insertNumberedEvent(numbered, event).executeTakeFirst();
}
