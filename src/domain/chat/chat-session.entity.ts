import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { newId } from '../../platform/db/ids.ts';
import { ProjectSchema } from '../projects/project.entity.ts';
import { MAX_USER_ID_LENGTH } from '../../platform/validation.ts';

export const ChatSessionSchema = defineEntity({
  name: 'ChatSession',
  tableName: 'chat_session',
  properties: {
    id: p.uuid().primary().onCreate(() => newId()),
    project: () => p.manyToOne(ProjectSchema).deleteRule('cascade'),
    title: p.string().length(200),
    createdByUserId: p.string().length(MAX_USER_ID_LENGTH),
    /**
     * Last sequence number handed to an event of this session. Only the outbox writer moves it,
     * with an atomic increment that row-locks the session until commit (see outbox.writer.ts).
     */
    eventSequence: p.integer().default(0),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
});

export type IChatSession = InferEntity<typeof ChatSessionSchema>;
