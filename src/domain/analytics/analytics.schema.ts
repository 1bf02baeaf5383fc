import { AgentRef } from '../agents/agent.schema.ts';
import { ChatSessionRef } from '../chat/chat-session.schema.ts';
import { ChatEventRef, EventTypeEnum } from '../chat/chat-event.schema.ts';
import { builder } from '../../platform/graphql/builder.ts';
import { connectionArgs, connectionType } from '../../platform/graphql/connection.ts';
import {
  DEFAULT_TOP_SESSIONS,
  getProjectAnalytics,
  listProjectEvents,
  listSessionEvents,
  MAX_ANALYTICS_SPAN_DAYS,
  MAX_SERIES_BUCKETS,
  MAX_TOP_SESSIONS,
  type EventTypeCount,
  type ProjectAnalytics,
} from './analytics.service.ts';

const ChatEventConnection = connectionType('ChatEvent', ChatEventRef);

const EventOrderEnum = builder.enumType('EventOrder', {
  values: {
    NEWEST_FIRST: { value: 'newest_first', description: 'By occurredAt, newest first (ties by eventId).' },
    OLDEST_FIRST: { value: 'oldest_first', description: 'By occurredAt, oldest first (ties by eventId).' },
  } as const,
});

const AnalyticsBucketEnum = builder.enumType('AnalyticsBucket', {
  values: {
    HOUR: { value: 'hour', description: 'UTC hours.' },
    DAY: { value: 'day', description: 'UTC days.' },
  } as const,
});

const ProjectEventsFilter = builder.inputType('ProjectEventsFilter', {
  description: 'Every field narrows the list; leave a field out to not filter by it.',
  fields: (t) => ({
    types: t.field({ type: [EventTypeEnum], required: false, description: 'Only events of these types (at least one).' }),
    sessionId: t.id({ required: false, description: 'Only events of this chat session.' }),
    userId: t.id({ required: false, description: 'Only events caused by this user.' }),
    from: t.field({ type: 'DateTime', required: false, description: 'Only events that occurred at or after this instant.' }),
    to: t.field({ type: 'DateTime', required: false, description: 'Only events that occurred before this instant (after `from`).' }),
  }),
});

/**
 * The history queries were named like the subscriptions, whose `after` is an eventId, not a
 * cursor. Their old names stay for one release as deprecated aliases of the same definition.
 */
const oldNameOf = (name: string) => ({
  description: `The old name of \`${name}\`, kept for one release.`,
  deprecationReason: `Use \`${name}\`: same arguments, results and cursors. (Renamed so it is not confused with the subscription of the old name, whose \`after\` is an eventId.)`,
});

builder.queryFields((t) => {
  // One definition per query, used under its name and, deprecated, under its old one.
  const projectEventHistory = (alias?: ReturnType<typeof oldNameOf>) =>
    t.field({
      type: ChatEventConnection,
      description:
        "The project's committed events (members only; NOT_FOUND otherwise). A walk (a first page and the pages continued " +
        'from its cursors) lists the events as they stood at its first page, so pages never shift, repeat or skip while ' +
        'events are written; start a new walk to see newer ones. Cursors only continue the query (project, filter, order) ' +
        'that made them.',
      ...alias,
      args: {
        projectId: t.arg.id({ required: true }),
        filter: t.arg({ type: ProjectEventsFilter, required: false }),
        order: t.arg({ type: EventOrderEnum, required: false, defaultValue: 'newest_first' }),
        ...connectionArgs,
      },
      // A filter naming a transient type (AGENT_REPLY_*) simply matches no stored event.
      resolve: (_root, args, ctx) => listProjectEvents(ctx.em, ctx.viewer().userId, args as Parameters<typeof listProjectEvents>[2]),
    });
  const sessionEventHistory = (alias?: ReturnType<typeof oldNameOf>) =>
    t.field({
      type: ChatEventConnection,
      description:
        "One chat session's events in sequence order (members only; NOT_FOUND otherwise). Sequence order is commit order, " +
        'so continuing from an `endCursor` later returns exactly the events committed since.',
      ...alias,
      args: {
        projectId: t.arg.id({ required: true }),
        sessionId: t.arg.id({ required: true }),
        ...connectionArgs,
      },
      resolve: (_root, args, ctx) => listSessionEvents(ctx.em, ctx.viewer().userId, args),
    });
  return {
    projectEventHistory: projectEventHistory(),
    sessionEventHistory: sessionEventHistory(),
    projectEvents: projectEventHistory(oldNameOf('projectEventHistory')),
    sessionEvents: sessionEventHistory(oldNameOf('sessionEventHistory')),
  };
});

const EventTypeCountRef = builder.objectRef<EventTypeCount>('EventTypeCount').implement({
  fields: (t) => ({
    type: t.field({ type: EventTypeEnum, resolve: (entry) => entry.type }),
    count: t.exposeInt('count'),
  }),
});

const SessionMessageCountRef = builder
  .objectRef<ProjectAnalytics['topSessions'][number]>('SessionMessageCount')
  .implement({
    fields: (t) => ({
      sessionId: t.exposeID('sessionId'),
      session: t.field({
        type: ChatSessionRef,
        nullable: true,
        resolve: (entry, _args, ctx) => ctx.loaders.sessionById.load(entry.sessionId),
      }),
      messages: t.exposeInt('messages', { description: 'Messages (from users and agents) in the session in the range.' }),
    }),
  });

const AgentSwitchCountRef = builder
  .objectRef<ProjectAnalytics['agentSwitches'][number]>('AgentSwitchCount')
  .implement({
    description: 'How often users switched from one agent to another in the range.',
    fields: (t) => ({
      fromAgentId: t.exposeID('fromAgentId', { nullable: true, description: "Null for a worker space's first agent." }),
      from: t.field({
        type: AgentRef,
        nullable: true,
        resolve: (entry, _args, ctx) => (entry.fromAgentId ? ctx.loaders.agentById.load(entry.fromAgentId) : null),
      }),
      toAgentId: t.exposeID('toAgentId'),
      to: t.field({ type: AgentRef, nullable: true, resolve: (entry, _args, ctx) => ctx.loaders.agentById.load(entry.toAgentId) }),
      switches: t.exposeInt('switches'),
    }),
  });

const TimeSeriesPointRef = builder.objectRef<ProjectAnalytics['timeSeries'][number]>('AnalyticsTimeSeriesPoint').implement({
  description: 'Events in one bucket. The first and last buckets count only the part inside [from, to).',
  fields: (t) => ({
    start: t.expose('start', { type: 'DateTime' }),
    total: t.exposeInt('total'),
    byType: t.field({ type: [EventTypeCountRef], resolve: (point) => point.byType }),
  }),
});

const ResponseTimeRef = builder.objectRef<ProjectAnalytics['responseTime']>('ResponseTimeStats').implement({
  description:
    'For every user message answered in the range: the time until the next agent message in its session, counted when ' +
    'that agent message occurs. Percentiles are nearest-rank, read from a histogram: within 2.5% of the exact sample.',
  fields: (t) => ({
    responses: t.exposeInt('responses', { description: 'User messages answered by an agent in the range.' }),
    medianMs: t.exposeFloat('medianMs', { nullable: true, description: 'Null when nothing was answered in the range.' }),
    p90Ms: t.exposeFloat('p90Ms', { nullable: true }),
  }),
});

const ProjectAnalyticsRef = builder.objectRef<ProjectAnalytics>('ProjectAnalytics').implement({
  description: 'Numbers over the events a projectEventHistory walk would list now, in [from, to). See docs/analytics.md.',
  fields: (t) => ({
    projectId: t.exposeID('projectId'),
    from: t.expose('from', { type: 'DateTime' }),
    to: t.expose('to', { type: 'DateTime' }),
    bucket: t.field({ type: AnalyticsBucketEnum, resolve: (analytics) => analytics.bucket }),
    totalEvents: t.exposeInt('totalEvents'),
    eventsByType: t.field({ type: [EventTypeCountRef], resolve: (analytics) => analytics.eventsByType }),
    activeUsers: t.exposeInt('activeUsers', {
      description: 'Distinct users who sent a message or switched agents (agents are not users).',
    }),
    activeSessions: t.exposeInt('activeSessions', { description: 'Sessions with at least one message.' }),
    topSessions: t.field({
      type: [SessionMessageCountRef],
      description: 'Sessions with the most messages, most first (ties by session id).',
      resolve: (analytics) => analytics.topSessions,
    }),
    agentSwitches: t.field({
      type: [AgentSwitchCountRef],
      description: 'Switch counts per (from, to) pair, most first.',
      resolve: (analytics) => analytics.agentSwitches,
    }),
    timeSeries: t.field({
      type: [TimeSeriesPointRef],
      description: 'One point per bucket from the bucket holding `from` up to `to`, empty buckets included.',
      resolve: (analytics) => analytics.timeSeries,
    }),
    responseTime: t.field({ type: ResponseTimeRef, resolve: (analytics) => analytics.responseTime }),
  }),
});

builder.queryField('projectAnalytics', (t) =>
  t.field({
    type: ProjectAnalyticsRef,
    description: `Aggregates over a project's events in [from, to) (members only; NOT_FOUND otherwise). At most ${MAX_ANALYTICS_SPAN_DAYS} days and ${MAX_SERIES_BUCKETS} buckets.`,
    args: {
      projectId: t.arg.id({ required: true }),
      from: t.arg({ type: 'DateTime', required: true }),
      to: t.arg({ type: 'DateTime', required: true }),
      bucket: t.arg({ type: AnalyticsBucketEnum, required: false, defaultValue: 'day' }),
      topSessions: t.arg.int({
        required: false,
        defaultValue: DEFAULT_TOP_SESSIONS,
        description: `How many sessions topSessions lists, 0 to ${MAX_TOP_SESSIONS}.`,
      }),
    },
    resolve: (_root, args, ctx) => getProjectAnalytics(ctx.em, ctx.viewer().userId, args),
  }),
);
