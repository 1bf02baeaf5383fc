import { builder } from '../../platform/graphql/builder.ts';
import { connectionField, connectionType } from '../../platform/graphql/connection.ts';
import { ProjectRef } from '../projects/project.schema.ts';
import type { IAgent } from './agent.entity.ts';
import { createAgent, listAgents, MAX_AGENT_NAME_LENGTH } from './agent.service.ts';

export const AgentRef = builder.objectRef<IAgent>('Agent');
const AgentConnection = connectionType('Agent', AgentRef);

AgentRef.implement({
  description: 'An AI agent available in a project.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

connectionField(ProjectRef, 'agents', {
  connection: AgentConnection,
  list: (project, args, ctx) => listAgents(ctx.em, project.id, args),
});

const CreateAgentInput = builder.inputType('CreateAgentInput', {
  fields: (t) => ({
    projectId: t.id({ required: true }),
    name: t.string({ required: true, description: `1 to ${MAX_AGENT_NAME_LENGTH} characters, unique in the project.` }),
  }),
});

builder.mutationField('createAgent', (t) =>
  t.field({
    type: AgentRef,
    description: 'Owners only. Makes an agent available in the project.',
    args: { input: t.arg({ type: CreateAgentInput, required: true }) },
    resolve: (_root, { input }, ctx) => createAgent(ctx.em, ctx.viewer().userId, input),
  }),
);
