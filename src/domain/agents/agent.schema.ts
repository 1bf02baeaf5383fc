import { builder } from '../../platform/graphql/builder.ts';
import { connectionField, connectionType } from '../../platform/graphql/connection.ts';
import { ProjectRef } from '../projects/project.schema.ts';
import type { IAgent } from './agent.entity.ts';
import { createAgent, findVisibleAgents, listAgents, MAX_AGENT_NAME_LENGTH } from './agent.service.ts';
import { NodeRef, nodeType } from '../../platform/graphql/node.ts';

export const AgentRef = builder.objectRef<IAgent>('Agent');
const AgentConnection = connectionType('Agent', AgentRef);

nodeType('Agent', (ctx, ids) => findVisibleAgents(ctx.em, ctx.viewer().userId, ids));

AgentRef.implement({
  description: 'An AI agent available in a project.',
  interfaces: [NodeRef],
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
