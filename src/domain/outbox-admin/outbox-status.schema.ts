import { EventTypeEnum } from '../chat/chat-event.schema.ts';
import { builder } from '../../platform/graphql/builder.ts';
import { getOutboxStatus, reprocessFailedEvents, type FailedEventInfo, type OutboxStatusReport } from './outbox-admin.service.ts';

const FailedEventRef = builder.objectRef<FailedEventInfo>('FailedEvent').implement({
  description: 'An event the publisher gave up on. Later events of its session wait behind it until it is reprocessed.',
  fields: (t) => ({
    eventId: t.exposeID('eventId'),
    type: t.field({ type: EventTypeEnum, resolve: (event) => event.type }),
    sequence: t.exposeInt('sequence'),
    sessionId: t.exposeID('sessionId', { nullable: true }),
    attempts: t.exposeInt('attempts'),
    lastError: t.exposeString('lastError', { nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

const OutboxStatusRef = builder.objectRef<OutboxStatusReport>('OutboxStatus').implement({
  description: "Delivery state of a project's events.",
  fields: (t) => ({
    projectId: t.exposeID('projectId'),
    pending: t.exposeInt('pending', { description: 'Committed events not yet published (including ones waiting for a retry).' }),
    failed: t.exposeInt('failed'),
    oldestPendingAt: t.expose('oldestPendingAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When the oldest pending (not failed) event was committed; null when none is pending.',
    }),
    failedEvents: t.field({
      type: [FailedEventRef],
      description: 'The oldest failed events (at most 100), with their last error.',
      resolve: (status) => status.failedEvents,
    }),
  }),
});

builder.queryField('outboxStatus', (t) =>
  t.field({
    type: OutboxStatusRef,
    description: 'Pending and failed event counts of a project the viewer is a member of.',
    args: { projectId: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => getOutboxStatus(ctx.em, ctx.viewer().userId, args.projectId),
  }),
);

const ReprocessFailedEventsPayload = builder.objectRef<{ eventIds: string[] }>('ReprocessFailedEventsPayload').implement({
  fields: (t) => ({
    eventIds: t.exposeIDList('eventIds', { description: 'The events put back to pending; they keep their eventId.' }),
    count: t.int({ resolve: (payload) => payload.eventIds.length }),
  }),
});

builder.mutationField('reprocessFailedEvents', (t) =>
  t.field({
    type: ReprocessFailedEventsPayload,
    description: "Owners only. Puts the project's failed events (all, or those listed) back to pending, keeping their eventId.",
    args: { projectId: t.arg.id({ required: true }), eventIds: t.arg.idList({ required: false }) },
    resolve: async (_root, args, ctx) => {
      const userId = ctx.viewer().userId;
      const rows = await reprocessFailedEvents(ctx.em, ctx.log, userId, { projectId: args.projectId, eventIds: args.eventIds ?? null });
      ctx.metrics.outbox.recordReprocessed(rows.length);
      return { eventIds: rows.map((row) => row.id) };
    },
  }),
);
