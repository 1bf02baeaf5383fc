import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { newId } from '../../platform/db/ids.ts';
import { ProjectSchema } from '../projects/project.entity.ts';
import { AGENT_KINDS, type AgentKind, type AgentSettings } from './agent-settings.ts';

/** An AI agent available in one project. */
export const AgentSchema = defineEntity({
  name: 'Agent',
  tableName: 'agent',
  properties: {
    id: p.uuid().primary().onCreate(() => newId()),
    project: () => p.manyToOne(ProjectSchema).deleteRule('cascade'),
    name: p.string().length(100),
    /** Which adapter answers for the agent (docs/agents.md). */
    kind: p.enum(() => [...AGENT_KINDS]).$type<AgentKind>().default('echo'),
    /** The kind's settings, validated by agent-settings.ts before they are stored. */
    settings: p.json<AgentSettings>().onCreate(() => ({})),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
});

export type IAgent = InferEntity<typeof AgentSchema>;
