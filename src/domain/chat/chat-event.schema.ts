import { ChatSessionRef } from './chat-session.schema.ts';
import { MessageRef } from './message.schema.ts';
import type { InterfaceRef } from '@pothos/core';
import { builder } from '../../platform/graphql/builder.ts';
import { related } from '../loaders.ts';
import { ProjectRef } from '../projects/project.schema.ts';
import { messageViewOfEvent } from './message.view.ts';
import type { AgentSwitchedEvent, DomainEvent, MessageCreatedEvent } from '../../events/domain-event.ts';
import type { AgentActivityItem } from '../../events/agent-activity.ts';

/** What a ChatEvent field may carry: a committed event, or (sessionEvents with agentActivity) transient agent activity. */
type ChatEventItem = DomainEvent | AgentActivityItem;

export const EventTypeEnum = builder.enumType('EventType', {
  values: {
    MESSAGE_CREATED: { value: 'message_created' },
    AGENT_SWITCHED: { value: 'agent_switched' },
    AGENT_REPLY_STARTED: { value: 'agent_reply_started', description: 'Transient, not committed: an agent started writing a reply (sessionEvents with agentActivity only).' },
    AGENT_REPLY_DELTA: { value: 'agent_reply_delta', description: 'Transient, not committed: the next piece of a reply being written (sessionEvents with agentActivity only).' },
  } as const,
});

/** Reached only if a kind is added to DomainEvent without a GraphQL type: the compiler flags it first. */
function unknownEventType(event: never): never {
  throw new Error(`no GraphQL type for event type ${(event as ChatEventItem).type}`);
}

/**
 * Shared by subscriptions (live and replayed events) and the analytics queries. Deliveries are
 * at-least-once: deduplicate by `eventId`, order by `sequence` within a session.
 */
export const ChatEventItemRef = builder.interfaceRef<ChatEventItem>('ChatEvent').implement({
  description:
    'A committed domain event. `eventId` is unique and stable across redeliveries. Only `sessionEvents(agentActivity: true)` also delivers transient `AgentReplyStarted` / `AgentReplyDelta` items, which are not committed and take no position (docs/agents.md).',
  resolveType: (event) => {
    switch (event.type) {
      case 'message_created':
        return 'MessageCreatedEvent';
      case 'agent_switched':
        return 'AgentSwitchedEvent';
      case 'agent_reply_started':
        return 'AgentReplyStarted';
      case 'agent_reply_delta':
        return 'AgentReplyDelta';
      default:
        return unknownEventType(event);
    }
  },
  fields: (t) => ({
    eventId: t.exposeID('eventId', { description: 'The outbox id; the same on every (re)delivery. Deduplicate by it.' }),
    type: t.field({ type: EventTypeEnum, resolve: (event) => event.type }),
    sequence: t.exposeInt('sequence', {
      description: 'Position in its aggregate (the chat session, or the worker space for agent switches): 1, 2, 3, ... with no gaps.',
    }),
    projectSequence: t.exposeInt('projectSequence', {
      description: 'Position in the project: 1, 2, 3, ... with no gaps, in commit order. `projectEvents` delivers in this order.',
    }),
    occurredAt: t.field({ type: 'DateTime', resolve: (event) => new Date(event.occurredAt) }),
    projectId: t.exposeID('projectId'),
    sessionId: t.exposeID('sessionId', { nullable: true }),
    userId: t.exposeID('userId', { description: 'The user whose action caused the event.' }),
    project: t.field({ type: ProjectRef, resolve: related((loaders, event) => loaders.projectById.load(event.projectId)) }),
    session: t.field({
      type: ChatSessionRef,
      nullable: true,
      resolve: (event, _args, ctx) => (event.sessionId ? ctx.loaders.sessionById.load(event.sessionId) : null),
    }),
  }),
});

/**
 * The same GraphQL interface, typed for fields that only ever return committed events (histories,
 * projectEvents): the interface's fields accept both, so narrowing what is returned is safe.
 */
export const ChatEventRef = ChatEventItemRef as unknown as InterfaceRef<typeof builder.$inferSchemaTypes, DomainEvent>;

builder.objectRef<MessageCreatedEvent>('MessageCreatedEvent').implement({
  interfaces: [ChatEventRef],
  isTypeOf: (event) => (event as DomainEvent).type === 'message_created',
  fields: (t) => ({
    message: t.field({ type: MessageRef, description: 'The message as it was committed.', resolve: messageViewOfEvent }),
  }),
});

const AgentRefSnapshot = builder.objectRef<{ id: string; name: string }>('AgentSnapshot').implement({
  description: 'An agent as it was named when the event happened.',
  fields: (t) => ({ id: t.exposeID('id'), name: t.exposeString('name') }),
});

builder.objectRef<AgentSwitchedEvent>('AgentSwitchedEvent').implement({
  interfaces: [ChatEventRef],
  isTypeOf: (event) => (event as DomainEvent).type === 'agent_switched',
  fields: (t) => ({
    workerSpaceId: t.id({ resolve: (event) => event.payload.workerSpaceId }),
    from: t.field({
      type: AgentRefSnapshot,
      nullable: true,
      description: 'The agent that was active before; null for the first switch.',
      resolve: ({ payload }) => (payload.fromAgentId ? { id: payload.fromAgentId, name: payload.fromAgentName ?? '' } : null),
    }),
    to: t.field({
      type: AgentRefSnapshot,
      resolve: ({ payload }) => ({ id: payload.toAgentId, name: payload.toAgentName }),
    }),
  }),
});

const activityFields = (t: Parameters<Parameters<ReturnType<typeof builder.objectRef<AgentActivityItem>>['implement']>[0]['fields'] & {}>[0]) => ({
  replyTo: t.id({ description: 'The user message being answered; the committed reply has `message.replyToId` equal to it.', resolve: (item) => item.activity.replyTo }),
  agentId: t.id({ resolve: (item) => item.activity.agentId }),
});

builder.objectRef<AgentActivityItem>('AgentReplyStarted').implement({
  description:
    'Transient: an agent started writing a reply to `replyTo`. Not stored; `sequence`/`projectSequence` are those of the last committed event delivered before it (0 before any), never a position of its own.',
  interfaces: [ChatEventItemRef],
  isTypeOf: (item) => (item as ChatEventItem).type === 'agent_reply_started',
  fields: (t) => activityFields(t),
});

builder.objectRef<AgentActivityItem>('AgentReplyDelta').implement({
  description:
    'Transient: the next piece of the reply to `replyTo`. Append pieces in `index` order; drop them once the committed message with `replyToId` = `replyTo` arrives (it holds the whole reply). A retried reply starts again at index 0. Not stored, may be lost.',
  interfaces: [ChatEventItemRef],
  isTypeOf: (item) => (item as ChatEventItem).type === 'agent_reply_delta',
  fields: (t) => ({
    ...activityFields(t),
    index: t.int({ resolve: (item) => (item.activity.kind === 'agent_reply_delta' ? item.activity.index : 0) }),
    text: t.string({ resolve: (item) => (item.activity.kind === 'agent_reply_delta' ? item.activity.text : '') }),
  }),
});
