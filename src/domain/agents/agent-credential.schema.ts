import type { MessageCreatedEvent } from '../../events/domain-event.ts';
import { builder } from '../../platform/graphql/builder.ts';
import type { SendMessageResult } from '../chat/chat.service.ts';
import type { IAgentCredential } from './agent-credential.entity.ts';
import { agentReplyDelta, createAgentCredential, listAgentCredentials, postAgentReply, revokeAgentCredential } from './agent-credential.service.ts';
import { AgentRef } from './agent.schema.ts';

// Agent credentials (for owners) and the fields external agent runtimes call with one
// (docs/agents.md#external-agent-runtimes). The inbox subscription is in event-subscriptions.schema.ts.

export const AgentCredentialRef = builder.objectRef<IAgentCredential>('AgentCredential').implement({
  description: 'A bearer credential that authenticates as one agent of one project. Its secret is shown only when it is created.',
  fields: (t) => ({
    id: t.exposeID('id'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    createdByUserId: t.exposeID('createdByUserId'),
    lastUsedAt: t.expose('lastUsedAt', { type: 'DateTime', nullable: true, description: 'Updated at most once a minute.' }),
    revokedAt: t.expose('revokedAt', { type: 'DateTime', nullable: true, description: 'Set: the credential no longer authenticates.' }),
  }),
});

builder.objectField(AgentRef, 'credentials', (t) =>
  t.field({
    type: [AgentCredentialRef],
    description: 'Owners only (FORBIDDEN for other members): the agent\'s credentials, newest first, without their secrets.',
    resolve: (agent, _args, ctx) => listAgentCredentials(ctx.em, ctx.viewer().userId, agent),
  }),
);

const CreateAgentCredentialPayload = builder.objectRef<{ credential: IAgentCredential; secret: string }>('CreateAgentCredentialPayload').implement({
  fields: (t) => ({
    credential: t.field({ type: AgentCredentialRef, resolve: (result) => result.credential }),
    secret: t.exposeString('secret', {
      description: 'The bearer token for the external runtime (`Authorization: Bearer <secret>`). Shown only here: the server keeps its hash alone.',
    }),
  }),
});

builder.mutationField('createAgentCredential', (t) =>
  t.field({
    type: CreateAgentCredentialPayload,
    description: 'Owners only. A credential an external runtime uses to answer as this agent (docs/agents.md#external-agent-runtimes).',
    args: { input: t.arg({ type: builder.inputType('CreateAgentCredentialInput', { fields: (f) => ({ agentId: f.id({ required: true }) }) }), required: true }) },
    resolve: (_root, { input }, ctx) => createAgentCredential(ctx.em, ctx.viewer().userId, input),
  }),
);

builder.mutationField('revokeAgentCredential', (t) =>
  t.field({
    type: AgentCredentialRef,
    description: 'Owners only. The credential stops authenticating at once; open inbox subscriptions end within SUBSCRIPTION_AUTH_RECHECK_MS. Revoking twice keeps the first time.',
    args: { input: t.arg({ type: builder.inputType('RevokeAgentCredentialInput', { fields: (f) => ({ credentialId: f.id({ required: true }) }) }), required: true }) },
    resolve: (_root, { input }, ctx) => revokeAgentCredential(ctx.em, ctx.viewer().userId, input),
  }),
);

/** A user message addressed to the agent, as `agentInbox` delivers it (carried by its event). */
export const AgentInboxMessageRef = builder.objectRef<MessageCreatedEvent>('AgentInboxMessage').implement({
  description: 'A committed user message addressed to the agent, not answered yet. Answer it with postAgentReply(replyTo: messageId).',
  fields: (t) => ({
    eventId: t.exposeID('eventId', { description: 'The message\'s event: resume `agentInbox(after:)` with the last one received. Deduplicate by it.' }),
    projectSequence: t.exposeInt('projectSequence'),
    messageId: t.id({ resolve: (event) => event.payload.messageId }),
    sessionId: t.id({ resolve: (event) => event.payload.sessionId }),
    authorUserId: t.id({ resolve: (event) => event.payload.authorUserId }),
    body: t.string({ resolve: (event) => event.payload.body }),
    createdAt: t.field({ type: 'DateTime', resolve: (event) => new Date(event.payload.createdAt) }),
  }),
});

const PostAgentReplyPayload = builder.objectRef<SendMessageResult>('PostAgentReplyPayload').implement({
  fields: (t) => ({
    messageId: t.id({ resolve: (result) => result.message.id }),
    eventId: t.id({ description: 'Id of the reply\'s `message_created` event, as session subscribers receive it.', resolve: (result) => result.event.id }),
    sequence: t.int({ description: 'The event\'s sequence number in its session.', resolve: (result) => result.event.sequence }),
  }),
});

builder.mutationField('postAgentReply', (t) =>
  t.field({
    type: PostAgentReplyPayload,
    description:
      'Agent credentials only. Commits the agent\'s reply to a user message of its project with its `message_created` event. A message has one answer: a second one is CONFLICT.',
    args: {
      input: t.arg({
        type: builder.inputType('PostAgentReplyInput', {
          fields: (f) => ({
            replyTo: f.id({ required: true, description: 'The user message answered (AgentInboxMessage.messageId).' }),
            body: f.string({ required: true, description: '1 to 8000 characters.' }),
          }),
        }),
        required: true,
      }),
    },
    resolve: (_root, { input }, ctx) => postAgentReply(ctx.em, ctx.agent(), input),
  }),
);

const PostAgentReplyDeltaPayload = builder.objectRef<{ replyTo: string; index: number }>('PostAgentReplyDeltaPayload').implement({
  fields: (t) => ({ replyTo: t.exposeID('replyTo'), index: t.exposeInt('index') }),
});

builder.mutationField('postAgentReplyDelta', (t) =>
  t.field({
    type: PostAgentReplyDeltaPayload,
    description:
      'Agent credentials only, optional. Streams a piece of a reply being written to `sessionEvents(agentActivity: true)` subscribers as a transient AgentReplyDelta (index 0 also sends AgentReplyStarted). Never stored; may be lost. CONFLICT once the message is answered.',
    args: {
      input: t.arg({
        type: builder.inputType('PostAgentReplyDeltaInput', {
          fields: (f) => ({
            replyTo: f.id({ required: true }),
            index: f.int({ required: true, description: '0, 1, 2, ... within one attempt at the reply.' }),
            text: f.string({ required: true, description: 'The next piece of the reply, 1 to 8000 characters.' }),
          }),
        }),
        required: true,
      }),
    },
    resolve: async (_root, { input }, ctx) => {
      const activity = await agentReplyDelta(ctx.em, ctx.agent(), input);
      for (const item of activity) ctx.publishActivity(item);
      return { replyTo: input.replyTo.toLowerCase(), index: input.index };
    },
  }),
);
