import { builder } from '../../platform/graphql/builder.ts';
import { connectionField, connectionType } from '../../platform/graphql/connection.ts';
import { related } from '../loaders.ts';
import { ProjectRef } from '../projects/project.schema.ts';
import type { IChatSession } from './chat-session.entity.ts';
import { createChatSession, findVisibleSessions, getSession, listSessions } from './chat.service.ts';
import { NodeRef, nodeType } from '../../platform/graphql/node.ts';

export const ChatSessionRef = builder.objectRef<IChatSession>('ChatSession');
const ChatSessionConnection = connectionType('ChatSession', ChatSessionRef);

nodeType('ChatSession', (ctx, ids) => findVisibleSessions(ctx.em, ctx.viewer().userId, ids));

ChatSessionRef.implement({
  description: 'A conversation in a project.',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.exposeID('id'),
    title: t.exposeString('title'),
    createdByUserId: t.exposeID('createdByUserId'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    lastEventSequence: t.exposeInt('eventSequence', {
      description:
        '`sequence` of the newest committed event of this session (0 when none). Load the messages, then subscribe to `sessionEvents` with `afterSequence` set to this value: nothing is missed in between.',
    }),
    project: t.field({ type: ProjectRef, resolve: related((loaders, session) => loaders.projectById.load(session.project.id)) }),
  }),
});

connectionField(ProjectRef, 'sessions', {
  connection: ChatSessionConnection,
  description: "The project's chat sessions, oldest first.",
  list: (project, args, ctx) => listSessions(ctx.em, project.id, args),
});

builder.queryField('chatSession', (t) =>
  t.field({
    type: ChatSessionRef,
    description: 'A session in a project the viewer is a member of; NOT_FOUND otherwise.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => getSession(ctx.em, ctx.viewer().userId, args.id),
  }),
);

const CreateChatSessionInput = builder.inputType('CreateChatSessionInput', {
  fields: (t) => ({
    projectId: t.id({ required: true }),
    title: t.string({ required: true, description: '1 to 200 characters.' }),
  }),
});

builder.mutationField('createChatSession', (t) =>
  t.field({
    type: ChatSessionRef,
    args: { input: t.arg({ type: CreateChatSessionInput, required: true }) },
    resolve: (_root, { input }, ctx) => createChatSession(ctx.em, ctx.viewer().userId, input),
  }),
);
