import { ChatSessionRef } from './chat-session.schema.ts';
import { MessageRef } from './message.schema.ts';
import { builder } from '../../platform/graphql/builder.ts';
import { related } from '../loaders.ts';
import { ProjectRef } from '../projects/project.schema.ts';
import { messageViewOfEvent } from './message.view.ts';
import type { AgentSwitchedEvent, DomainEvent, MessageCreatedEvent } from '../../events/domain-event.ts';

export const EventTypeEnum = builder.enumType('EventType', {
  values: {
    MESSAGE_CREATED: { value: 'message_created' },
    AGENT_SWITCHED: { value: 'agent_switched' },
  } as const,
});

/** Reached only if a kind is added to DomainEvent without a GraphQL type: the compiler flags it first. */
function unknownEventType(event: never): never {
  throw new Error(`no GraphQL type for event type ${(event as DomainEvent).type}`);
}

/**
 * Shared by subscriptions (live and replayed events) and the analytics queries. Deliveries are
 * at-least-once: deduplicate by `eventId`, order by `sequence` within a session.
 */
export const ChatEventRef = builder.interfaceRef<DomainEvent>('ChatEvent').implement({
  description: 'A committed domain event. `eventId` is unique and stable across redeliveries.',
  resolveType: (event) => {
    switch (event.type) {
      case 'message_created':
        return 'MessageCreatedEvent';
      case 'agent_switched':
        return 'AgentSwitchedEvent';
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
