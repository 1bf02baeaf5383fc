import { SpanKind } from '@opentelemetry/api';
import type { DomainEvent, MessageCreatedEvent } from '../events/domain-event.ts';
import { AgentInboxMessageRef } from '../domain/agents/agent-credential.schema.ts';
import type { AgentActivityItem } from '../events/agent-activity.ts';
import { ChatEventItemRef, ChatEventRef } from '../domain/chat/chat-event.schema.ts';
import { builder } from '../platform/graphql/builder.ts';
import type { GraphQLContext } from '../platform/graphql/context.ts';
import { contextFrom, SEMCONV, tracer } from '../platform/observability/tracing.ts';
import { StreamEnd } from './event-stream.ts';

// The subscriptions: committed events of a session or a project, replayed after a position and
// then live (event-subscription.service.ts); the event types are the chat domain's.

const resumeArgs = builder.args((t) => ({
  after: t.id({ required: false, description: 'Replay every committed event after this eventId, then continue live.' }),
  afterSequence: t.int({ required: false, description: 'Or after this sequence number (0: from the beginning).' }),
}));

/**
 * Subscription items are events (or an agent's transient activity), or the error that ends the
 * stream (thrown here to reach the client). Each committed event delivered makes a span in the
 * trace of the request that wrote it.
 */
function deliver<T extends DomainEvent | AgentActivityItem>(field: string, item: T | StreamEnd, ctx: GraphQLContext): T {
  if (item instanceof StreamEnd) throw item.error;
  const span = tracer().startSpan(`deliver ${field}`, {
    kind: SpanKind.CONSUMER,
    attributes: {
      [SEMCONV.messagingOperationType]: 'process',
      [SEMCONV.messagingOperationName]: 'deliver',
      [SEMCONV.messagingDestinationName]: field,
      [SEMCONV.messagingMessageId]: item.eventId,
    },
  }, contextFrom('traceContext' in item ? item.traceContext : undefined));
  ctx.renew();
  span.end();
  return item;
}

builder.subscriptionFields((t) => ({
  sessionEvents: t.field({
    type: ChatEventItemRef,
    description:
      'Committed events of one chat session in `sequence` order, with no gaps or duplicates within the subscription. Without `after`/`afterSequence`: live events only.',
    args: {
      sessionId: t.arg.id({ required: true }),
      ...resumeArgs,
      agentActivity: t.arg.boolean({
        required: false,
        defaultValue: false,
        description:
          'Also deliver transient AgentReplyStarted / AgentReplyDelta items while an agent writes a reply. They are not committed, take no position and may be lost; the reply itself arrives as a MessageCreatedEvent (docs/agents.md).',
      }),
    },
    subscribe: (_root, args, ctx) => ctx.events.session(ctx.viewer(), args.sessionId, args),
    resolve: (item, _args, ctx) => deliver('sessionEvents', item as DomainEvent | AgentActivityItem | StreamEnd, ctx),
  }),
  agentInbox: t.field({
    type: AgentInboxMessageRef,
    description:
      'Agent credentials only: the committed user messages of its project addressed to the agent (the author has it active) and not answered yet, in commit order. Resume with `after` (the last eventId received) or `afterSequence` (a projectSequence) to miss nothing across reconnects; without either: live messages only (docs/agents.md#external-agent-runtimes).',
    args: { ...resumeArgs },
    subscribe: (_root, args, ctx) => ctx.events.agentInbox(ctx.agent(), args),
    resolve: (item, _args, ctx) => deliver('agentInbox', item as DomainEvent | StreamEnd, ctx) as MessageCreatedEvent,
  }),
  projectEvents: t.field({
    type: ChatEventRef,
    description:
      'Every committed event of a project in `projectSequence` (commit) order, with no gaps or duplicates within the subscription. Without `after`/`afterSequence`: live events only.',
    args: { projectId: t.arg.id({ required: true }), ...resumeArgs },
    subscribe: (_root, args, ctx) => ctx.events.project(ctx.viewer(), args.projectId, args),
    resolve: (item, _args, ctx) => deliver('projectEvents', item as DomainEvent | StreamEnd, ctx),
  }),
}));
