import { builder } from '../../platform/graphql/builder.ts';
import { related } from '../loaders.ts';
import { ProjectRef } from '../projects/project.schema.ts';
import { AgentRef } from './agent.schema.ts';
import type { IWorkerSpace } from './worker-space.entity.ts';
import { findVisibleWorkerSpaces, getMyWorkerSpace, switchAgent, type SwitchAgentResult } from './worker-space.service.ts';
import { NodeRef, nodeType } from '../../platform/graphql/node.ts';

export const WorkerSpaceRef = builder.objectRef<IWorkerSpace>('WorkerSpace');

nodeType('WorkerSpace', (ctx, ids) => findVisibleWorkerSpaces(ctx.em, ctx.viewer().userId, ids));

WorkerSpaceRef.implement({
  description: "A member's workspace in a project, holding the agent they work with.",
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.exposeID('id'),
    userId: t.exposeID('userId'),
    activeAgent: t.field({
      type: AgentRef,
      nullable: true,
      resolve: (space, _args, ctx) => (space.activeAgent ? ctx.loaders.agentById.load(space.activeAgent.id) : null),
    }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
    project: t.field({ type: ProjectRef, resolve: related((loaders, space) => loaders.projectById.load(space.project.id)) }),
  }),
});

builder.objectField(ProjectRef, 'myWorkerSpace', (t) =>
  t.field({
    type: WorkerSpaceRef,
    description: "The viewer's worker space in this project.",
    resolve: (project, _args, ctx) => getMyWorkerSpace(ctx.em, ctx.viewer().userId, project.id),
  }),
);

builder.queryField('workerSpace', (t) =>
  t.field({
    type: WorkerSpaceRef,
    description: "The viewer's worker space in a project they are a member of.",
    args: { projectId: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => getMyWorkerSpace(ctx.em, ctx.viewer().userId, args.projectId),
  }),
);

const SwitchAgentInput = builder.inputType('SwitchAgentInput', {
  fields: (t) => ({
    projectId: t.id({ required: true }),
    agentId: t.id({ required: true, description: 'An agent of the same project.' }),
  }),
});

const SwitchAgentPayload = builder.objectRef<SwitchAgentResult>('SwitchAgentPayload').implement({
  fields: (t) => ({
    workerSpace: t.field({ type: WorkerSpaceRef, resolve: (result) => result.workerSpace }),
    switched: t.boolean({
      description: 'False when the agent was already active: nothing changed and no event was recorded.',
      resolve: (result) => result.event !== null,
    }),
    eventId: t.id({ nullable: true, resolve: (result) => result.event?.id ?? null }),
    sequence: t.int({ nullable: true, resolve: (result) => result.event?.sequence ?? null }),
  }),
});

builder.mutationField('switchAgent', (t) =>
  t.field({
    type: SwitchAgentPayload,
    description: 'Makes an agent active in the viewer\'s worker space and records `agent_switched` in the same transaction.',
    args: { input: t.arg({ type: SwitchAgentInput, required: true }) },
    resolve: (_root, { input }, ctx) => switchAgent(ctx.em, ctx.viewer().userId, input),
  }),
);
