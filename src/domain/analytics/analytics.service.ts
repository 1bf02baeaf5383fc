import type { Em } from '../../platform/db/orm.ts';
import { cursorCodec, cursorKeys, findPage, queryScope, type Page, type PageRequest } from '../../platform/db/pagination.ts';
import { badInput, cursorExpired, notFound } from '../../platform/errors.ts';
import type { DomainEvent } from '../../events/domain-event.ts';
import { EVENT_TYPES, type EventType } from '../../events/domain-event.ts';
import { requireMembership } from '../projects/project.service.ts';
import { requireId, requireUserId } from '../../platform/validation.ts';
import {
  findProjectEventsPage,
  findSessionEventsPage,
  readProjectAnalytics,
  sessionBelongsToProject,
  type AnalyticsRow,
  type EventListFilter,
} from './analytics.repository.ts';
import { percentileMs } from './response-time.histogram.ts';
import { bucketStart, DAY_MS, HOUR_MS, splitRange } from './range-pieces.ts';

export const EVENT_ORDERS = ['newest_first', 'oldest_first'] as const;
export type EventOrder = (typeof EVENT_ORDERS)[number];

export const ANALYTICS_BUCKETS = ['hour', 'day'] as const;
export type AnalyticsBucket = (typeof ANALYTICS_BUCKETS)[number];

/** Longest range projectAnalytics answers: a year, leap day included. */
export const MAX_ANALYTICS_SPAN_DAYS = 366;
/** Most points in one time series (hourly buckets therefore cover at most ~41 days). */
export const MAX_SERIES_BUCKETS = 1_000;
export const DEFAULT_TOP_SESSIONS = 10;
export const MAX_TOP_SESSIONS = 100;

const BUCKET_HOURS: Record<AnalyticsBucket, number> = { hour: 1, day: 24 };

export interface ProjectEventsFilterInput {
  types?: EventType[] | null | undefined;
  sessionId?: string | null | undefined;
  userId?: string | null | undefined;
  from?: Date | null | undefined;
  to?: Date | null | undefined;
}

function requireRange(from: Date | null, to: Date | null, field: string): void {
  if (from && to && from.getTime() >= to.getTime()) throw badInput(field, `${field}: from must be before to`);
}

function parseEventFilter(projectId: string, input: ProjectEventsFilterInput | null | undefined): EventListFilter {
  const filter: EventListFilter = {
    projectId,
    types: null,
    sessionId: input?.sessionId ? requireId('filter.sessionId', input.sessionId) : null,
    userId: input?.userId != null ? requireUserId('filter.userId', input.userId) : null,
    from: input?.from ?? null,
    to: input?.to ?? null,
  };
  if (input?.types) {
    if (input.types.length === 0) throw badInput('filter.types', 'filter.types must name at least one event type (or be left out)');
    // Sorted and deduplicated: the same filter written two ways is the same query for its cursors.
    filter.types = EVENT_TYPES.filter((type) => input.types!.includes(type));
  }
  requireRange(filter.from, filter.to, 'filter');
  return filter;
}

/** projectEvents cursors: the exact `created_at` text and the event id, with the walk's horizon pinned. */
const projectEventsCursor = (scope: string) => cursorCodec([cursorKeys.exactInstant, cursorKeys.uuid], { scope, pinned: cursorKeys.transactionId });
/** sessionEvents cursors: the session sequence number. */
const sessionEventsCursor = (scope: string) => cursorCodec([cursorKeys.position], { scope });

/**
 * A project's events, newest or oldest first, filtered by type, session, user and time range.
 *
 * A walk (the first page and every page continued from its cursors) reads the project's events as
 * they were when the first page was read, minus any whose transaction had not finished: pages do
 * not shift or repeat while events are written, and none is skipped however transactions
 * interleave (docs/analytics.md). Events committed later appear in the next walk.
 */
export async function listProjectEvents(
  em: Em,
  viewerId: string,
  args: { projectId: string; filter?: ProjectEventsFilterInput | null; order?: EventOrder | null } & PageRequest,
): Promise<Page<DomainEvent>> {
  const projectId = requireId('projectId', args.projectId);
  const filter = parseEventFilter(projectId, args.filter);
  const order = args.order ?? 'newest_first';
  await requireMembership(em, viewerId, projectId);

  return findPage(
    args,
    {
      cursor: projectEventsCursor(queryScope('projectEvents', { ...filter, order })),
      fetch: async ({ from, backward, pinned, limit }) => {
        const { rows, horizon, expiredUntil } = await findProjectEventsPage(em, {
          ...filter,
          // Reading backward is reading the opposite order from the cursor.
          newestFirst: (order === 'newest_first') !== backward,
          after: from && { createdAtKey: from[0], id: from[1] },
          horizon: pinned,
          limit,
        });
        // A cursor at or before what retention removed would continue past a gap.
        if (from && expiredUntil && new Date(from[0]) <= expiredUntil) throw cursorExpired(backward ? 'before' : 'after');
        return { rows, pinned: horizon };
      },
      keyOf: (row): [string, string] => [row.createdAtKey, row.event.eventId],
    },
    (row) => row.event,
  );
}

/**
 * One session's events in sequence order. Continuing from the last page's `endCursor` later
 * returns exactly the events committed since: sequence order is commit order within a session.
 */
export async function listSessionEvents(
  em: Em,
  viewerId: string,
  args: { projectId: string; sessionId: string } & PageRequest,
): Promise<Page<DomainEvent>> {
  const projectId = requireId('projectId', args.projectId);
  const sessionId = requireId('sessionId', args.sessionId);
  await requireMembership(em, viewerId, projectId);
  // A session of another project is, from here, a session that does not exist.
  if (!(await sessionBelongsToProject(em, sessionId, projectId))) throw notFound('ChatSession', sessionId);

  return findPage(
    args,
    {
      cursor: sessionEventsCursor(queryScope('sessionEvents', { projectId, sessionId })),
      fetch: async ({ from, backward, limit }) => {
        const { rows, expiredThrough } = await findSessionEventsPage(em, { projectId, sessionId, from: from?.[0] ?? null, backward, limit });
        if (from && expiredThrough !== null && from[0] <= expiredThrough) throw cursorExpired(backward ? 'before' : 'after');
        return rows;
      },
      keyOf: (row): [number] => [row.event.sequence],
    },
    (row) => row.event,
  );
}

export interface EventTypeCount {
  type: EventType;
  count: number;
}

export interface ProjectAnalytics {
  projectId: string;
  from: Date;
  to: Date;
  bucket: AnalyticsBucket;
  totalEvents: number;
  eventsByType: EventTypeCount[];
  activeUsers: number;
  activeSessions: number;
  topSessions: { sessionId: string; messages: number }[];
  agentSwitches: { fromAgentId: string | null; toAgentId: string; switches: number }[];
  timeSeries: { start: Date; total: number; byType: EventTypeCount[] }[];
  responseTime: { responses: number; medianMs: number | null; p90Ms: number | null };
}

export interface ProjectAnalyticsArgs {
  projectId: string;
  from: Date;
  to: Date;
  bucket?: AnalyticsBucket | null;
  topSessions?: number | null;
}

function parseAnalyticsArgs(args: ProjectAnalyticsArgs) {
  const projectId = requireId('projectId', args.projectId);
  const { from, to } = args;
  if (from.getTime() >= to.getTime()) throw badInput('from', 'from must be before to');
  if (to.getTime() - from.getTime() > MAX_ANALYTICS_SPAN_DAYS * DAY_MS) {
    throw badInput('to', `from and to may be at most ${MAX_ANALYTICS_SPAN_DAYS} days apart`);
  }
  const bucket = args.bucket ?? 'day';
  const seriesHours = BUCKET_HOURS[bucket];
  const buckets = Math.ceil((to.getTime() - bucketStart(from, seriesHours).getTime()) / (seriesHours * HOUR_MS));
  if (buckets > MAX_SERIES_BUCKETS) {
    throw badInput('bucket', `the range spans ${buckets} ${bucket} buckets; at most ${MAX_SERIES_BUCKETS} are allowed (use a wider bucket or a shorter range)`);
  }
  const topSessions = args.topSessions ?? DEFAULT_TOP_SESSIONS;
  if (!Number.isInteger(topSessions) || topSessions < 0 || topSessions > MAX_TOP_SESSIONS) {
    throw badInput('topSessions', `topSessions must be between 0 and ${MAX_TOP_SESSIONS}`);
  }
  return { projectId, from, to, bucket, seriesHours, topSessions };
}

/**
 * Aggregates over the project's events in [from, to): the same set of events projectEventHistory would
 * list at this moment (docs/analytics.md defines each number). Whole hours and days come from the
 * running totals, the rest straight from events, in one statement and so one snapshot.
 */
export async function getProjectAnalytics(em: Em, viewerId: string, args: ProjectAnalyticsArgs): Promise<ProjectAnalytics> {
  const { projectId, from, to, bucket, seriesHours, topSessions } = parseAnalyticsArgs(args);
  await requireMembership(em, viewerId, projectId);

  const pieces = splitRange(from, to, true);
  const rows = await readProjectAnalytics(em, {
    projectId,
    from,
    to,
    pieces,
    // An hourly series needs every hour apart; both splits leave the same partial hours to raw events.
    seriesPieces: seriesHours === 24 ? pieces : splitRange(from, to, false),
    seriesHours,
    topSessions,
  });
  const of = (metric: AnalyticsRow['metric']) => rows.filter((row) => row.metric === metric);
  const distinct = (metric: string) => of('distinct').find((row) => row.key === metric)?.value ?? 0;

  const seriesCounts = new Map<number, Map<string, number>>();
  for (const row of of('type')) {
    const byType = seriesCounts.get(row.seriesStart!) ?? new Map<string, number>();
    byType.set(row.key, row.value);
    seriesCounts.set(row.seriesStart!, byType);
  }
  const timeSeries: ProjectAnalytics['timeSeries'] = [];
  for (let start = bucketStart(from, seriesHours).getTime(); start < to.getTime(); start += seriesHours * HOUR_MS) {
    const byType = EVENT_TYPES.map((type) => ({ type, count: seriesCounts.get(start)?.get(type) ?? 0 }));
    timeSeries.push({ start: new Date(start), total: byType.reduce((sum, entry) => sum + entry.count, 0), byType });
  }
  const eventsByType = EVENT_TYPES.map((type) => ({
    type,
    count: of('type').filter((row) => row.key === type).reduce((sum, row) => sum + row.value, 0),
  }));
  const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const sessions = of('session')
    .sort((a, b) => b.value - a.value || byCodePoint(a.key, b.key))
    .map((row) => ({ sessionId: row.key, messages: row.value }));
  const agentSwitches = of('switch')
    .map((row) => ({ fromAgentId: row.key || null, toAgentId: row.subkey, switches: row.value }))
    .sort((a, b) => b.switches - a.switches || byCodePoint(a.fromAgentId ?? '', b.fromAgentId ?? '') || byCodePoint(a.toAgentId, b.toAgentId));
  const histogram = new Map(of('response').map((row) => [Number(row.key), row.value]));

  return {
    projectId,
    from,
    to,
    bucket,
    totalEvents: eventsByType.reduce((total, entry) => total + entry.count, 0),
    eventsByType,
    activeUsers: distinct('user'),
    activeSessions: distinct('session'),
    topSessions: sessions,
    agentSwitches,
    timeSeries,
    responseTime: {
      responses: [...histogram.values()].reduce((total, count) => total + count, 0),
      medianMs: percentileMs(histogram, 0.5),
      p90Ms: percentileMs(histogram, 0.9),
    },
  };
}
