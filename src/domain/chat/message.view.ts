import type { MessageCreatedEvent, MessageRole } from '../../events/domain-event.ts';
import type { IMessage } from './message.entity.ts';

/**
 * What the GraphQL `Message` type reads: a plain object, mapped once from a stored message and
 * once from the `message_created` event that announced it, so both render the same way.
 */
export interface MessageView {
  id: string;
  sessionId: string;
  projectId: string;
  authorUserId: string;
  role: MessageRole;
  body: string;
  /** The user message this one answers (agent replies and the runtime's notices). */
  replyToId: string | null;
  createdAt: Date;
}

export function messageView(message: IMessage): MessageView {
  return {
    id: message.id,
    sessionId: message.session.id,
    projectId: message.project.id,
    authorUserId: message.authorUserId,
    role: message.role,
    body: message.body,
    replyToId: message.replyToId ?? null,
    createdAt: message.createdAt,
  };
}

export function messageViewOfEvent(event: MessageCreatedEvent): MessageView {
  const { payload } = event;
  return {
    id: payload.messageId,
    sessionId: payload.sessionId,
    projectId: event.projectId,
    authorUserId: payload.authorUserId,
    role: payload.role,
    body: payload.body,
    replyToId: payload.replyToMessageId ?? null,
    createdAt: new Date(payload.createdAt),
  };
}
