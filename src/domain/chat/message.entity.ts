import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { newId } from '../../platform/db/ids.ts';
import { ProjectSchema } from '../projects/project.entity.ts';
import { ChatSessionSchema } from './chat-session.entity.ts';
import { MAX_USER_ID_LENGTH } from '../../platform/validation.ts';
import { MESSAGE_ROLES, type MessageRole } from '../../events/domain-event.ts';

export const MessageSchema = defineEntity({
  name: 'Message',
  tableName: 'message',
  properties: {
    id: p.uuid().primary().onCreate(() => newId()),
    session: () => p.manyToOne(ChatSessionSchema).deleteRule('cascade'),
    // Denormalised from the session so project-scoped reads need no join.
    project: () => p.manyToOne(ProjectSchema).deleteRule('cascade'),
    authorUserId: p.string().length(MAX_USER_ID_LENGTH),
    role: p.enum(() => [...MESSAGE_ROLES]).$type<MessageRole>(),
    body: p.text(),
    /** The user message an agent reply (or the runtime's failure notice) answers; unique. */
    replyToId: p.uuid().nullable(),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
});

export type IMessage = InferEntity<typeof MessageSchema>;
