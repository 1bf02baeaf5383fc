import { builder } from '../../platform/graphql/builder.ts';
import { connectionField, connectionType } from '../../platform/graphql/connection.ts';
import { ProjectRef } from '../projects/project.schema.ts';
import type { IAgent } from './agent.entity.ts';
import { createAgent, findVisibleAgents, listAgents, MAX_AGENT_NAME_LENGTH, updateAgent } from './agent.service.ts';
import type { AgentKind, AgentSettings } from './agent-settings.ts';
import { NodeRef, nodeType } from '../../platform/graphql/node.ts';

const AgentKindEnum = builder.enumType('AgentKind', {
  description: 'Who writes the agent\'s replies (docs/agents.md).',
  values: {
    ECHO: { value: 'echo', description: 'Built in, no network: repeats the message, streamed word by word. The default.' },
    OPENAI_COMPATIBLE: { value: 'openai-compatible', description: 'Streams chat completions from the OpenAI-compatible server the deployment configures (AGENT_OPENAI_BASE_URL).' },
    EXTERNAL: { value: 'external', description: 'Answered by a runtime outside the server, with an agent credential (agentInbox, postAgentReply); the built-in runtime never answers for it.' },
  } as const,
});

const AgentSettingsRef = builder.objectRef<AgentSettings>('AgentSettings').implement({
  description: 'How the agent answers. Keys and server addresses are deployment settings, never part of an agent.',
  fields: (t) => ({
    instructions: t.string({ nullable: true, resolve: (s) => s.instructions ?? null }),
    model: t.string({ nullable: true, resolve: (s) => s.model ?? null }),
    temperature: t.float({ nullable: true, resolve: (s) => s.temperature ?? null }),
    maxTokens: t.int({ nullable: true, resolve: (s) => s.maxTokens ?? null }),
    wordDelayMs: t.int({ nullable: true, resolve: (s) => s.wordDelayMs ?? null }),
  }),
});

const AgentSettingsInput = builder.inputType('AgentSettingsInput', {
  description: 'Settings for the agent\'s kind; a setting of another kind is BAD_USER_INPUT.',
  fields: (t) => ({
    instructions: t.string({ required: false, description: 'Put before the conversation (a system prompt), up to 8000 characters.' }),
    model: t.string({ required: false, description: 'OPENAI_COMPATIBLE (required there): the model name the server knows.' }),
    temperature: t.float({ required: false, description: 'OPENAI_COMPATIBLE: 0 to 2.' }),
    maxTokens: t.int({ required: false, description: 'OPENAI_COMPATIBLE: most tokens in one reply, 1 to 100000.' }),
    wordDelayMs: t.int({ required: false, description: 'ECHO: pause between streamed words, 0 to 2000 ms (default 40).' }),
  }),
});

export const AgentRef = builder.objectRef<IAgent>('Agent');
const AgentConnection = connectionType('Agent', AgentRef);

nodeType('Agent', (ctx, ids) => findVisibleAgents(ctx.em, ctx.viewer().userId, ids));

AgentRef.implement({
  description: 'An AI agent available in a project.',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    kind: t.field({ type: AgentKindEnum, resolve: (agent) => agent.kind as AgentKind }),
    settings: t.field({ type: AgentSettingsRef, resolve: (agent) => agent.settings as AgentSettings }),
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
    kind: t.field({ type: AgentKindEnum, required: false, description: 'Default ECHO.' }),
    settings: t.field({ type: AgentSettingsInput, required: false }),
  }),
});

const UpdateAgentInput = builder.inputType('UpdateAgentInput', {
  fields: (t) => ({
    agentId: t.id({ required: true }),
    name: t.string({ required: false, description: `1 to ${MAX_AGENT_NAME_LENGTH} characters, unique in the project.` }),
    kind: t.field({ type: AgentKindEnum, required: false }),
    settings: t.field({ type: AgentSettingsInput, required: false, description: 'Replaces all settings; omitted: the current ones, checked against the new kind.' }),
  }),
});

builder.mutationField('updateAgent', (t) =>
  t.field({
    type: AgentRef,
    description: 'Owners only. Changes the agent\'s name, kind or settings; replies being written finish as they started.',
    args: { input: t.arg({ type: UpdateAgentInput, required: true }) },
    resolve: (_root, { input }, ctx) => updateAgent(ctx.em, ctx.viewer().userId, input),
  }),
);

builder.mutationField('createAgent', (t) =>
  t.field({
    type: AgentRef,
    description: 'Owners only. Makes an agent available in the project.',
    args: { input: t.arg({ type: CreateAgentInput, required: true }) },
    resolve: (_root, { input }, ctx) => createAgent(ctx.em, ctx.viewer().userId, input),
  }),
);
