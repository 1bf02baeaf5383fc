import { builder } from '../../platform/graphql/builder.ts';
import { connectionField, connectionType } from '../../platform/graphql/connection.ts';
import { membershipKey, related } from '../loaders.ts';
import { ProjectMemberRef } from '../projects/project.schema.ts';
import { ChatSessionRef } from './chat-session.schema.ts';
import { findVisibleMessages, listMessages, MAX_MESSAGE_BODY_LENGTH, sendMessage, type SendMessageResult } from './chat.service.ts';
import { NodeRef, nodeType } from '../../platform/graphql/node.ts';
import type { MessageView } from './message.view.ts';

export const MessageRoleEnum = builder.enumType('MessageRole', {
  values: {
    USER: { value: 'user' },
    AGENT: { value: 'agent' },
    SYSTEM: { value: 'system' },
  } as const,
});

export const MessageRef = builder.objectRef<MessageView>('Message');
const MessageConnection = connectionType('Message', MessageRef);

nodeType('Message', (ctx, ids) => findVisibleMessages(ctx.em, ctx.viewer().userId, ids));

MessageRef.implement({
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.exposeID('id'),
    body: t.exposeString('body'),
    role: t.field({ type: MessageRoleEnum, resolve: (message) => message.role }),
    authorUserId: t.exposeID('authorUserId'),
    replyToId: t.exposeID('replyToId', {
      nullable: true,
      description: 'On an agent reply (or a system notice that the agent could not answer): the user message it answers. A message gets at most one.',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    session: t.field({ type: ChatSessionRef, resolve: related((loaders, message) => loaders.sessionById.load(message.sessionId)) }),
    authorMembership: t.field({
      type: ProjectMemberRef,
      nullable: true,
      description: "The author's membership of the project; null once they have left it.",
      resolve: (message, _args, ctx) =>
        ctx.loaders.membership.load(membershipKey(message.projectId, message.authorUserId)),
    }),
  }),
});

connectionField(ChatSessionRef, 'messages', {
  connection: MessageConnection,
  description: 'Messages in the order they were sent, oldest first.',
  list: (session, args, ctx) => listMessages(ctx.em, session.id, args),
});

const SendMessageInput = builder.inputType('SendMessageInput', {
  fields: (t) => ({
    sessionId: t.id({ required: true }),
    body: t.string({ required: true, description: `1 to ${MAX_MESSAGE_BODY_LENGTH} characters, not blank.` }),
  }),
});

const SendMessagePayload = builder.objectRef<SendMessageResult>('SendMessagePayload').implement({
  fields: (t) => ({
    message: t.field({ type: MessageRef, resolve: (result) => result.message }),
    eventId: t.id({
      description: 'Id of the `message_created` event: the same `eventId` subscribers receive.',
      resolve: (result) => result.event.id,
    }),
    sequence: t.int({ description: "The event's sequence number in its session.", resolve: (r) => r.event.sequence }),
  }),
});

builder.mutationField('sendMessage', (t) =>
  t.field({
    type: SendMessagePayload,
    description: 'Stores a message and its `message_created` event in one transaction.',
    args: { input: t.arg({ type: SendMessageInput, required: true }) },
    resolve: (_root, { input }, ctx) => sendMessage(ctx.em, ctx.viewer().userId, input),
  }),
);
