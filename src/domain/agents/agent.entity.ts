import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { newId } from '../../platform/db/ids.ts';
import { ProjectSchema } from '../projects/project.entity.ts';

/** An AI agent available in one project. */
export const AgentSchema = defineEntity({
  name: 'Agent',
  tableName: 'agent',
  properties: {
    id: p.uuid().primary().onCreate(() => newId()),
    project: () => p.manyToOne(ProjectSchema).deleteRule('cascade'),
    name: p.string().length(100),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
});

export type IAgent = InferEntity<typeof AgentSchema>;
