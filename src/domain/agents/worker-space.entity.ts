import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { newId } from '../../platform/db/ids.ts';
import { ProjectSchema } from '../projects/project.entity.ts';
import { AgentSchema } from './agent.entity.ts';
import { MAX_USER_ID_LENGTH } from '../../platform/validation.ts';

/** One per member per project: the member's workbench, holding the agent they work with. */
export const WorkerSpaceSchema = defineEntity({
  name: 'WorkerSpace',
  tableName: 'worker_space',
  properties: {
    id: p.uuid().primary().onCreate(() => newId()),
    project: () => p.manyToOne(ProjectSchema).deleteRule('cascade'),
    userId: p.string().length(MAX_USER_ID_LENGTH),
    activeAgent: () => p.manyToOne(AgentSchema).nullable().deleteRule('set null'),
    /** Last sequence number handed to an event of this worker space (see outbox.writer.ts). */
    eventSequence: p.integer().default(0),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p.datetime().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
});

export type IWorkerSpace = InferEntity<typeof WorkerSpaceSchema>;
