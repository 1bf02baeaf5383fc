import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { ProjectSchema } from '../projects/project.entity.ts';
import { MAX_USER_ID_LENGTH } from '../../platform/validation.ts';
import { AgentSchema } from './agent.entity.ts';

/**
 * A bearer credential that authenticates as one agent (docs/agents.md#external-agent-runtimes).
 * Only the SHA-256 of its secret is stored; the secret is shown once, when it is created.
 */
export const AgentCredentialSchema = defineEntity({
  name: 'AgentCredential',
  tableName: 'agent_credential',
  properties: {
    /** Chosen by the service before the secret is built: the secret names it. */
    id: p.uuid().primary(),
    agent: () => p.manyToOne(AgentSchema).deleteRule('cascade'),
    /** The agent's project: the only one the credential can act in. */
    project: () => p.manyToOne(ProjectSchema).deleteRule('cascade'),
    secretHash: p.blob().lazy(),
    createdByUserId: p.string().length(MAX_USER_ID_LENGTH),
    createdAt: p.datetime().onCreate(() => new Date()),
    lastUsedAt: p.datetime().nullable(),
    revokedAt: p.datetime().nullable(),
  },
});

export type IAgentCredential = InferEntity<typeof AgentCredentialSchema>;
