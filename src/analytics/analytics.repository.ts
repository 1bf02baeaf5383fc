import { sql, type RawBuilder } from 'kysely';
import type { Em } from '../db/orm.ts';
import type { ChatEvent } from '../events/chat-event.ts';
import type { EventType } from '../outbox/outbox-event.entity.ts';
import { RESPONSE_BIN_GROWTH } from './response-time.histogram.ts';
import type { BucketRange, TimeRange } from './rollup-levels.ts';

/**
 * Every SQL statement analytics run, in one place. They read `event_outbox` as the event log:
 * each event is one row with a unique id whatever the publisher does to its status, so counting
 * rows counts each event once however often it is retried, republished or reprocessed.
 *
 * "Horizon" below is `pg_snapshot_xmin(pg_current_snapshot())`: every transaction with a lower id
 * has finished. Events written by those transactions can no longer appear or disappear, so a
 * read bounded by the horizon is a fixed set, whatever commits later and in whatever order.
 */

export type Metric = 'type' | 'user' | 'session' | 'switch' | 'response';

/** A ChatEvent plus its exact sort key (PostgreSQL keeps microseconds; a JS Date does not). */
export interface EventPageRow extends ChatEvent {
  createdAtKey: string;
}

export interface EventListFilter {
  projectId: string;
  types: EventType[] | null;
  sessionId: string | null;
  userId: string | null;
  from: Date | null;
  to: Date | null;
}

export interface EventPageQuery extends EventListFilter {
  newestFirst: boolean;
  after: { createdAtKey: string; id: string } | null;
  /** The horizon pinned by the walk's first page, or null to take the current one. */
  horizon: string | null;
  limit: number;
}

const CURRENT_HORIZON = sql`pg_snapshot_xmin(pg_current_snapshot())`;

const EVENT_COLUMNS = sql`
  e.id, e.event_type, e.aggregate_type, e.aggregate_id, e.sequence, e.project_id, e.session_id,
  e.user_id, e.payload,
  to_char(e.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as occurred_at,
  to_char(e.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created_at_key`;

interface EventRow {
  id: string;
  event_type: ChatEvent['type'];
  aggregate_type: ChatEvent['aggregateType'];
  aggregate_id: string;
  sequence: number;
  project_id: string;
  session_id: string | null;
  user_id: string;
  payload: Record<string, unknown>;
  occurred_at: string;
  created_at_key: string;
}

function toEventPageRow(row: EventRow): EventPageRow {
  return {
    eventId: row.id,
    type: row.event_type,
    aggregateType: row.aggregate_type,
    aggregateId: row.aggregate_id,
    sequence: row.sequence,
    projectId: row.project_id,
    sessionId: row.session_id,
    userId: row.user_id,
    occurredAt: row.occurred_at,
    payload: row.payload,
    createdAtKey: row.created_at_key,
  };
}

/**
 * One page of a project's events in (occurred at, id) order, limited to events whose transaction
 * is below the horizon. Every page of a walk uses the horizon of its first page, so the walk reads
 * one fixed set of events: nothing that commits meanwhile (early or late, in any order) can slip
 * in behind the cursor or shift a page boundary.
 */
export async function findProjectEventsPage(em: Em, query: EventPageQuery): Promise<{ rows: EventPageRow[]; horizon: string | null }> {
  const direction = query.newestFirst ? sql.raw('desc') : sql.raw('asc');
  const beyondCursor = query.after
    ? query.newestFirst
      ? sql`and (e.created_at, e.id) < (${query.after.createdAtKey}::timestamptz, ${query.after.id}::uuid)`
      : sql`and (e.created_at, e.id) > (${query.after.createdAtKey}::timestamptz, ${query.after.id}::uuid)`
    : sql``;
  // A pinned horizon can only be lower than the current one; least() keeps a forged one harmless.
  const horizon = query.horizon ? sql`least(${query.horizon}::xid8, ${CURRENT_HORIZON})` : CURRENT_HORIZON;
  const { rows } = await sql<EventRow & { horizon: string }>`
    with walk as (select ${horizon} as horizon)
    select ${EVENT_COLUMNS}, walk.horizon::text as horizon
    from walk, event_outbox e
    where e.project_id = ${query.projectId}
      and e.transaction_id < walk.horizon
      ${query.types ? sql`and e.event_type = any(${query.types}::text[])` : sql``}
      ${query.sessionId ? sql`and e.session_id = ${query.sessionId}::uuid and e.aggregate_id = ${query.sessionId}::uuid` : sql``}
      ${query.userId ? sql`and e.user_id = ${query.userId}` : sql``}
      ${query.from ? sql`and e.created_at >= ${query.from}` : sql``}
      ${query.to ? sql`and e.created_at < ${query.to}` : sql``}
      ${beyondCursor}
    order by e.created_at ${direction}, e.id ${direction}
    limit ${query.limit + 1}`.execute(em.getKysely());
  // An empty page has no cursor to pin the horizon in; the next first page takes a new one.
  return { rows: rows.map(toEventPageRow), horizon: rows[0]?.horizon ?? null };
}

/**
 * One page of a session's events in sequence order. Sequence numbers are handed out under the
 * session's row lock, so they follow commit order: when event n is visible, 1..n-1 are too, and a
 * cursor on the sequence can never skip an event that commits late. No horizon is needed.
 */
export async function findSessionEventsPage(
  em: Em,
  query: { projectId: string; sessionId: string; afterSequence: number; limit: number },
): Promise<EventPageRow[]> {
  const { rows } = await sql<EventRow>`
    select ${EVENT_COLUMNS}
    from event_outbox e
    where e.aggregate_id = ${query.sessionId}::uuid
      and e.aggregate_type = 'chat_session'
      and e.project_id = ${query.projectId}
      and e.sequence > ${query.afterSequence}
    order by e.sequence
    limit ${query.limit + 1}`.execute(em.getKysely());
  return rows.map(toEventPageRow);
}

export async function sessionBelongsToProject(em: Em, sessionId: string, projectId: string): Promise<boolean> {
  const { rows } = await sql`select 1 from chat_session where id = ${sessionId}::uuid and project_id = ${projectId}::uuid`.execute(
    em.getKysely(),
  );
  return rows.length > 0;
}

// ---------------------------------------------------------------------------------------------
// Metrics: how one event is counted. The rollup worker and the live reads share these
// definitions, so a rolled-up count and a count read from raw events cannot disagree.

/** The columns the metric definitions need, from an `event_outbox e`. */
const EVENT_FACTS = sql`
  e.project_id, e.event_type, e.user_id, e.session_id, e.aggregate_id, e.sequence, e.created_at,
  e.payload->>'role' as role, e.payload->>'fromAgentId' as from_agent_id, e.payload->>'toAgentId' as to_agent_id`;

/**
 * `events` (rows of EVENT_FACTS) and `cells`: one row per thing an event counts towards, at the
 * time it is counted.
 * - type: every event, keyed by its type.
 * - user: events caused by a user (not messages written by an agent), keyed by user id.
 * - session: messages, keyed by session id.
 * - switch: agent switches, keyed by from-agent id ('' for the first) and to-agent id.
 * - response: for each agent message, one sample per user message of the same session since the
 *   previous agent message (each user message's gap to the next agent message), counted at the
 *   agent message's time and keyed by histogram bin. Earlier messages are looked up in the whole
 *   table, not just in `events`: a session's sequence follows commit order, so they are there.
 */
function metricCells(events: RawBuilder<unknown>) {
  return sql`
    events as materialized (${events}),
    cells (project_id, metric, key, subkey, at) as (
      select project_id, 'type', event_type, '', created_at from events
      union all
      select project_id, 'user', user_id, '', created_at from events where role is distinct from 'agent'
      union all
      select project_id, 'session', session_id::text, '', created_at from events where event_type = 'message_created'
      union all
      select project_id, 'switch', coalesce(from_agent_id, ''), to_agent_id, created_at from events where event_type = 'agent_switched'
      union all
      select reply.project_id, 'response', gap.bin::text, '', reply.created_at
      from events reply
      left join lateral (
        select previous.sequence from event_outbox previous
        where previous.aggregate_id = reply.aggregate_id and previous.sequence < reply.sequence
          and previous.event_type = 'message_created' and previous.payload->>'role' = 'agent'
        order by previous.sequence desc
        limit 1
      ) previous_reply on true
      join event_outbox asked
        on asked.aggregate_id = reply.aggregate_id
       and asked.sequence > coalesce(previous_reply.sequence, 0) and asked.sequence < reply.sequence
       and asked.event_type = 'message_created' and asked.payload->>'role' = 'user'
      cross join lateral (
        select greatest(0, extract(epoch from reply.created_at - asked.created_at) * 1000) as ms
      ) waited
      cross join lateral (
        select case when waited.ms < 1 then 0 else 1 + floor(ln(waited.ms) / ln(${RESPONSE_BIN_GROWTH}::numeric))::int end as bin
      ) gap
      where reply.event_type = 'message_created' and reply.role = 'agent'
    )`;
}

// ---------------------------------------------------------------------------------------------
// projectAnalytics: one statement, so the horizon, the watermark, the rollups and the raw events
// all come from the same snapshot without holding a transaction open.

export interface AnalyticsSnapshot {
  /** Events below this transaction id are counted. */
  horizon: string;
  /** Events below this one are in analytics_rollup; [watermark, horizon) are read raw. */
  watermark: string;
}

async function readAnalyticsSnapshot(em: Em): Promise<AnalyticsSnapshot> {
  const { rows } = await sql<AnalyticsSnapshot>`
    select ${CURRENT_HORIZON}::text as horizon, transaction_id::text as watermark
    from analytics_rollup_state where id = 1`.execute(em.getKysely());
  return rows[0]!;
}

export interface AnalyticsQuery {
  projectId: string;
  from: Date;
  to: Date;
  /** Whole buckets for the keyed metrics (user, session, switch, response). */
  buckets: BucketRange[];
  /** Whole buckets no wider than a series bucket, for event-type counts per series bucket. */
  seriesBuckets: BucketRange[];
  /** What no whole bucket covers: read from raw events. */
  partial: TimeRange[];
  seriesHours: number;
  topSessions: number;
}

export interface AnalyticsRow {
  metric: Metric;
  key: string;
  subkey: string;
  /** Series bucket start (epoch ms) for `type`; null otherwise. */
  seriesStart: number | null;
  value: number;
  /** How many distinct keys the metric has in the range. */
  keys: number;
}

function bucketArrays(ranges: BucketRange[]) {
  return sql`unnest(${ranges.map((r) => r.hours)}::int[], ${ranges.map((r) => r.start)}::timestamptz[], ${ranges.map((r) => r.end)}::timestamptz[])`;
}

/**
 * Counts per metric and key over [from, to): whole buckets from analytics_rollup (events below
 * the watermark), plus raw events for the partial hours at the ends (below the watermark) and for
 * events not folded in yet (watermark to horizon) anywhere in the range. Each event is counted
 * exactly once. Returns every row for type, switch and response, the top sessions with the number
 * of sessions, and for users only their number.
 */
export async function readProjectAnalytics(em: Em, query: AnalyticsQuery): Promise<AnalyticsRow[]> {
  const { projectId } = query;
  // One scan per partial piece, with its bounds as plain parameters, so the planner reads each
  // through the (project_id, created_at) index instead of walking every folded event.
  const events = sql.join(
    [
      sql`
      select ${EVENT_FACTS} from snapshot, event_outbox e
      where e.transaction_id >= snapshot.watermark and e.transaction_id < snapshot.horizon
        and e.project_id = ${projectId}::uuid and e.created_at >= ${query.from} and e.created_at < ${query.to}`,
      ...query.partial.map(
        (range) => sql`
      select ${EVENT_FACTS} from snapshot, event_outbox e
      where e.project_id = ${projectId}::uuid and e.created_at >= ${range.start} and e.created_at < ${range.end}
        and e.transaction_id < snapshot.watermark`,
      ),
    ],
    sql` union all `,
  );
  const seriesBucket = (at: RawBuilder<unknown>) => sql`date_bin(${query.seriesHours} * interval '1 hour', ${at}, timestamptz 'epoch')`;
  const { rows } = await sql<AnalyticsRow>`
    with snapshot as materialized (
      select ${CURRENT_HORIZON} as horizon, transaction_id as watermark from analytics_rollup_state where id = 1
    ),
    ${metricCells(events)},
    counted (metric, key, subkey, series_start, value) as (
      select metric, key, subkey, case when metric = 'type' then ${seriesBucket(sql`at`)} end, 1 from cells
      union all
      select r.metric, r.key, r.subkey, null, r.value
      from ${bucketArrays(query.buckets)} as covered (hours, start_at, end_at)
      join analytics_rollup r
        on r.project_id = ${projectId}::uuid and r.metric in ('user', 'session', 'switch', 'response')
       and r.bucket_hours = covered.hours and r.bucket_start >= covered.start_at and r.bucket_start < covered.end_at
      union all
      select r.metric, r.key, r.subkey, ${seriesBucket(sql`r.bucket_start`)}, r.value
      from ${bucketArrays(query.seriesBuckets)} as covered (hours, start_at, end_at)
      join analytics_rollup r
        on r.project_id = ${projectId}::uuid and r.metric = 'type'
       and r.bucket_hours = covered.hours and r.bucket_start >= covered.start_at and r.bucket_start < covered.end_at
    ),
    totals as (
      select metric, key, subkey, series_start, sum(value) as value from counted group by 1, 2, 3, 4
    ),
    ranked as (
      select *, row_number() over (partition by metric order by value desc, key collate "C", subkey collate "C") as rank,
             count(*) over (partition by metric) as keys
      from totals
    )
    select metric, key, subkey, (extract(epoch from series_start) * 1000)::float8 as "seriesStart",
           value::float8 as value, keys::float8 as keys
    from ranked
    where metric in ('type', 'switch', 'response')
       or (metric = 'session' and rank <= greatest(${query.topSessions}, 1))
       or (metric = 'user' and rank = 1)`.execute(em.getKysely());
  return rows;
}

// ---------------------------------------------------------------------------------------------
// The rollup worker's fold.

/** Bucket widths each metric is rolled up at. Event-type counts feed hour/day series only. */
const METRIC_BUCKET_HOURS: Record<Metric, readonly number[]> = {
  type: [1, 24],
  user: [1, 24, 96, 384, 1536],
  session: [1, 24, 96, 384, 1536],
  switch: [1, 24, 96, 384, 1536],
  response: [1, 24, 96, 384, 1536],
};

export function bucketHoursOf(metric: Metric): readonly number[] {
  return METRIC_BUCKET_HOURS[metric];
}

/** Arbitrary but fixed: serialises rollup workers across processes without a row lock. */
const ROLLUP_LOCK_KEY = 7_346_221_901;

export interface FoldResult {
  /** False when another process held the rollup lock; nothing was done. */
  locked: boolean;
  events: number;
  /** The watermark after this fold. */
  watermark: string;
  /** True when every event below the horizon is folded in. */
  caughtUp: boolean;
}

/**
 * Folds the next batch of finished events into analytics_rollup and moves the watermark past
 * them, in the caller's transaction (all or nothing). The batch is every event with a transaction
 * id in [watermark, upper), where upper is at most the horizon and cut so that about `batchSize`
 * events are folded, never splitting one transaction's events. Until the INSERT writes, this
 * transaction has no transaction id of its own, so it holds back nobody's horizon while it reads.
 */
export async function foldNextBatch(em: Em, batchSize: number): Promise<FoldResult> {
  const db = em.getKysely();
  const lock = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(${ROLLUP_LOCK_KEY}) as locked`.execute(db);
  const { horizon, watermark } = await readAnalyticsSnapshot(em);
  if (!lock.rows[0]!.locked) return { locked: false, events: 0, watermark, caughtUp: false };
  if (watermark === horizon) return { locked: true, events: 0, watermark, caughtUp: true };

  const cut = await sql<{ transaction_id: string }>`
    select transaction_id::text from event_outbox
    where transaction_id >= ${watermark}::xid8 and transaction_id < ${horizon}::xid8
    order by transaction_id offset ${batchSize} limit 1`.execute(db);
  let upper = cut.rows[0]?.transaction_id ?? horizon;
  if (upper === watermark) {
    // One transaction wrote more than a batch: take all of it.
    const next = await sql<{ transaction_id: string | null }>`
      select min(transaction_id)::text as transaction_id from event_outbox
      where transaction_id > ${watermark}::xid8 and transaction_id < ${horizon}::xid8`.execute(db);
    upper = next.rows[0]?.transaction_id ?? horizon;
  }

  const metrics = Object.keys(METRIC_BUCKET_HOURS) as Metric[];
  const levelMetrics = metrics.flatMap((metric) => METRIC_BUCKET_HOURS[metric].map(() => metric));
  const levelHours = metrics.flatMap((metric) => [...METRIC_BUCKET_HOURS[metric]]);
  const events = sql`
    select ${EVENT_FACTS} from event_outbox e
    where e.transaction_id >= ${watermark}::xid8 and e.transaction_id < ${upper}::xid8`;
  const folded = await sql<{ events: number }>`
    with ${metricCells(events)},
    levels (metric, hours) as (select * from unnest(${levelMetrics}::text[], ${levelHours}::int[])),
    written as (
      insert into analytics_rollup (project_id, metric, bucket_hours, bucket_start, key, subkey, value)
      select c.project_id, c.metric, l.hours, date_bin(l.hours * interval '1 hour', c.at, timestamptz 'epoch'), c.key, c.subkey, count(*)
      from cells c join levels l on l.metric = c.metric
      group by 1, 2, 3, 4, 5, 6
      on conflict (project_id, metric, bucket_hours, bucket_start, key, subkey)
      do update set value = analytics_rollup.value + excluded.value
      returning 1
    )
    select (select count(*) from events)::int as events, (select count(*) from written)::int as cells`.execute(db);
  if (upper !== watermark) {
    await sql`update analytics_rollup_state set transaction_id = ${upper}::xid8, updated_at = now() where id = 1`.execute(db);
  }
  return { locked: true, events: folded.rows[0]!.events, watermark: upper, caughtUp: upper === horizon };
}
