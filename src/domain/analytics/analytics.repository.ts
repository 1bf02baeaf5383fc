import { sql, type RawBuilder } from 'kysely';
import { dbOf } from '../../platform/db/database.ts';
import { runHot, type Em } from '../../platform/db/orm.ts';
import { eventFromRow, type DomainEvent, type MessageRole, type EventPayloads, type EventRow, type EventType } from '../../events/domain-event.ts';
import { eventColumns, expiredHorizon } from '../../events/event-log.repository.ts';
import { RESPONSE_BIN_GROWTH } from './response-time.histogram.ts';
import { PERIOD_DAYS, type RangePieces } from './range-pieces.ts';

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

/** An event plus its exact sort key (PostgreSQL keeps microseconds; a JS Date does not). */
export interface EventPageRow {
  event: DomainEvent;
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
  /** Rows to read: one more than the page, to tell whether another follows. */
  limit: number;
}

const CURRENT_HORIZON = sql`pg_snapshot_xmin(pg_current_snapshot())`;

/**
 * What retention removed from a stream, read in the page's own statement (one round trip, not
 * two): an uncorrelated subquery, evaluated once per statement. Only a page continued from a cursor
 * needs it; a page with no rows carries no value, so its caller asks `expiredHorizon` instead.
 */
const expiredColumn = (column: 'expired_through' | 'expired_until', streamId: string) =>
  sql`(select h.${sql.ref(column)} from event_log_horizon h where h.stream_id = ${streamId}::uuid) as ${sql.ref(column)}`;

/** An event's columns, and its exact time as text for cursors. */
const EVENT_COLUMNS = sql`${eventColumns('e', { withTrace: false })}, to_char(e.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created_at_key`;

/** The event's columns, with a microsecond key for cursors. */
interface EventKeyRow extends EventRow {
  created_at_key: string;
}

function toEventPageRow(row: EventKeyRow): EventPageRow {
  return { event: eventFromRow(row), createdAtKey: row.created_at_key };
}

/**
 * One page of a project's events in (occurred at, id) order, limited to events whose transaction
 * is below the horizon. Every page of a walk uses the horizon of its first page, so the walk reads
 * one fixed set of events: nothing that commits meanwhile (early or late, in any order) can slip
 * in behind the cursor or shift a page boundary.
 */
export async function findProjectEventsPage(
  em: Em,
  query: EventPageQuery,
): Promise<{ rows: EventPageRow[]; horizon: string | null; expiredUntil: Date | null }> {
  const direction = query.newestFirst ? sql.raw('desc') : sql.raw('asc');
  const beyondCursor = query.after
    ? query.newestFirst
      ? sql`and (e.created_at, e.id) < (${query.after.createdAtKey}::timestamptz, ${query.after.id}::uuid)`
      : sql`and (e.created_at, e.id) > (${query.after.createdAtKey}::timestamptz, ${query.after.id}::uuid)`
    : sql``;
  // A pinned horizon can only be lower than the current one; least() keeps a forged one harmless.
  const horizon = query.horizon ? sql`least(${query.horizon}::xid8, ${CURRENT_HORIZON})` : CURRENT_HORIZON;
  const rows = await runHot(em, sql<EventKeyRow & { horizon: string; expired_until: Date | string | null }>`
    with walk as (select ${horizon} as horizon)
    select ${EVENT_COLUMNS}, walk.horizon::text as horizon, ${query.after ? expiredColumn('expired_until', query.projectId) : sql`null as expired_until`}
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
    limit ${query.limit}`.compile(dbOf(em)));
  // An empty page has no cursor to pin the horizon in; the next first page takes a new one.
  const expired = rows.length > 0 ? rows[0]!.expired_until : query.after ? (await expiredHorizon(dbOf(em), query.projectId))?.expiredUntil : null;
  return { rows: rows.map(toEventPageRow), horizon: rows[0]?.horizon ?? null, expiredUntil: expired == null ? null : new Date(expired) };
}

/**
 * One page of a session's events in sequence order after `from` (from the start when null), or
 * backward: before `from` (from the end when null), newest first. Sequence numbers are handed out under the
 * session's row lock, so they follow commit order: when event n is visible, 1..n-1 are too, and a
 * cursor on the sequence can never skip an event that commits late. No horizon is needed.
 */
export async function findSessionEventsPage(
  em: Em,
  query: { projectId: string; sessionId: string; from: number | null; backward: boolean; limit: number },
): Promise<{ rows: EventPageRow[]; expiredThrough: number | null }> {
  const beyondCursor =
    query.from === null ? sql`` : query.backward ? sql`and e.sequence < ${query.from}` : sql`and e.sequence > ${query.from}`;
  const rows = await runHot(em, sql<EventKeyRow & { expired_through: number | null }>`
    select ${EVENT_COLUMNS}, ${query.from !== null ? expiredColumn('expired_through', query.sessionId) : sql`null as expired_through`}
    from event_outbox e
    where e.aggregate_id = ${query.sessionId}::uuid
      and e.aggregate_type = 'chat_session'
      and e.project_id = ${query.projectId}
      ${beyondCursor}
    order by e.sequence ${sql.raw(query.backward ? 'desc' : 'asc')}
    limit ${query.limit}`.compile(dbOf(em)));
  const expired = rows.length > 0 ? rows[0]!.expired_through : query.from !== null ? (await expiredHorizon(dbOf(em), query.sessionId))?.expiredThrough : null;
  return { rows: rows.map(toEventPageRow), expiredThrough: expired ?? null };
}

export async function sessionBelongsToProject(em: Em, sessionId: string, projectId: string): Promise<boolean> {
  const rows = await runHot(em, sql`select 1 from chat_session where id = ${sessionId}::uuid and project_id = ${projectId}::uuid`.compile(dbOf(em)));
  return rows.length > 0;
}

// ---------------------------------------------------------------------------------------------
// Metrics: how one event is counted. The rollup worker and the live reads share these
// definitions, so a rolled-up count and a count read from raw events cannot disagree.

/**
 * `alias.payload->>'field'` for a `type` event: the key is checked against the event contract.
 * Written as a literal, so it matches the expression statistics on `payload->>'role'`.
 */
const payloadText = <K extends EventType>(alias: string, _type: K, field: keyof EventPayloads[K] & string) =>
  sql`${sql.ref(alias)}.payload->>${sql.lit(field)}`;

/** The columns the metric definitions need, from an `event_outbox e`. */
const EVENT_FACTS = sql`
  e.project_id, e.event_type, e.user_id, e.session_id, e.aggregate_id, e.sequence, e.created_at,
  ${payloadText('e', 'message_created', 'role')} as role,
  ${payloadText('e', 'agent_switched', 'fromAgentId')} as from_agent_id, ${payloadText('e', 'agent_switched', 'toAgentId')} as to_agent_id`;

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
          and previous.event_type = 'message_created' and ${payloadText('previous', 'message_created', 'role')} = ${sql.lit<MessageRole>('agent')}
        order by previous.sequence desc
        limit 1
      ) previous_reply on true
      join event_outbox asked
        on asked.aggregate_id = reply.aggregate_id
       and asked.sequence > coalesce(previous_reply.sequence, 0) and asked.sequence < reply.sequence
       and asked.event_type = 'message_created' and ${payloadText('asked', 'message_created', 'role')} = ${sql.lit<MessageRole>('user')}
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
// projectAnalytics: one statement, so the horizon, the watermark, the running totals and the raw
// events all come from the same snapshot without holding a transaction open.

interface AnalyticsSnapshot {
  /** Events below this transaction id are counted. */
  horizon: string;
  /** Events below this one are in the running totals; [watermark, horizon) are read raw. */
  watermark: string;
}

async function readAnalyticsSnapshot(em: Em): Promise<AnalyticsSnapshot> {
  const { rows } = await sql<AnalyticsSnapshot>`
    select ${CURRENT_HORIZON}::text as horizon, transaction_id::text as watermark
    from analytics_rollup_state where id = 1`.execute(dbOf(em));
  return rows[0]!;
}

export interface AnalyticsQuery {
  projectId: string;
  from: Date;
  to: Date;
  /** Pieces for the keyed metrics (user, session, switch, response). */
  pieces: RangePieces;
  /** Pieces for event-type counts per series bucket (split into hours for an hourly series). */
  seriesPieces: RangePieces;
  seriesHours: number;
  topSessions: number;
}

export interface AnalyticsRow {
  /** A metric, or `distinct`: the number (value) of distinct keys of the metric named by key. */
  metric: Metric | 'distinct';
  key: string;
  subkey: string;
  /** Series bucket start (epoch ms) for `type`; null otherwise. */
  seriesStart: number | null;
  value: number;
}

const KEYED_METRICS = sql`('user', 'session', 'switch', 'response')`;
/**
 * Up to this many events not folded yet (in all projects), a read finds its project's among them
 * by transaction id; past it, among the project's events in the range. A rollup worker that keeps
 * up leaves about a second of writes unfolded.
 */
const FEW_UNFOLDED = 2_000;
const utcMidnight = (day: RawBuilder<unknown>) => sql`((${day})::timestamp at time zone 'UTC')`;

/** Running-total differences over whole days: one row per key and 64-day period (per day with `perDay`). */
function countWholeDays(projectId: string, days: RangePieces['days'], metrics: RawBuilder<unknown>, perDay: boolean) {
  if (!days) return null;
  const periods = sql`
    analytics_counts_by_day r
    cross join lateral (
      select greatest(0, ${days.start}::date - r.period_start) as first, least(${PERIOD_DAYS}::int, ${days.end}::date - r.period_start) as last
    ) span`;
  const overlapping = sql`
    r.project_id = ${projectId}::uuid and r.metric in ${metrics}
    and r.period_start > ${days.start}::date - ${PERIOD_DAYS}::int and r.period_start < ${days.end}::date`;
  return perDay
    ? sql`
      select r.metric, r.key, r.subkey, ${utcMidnight(sql`r.period_start + i`)} as at, r.cumulative[i + 2] - r.cumulative[i + 1] as value
      from ${periods} cross join lateral generate_series(span.first, span.last - 1) as i
      where ${overlapping}`
    : sql`
      select r.metric, r.key, r.subkey, null::timestamptz as at, r.cumulative[span.last + 1] - r.cumulative[span.first + 1] as value
      from ${periods}
      where ${overlapping}`;
}

/** Running-total differences over whole hours of single days: one row per key and day. */
function countWholeHours(projectId: string, hours: RangePieces['hours'], metrics: RawBuilder<unknown>, perHour: boolean) {
  if (hours.length === 0) return null;
  const pieces = sql`
    from unnest(${hours.map((p) => p.day)}::date[], ${hours.map((p) => p.fromHour)}::int[], ${hours.map((p) => p.toHour)}::int[]) as piece (day, from_hour, to_hour)
    join analytics_counts_by_hour r on r.project_id = ${projectId}::uuid and r.metric in ${metrics} and r.day = piece.day`;
  return perHour
    ? sql`
      select r.metric, r.key, r.subkey, ${utcMidnight(sql`piece.day`)} + h * interval '1 hour' as at, r.cumulative[h + 2] - r.cumulative[h + 1] as value
      ${pieces}
      cross join lateral generate_series(piece.from_hour, piece.to_hour - 1) as h`
    : sql`select r.metric, r.key, r.subkey, null::timestamptz as at, r.cumulative[piece.to_hour + 1] - r.cumulative[piece.from_hour + 1] as value ${pieces}`;
}

/**
 * Counts per metric and key over [from, to): running totals for whole days and whole hours of
 * events below the watermark, plus raw events for the partial hours at the ends (below the
 * watermark) and for events not folded in yet (watermark to horizon) anywhere in the range. Each
 * event is counted exactly once. Returns every row for type (per series bucket), switch and
 * response, the top sessions, and how many sessions and users there are.
 */
export async function readProjectAnalytics(em: Em, query: AnalyticsQuery): Promise<AnalyticsRow[]> {
  const { projectId } = query;
  // One scan per partial piece, with its bounds as plain parameters, so the planner reads each
  // through the (project_id, created_at) index instead of walking every folded event.
  const events = sql.join(
    [
      // Events not folded yet, read by transaction id while they are few (the rollup worker keeps
      // them so). Fenced (offset 0) because the planner cannot see the watermark: given the
      // project and the range as well, it read the project's events in the whole range through
      // the (project_id, created_at) index and dropped the folded ones, a cost that grew with the
      // log (30-day projectAnalytics: 6 ms at 100k events, 13.5 ms at 10M).
      sql`
      select ${EVENT_FACTS} from (
        select * from event_outbox e
        where e.transaction_id >= (select watermark from snapshot) and e.transaction_id < (select horizon from snapshot)
        offset 0
      ) e
      where (select few from unfolded) and e.project_id = ${projectId}::uuid and e.created_at >= ${query.from} and e.created_at < ${query.to}`,
      // Many (the worker stopped or fell behind): the project's events in the range, as before.
      sql`
      select ${EVENT_FACTS} from snapshot, event_outbox e
      where not (select few from unfolded) and e.transaction_id >= snapshot.watermark and e.transaction_id < snapshot.horizon
        and e.project_id = ${projectId}::uuid and e.created_at >= ${query.from} and e.created_at < ${query.to}`,
      ...query.pieces.raw.map(
        (range) => sql`
      select ${EVENT_FACTS} from snapshot, event_outbox e
      where e.project_id = ${projectId}::uuid and e.created_at >= ${range.start} and e.created_at < ${range.end}
        and e.transaction_id < snapshot.watermark`,
      ),
    ],
    sql` union all `,
  );
  const type = sql`('type')`;
  const parts = [
    sql`select metric, key, subkey, at, 1 as value from cells where metric = 'type'`,
    sql`select metric, key, subkey, null::timestamptz as at, 1 as value from cells where metric <> 'type'`,
    countWholeDays(projectId, query.pieces.days, KEYED_METRICS, false),
    countWholeHours(projectId, query.pieces.hours, KEYED_METRICS, false),
    countWholeDays(projectId, query.seriesPieces.days, type, true),
    countWholeHours(projectId, query.seriesPieces.hours, type, true),
  ].filter((part) => part !== null);
  const { rows } = await sql<AnalyticsRow>`
    with snapshot as materialized (
      select ${CURRENT_HORIZON} as horizon, transaction_id as watermark from analytics_rollup_state where id = 1
    ),
    -- Whether the events not folded yet (all projects') are few enough to read by transaction id.
    unfolded as materialized (
      select count(*) <= ${FEW_UNFOLDED} as few from (
        select from event_outbox e
        where e.transaction_id >= (select watermark from snapshot) and e.transaction_id < (select horizon from snapshot)
        limit ${FEW_UNFOLDED + 1}
      ) counted
    ),
    ${metricCells(events)},
    counted (metric, key, subkey, at, value) as (${sql.join(parts, sql` union all `)}),
    totals as (
      select metric, key, subkey,
             case when metric = 'type' then date_bin(${query.seriesHours} * interval '1 hour', at, timestamptz 'epoch') end as series_start,
             sum(value) as value
      from counted group by 1, 2, 3, 4 having sum(value) > 0
    )
    select metric, key, subkey, (extract(epoch from series_start) * 1000)::float8 as "seriesStart", value::float8 as value
    from totals where metric in ('type', 'switch', 'response')
    union all
    -- "C" collation: byte order is all ranking needs, and locale-aware comparison is slow.
    (select metric, key, subkey, null, value::float8 from totals where metric = 'session'
     order by value desc, key collate "C" limit ${query.topSessions})
    union all
    select 'distinct', metric, '', null, count(*)::float8 from totals where metric in ('session', 'user') group by metric`.execute(dbOf(em));
  return rows;
}

// ---------------------------------------------------------------------------------------------
// The rollup worker's fold.

/**
 * Running totals to add for `groups` (rows with `indexes` and `counts` arrays): element k + 1 of
 * the result is the count at indexes below k, for k = 0..length.
 */
const prefixSums = (length: number) => sql`
  array(select coalesce((select sum(added.n) from unnest(groups.indexes, groups.counts) as added (i, n) where added.i < k), 0)::int
        from generate_series(0, ${length}) as k order by k)`;

/** Element-wise sum of the stored running totals and the ones being added. */
const addRunningTotals = (table: string) => sql`
  (select array_agg(stored + added order by position)
   from unnest(${sql.table(table)}.cumulative, excluded.cumulative) with ordinality as sums (stored, added, position))`;

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
 * Folds the next batch of finished events into the running totals and moves the watermark past
 * them, in the caller's transaction (all or nothing). The batch is every event with a transaction
 * id in [watermark, upper), where upper is at most the horizon and cut so that about `batchSize`
 * events are folded, never splitting one transaction's events. Until the INSERT writes, this
 * transaction has no transaction id of its own, so it holds back nobody's horizon while it reads.
 */
export async function foldNextBatch(em: Em, batchSize: number): Promise<FoldResult> {
  const db = dbOf(em);
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

  const events = sql`
    select ${EVENT_FACTS} from event_outbox e
    where e.transaction_id >= ${watermark}::xid8 and e.transaction_id < ${upper}::xid8`;
  const folded = await sql<{ events: number }>`
    with ${metricCells(events)},
    placed as (
      select project_id, metric, key, subkey, (at at time zone 'UTC')::date as day, extract(hour from at at time zone 'UTC')::int as hour
      from cells
    ),
    periods as (
      select *, date '1970-01-01' + (floor((day - date '1970-01-01') / ${PERIOD_DAYS}::numeric) * ${PERIOD_DAYS})::int as period_start
      from placed
    ),
    hour_groups as (
      select project_id, metric, key, subkey, day, array_agg(hour) as indexes, array_agg(n) as counts
      from (select project_id, metric, key, subkey, day, hour, count(*)::int as n from placed group by 1, 2, 3, 4, 5, 6) per_hour
      group by 1, 2, 3, 4, 5
    ),
    day_groups as (
      select project_id, metric, key, subkey, period_start, array_agg(day_index) as indexes, array_agg(n) as counts
      from (
        select project_id, metric, key, subkey, period_start, day - period_start as day_index, count(*)::int as n
        from periods group by 1, 2, 3, 4, 5, 6
      ) per_day
      group by 1, 2, 3, 4, 5
    ),
    hours_written as (
      insert into analytics_counts_by_hour (project_id, metric, day, key, subkey, cumulative)
      select project_id, metric, day, key, subkey, ${prefixSums(24)} from hour_groups groups
      on conflict (project_id, metric, day, key, subkey) do update set cumulative = ${addRunningTotals('analytics_counts_by_hour')}
    ),
    days_written as (
      insert into analytics_counts_by_day (project_id, metric, period_start, key, subkey, cumulative)
      select project_id, metric, period_start, key, subkey, ${prefixSums(PERIOD_DAYS)} from day_groups groups
      on conflict (project_id, metric, period_start, key, subkey) do update set cumulative = ${addRunningTotals('analytics_counts_by_day')}
    )
    -- Data-modifying CTEs always run to completion, read or not.
    select count(*)::int as events from events`.execute(db);
  await sql`update analytics_rollup_state set transaction_id = ${upper}::xid8, updated_at = now() where id = 1`.execute(db);
  return { locked: true, events: folded.rows[0]!.events, watermark: upper, caughtUp: upper === horizon };
}
