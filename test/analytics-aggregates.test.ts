import type pg from 'pg';
import { deliverAll, seedPendingEvents } from './support/outbox-seed.ts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { switchAgent } from '../src/domain/agents/worker-space.service.ts';
import { createAnalyticsRollupWorker } from '../src/domain/analytics/analytics-rollup.worker.ts';
import { RESPONSE_PERCENTILE_RELATIVE_ERROR } from '../src/domain/analytics/response-time.histogram.ts';
import { PERIOD_DAYS, splitRange } from '../src/domain/analytics/range-pieces.ts';
import { agentAuthorId, recordAgentMessage, sendMessage } from '../src/domain/chat/chat.service.ts';
import { forkEm } from '../src/platform/db/orm.ts';
import { createLogger } from '../src/platform/logger.ts';
import { errorCode, startTestAppWithClient, type TestApp } from './support/app.ts';
import { createProjectFixture } from './support/fixtures.ts';
import { eventually, openTransaction, storedEvents, walk, type StoredEvent } from './support/analytics.ts';

let t: TestApp;
let db: pg.Client;

beforeAll(async () => {
  // The rollup worker is off: each test folds when it wants to, so both read paths are exercised.
  ({ t, db } = await startTestAppWithClient({ ANALYTICS_ROLLUP_INTERVAL_MS: '0', LOG_LEVEL: process.env.DEBUG_LOG_LEVEL ?? 'silent' }));
});
afterAll(() => t?.stop());

const em = () => forkEm(t.app.orm);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const ANALYTICS = `
  query($p: ID!, $from: DateTime!, $to: DateTime!, $bucket: AnalyticsBucket, $top: Int) {
    projectAnalytics(projectId: $p, from: $from, to: $to, bucket: $bucket, topSessions: $top) {
      projectId from to bucket totalEvents activeUsers activeSessions
      eventsByType { type count }
      topSessions { sessionId messages session { id } }
      agentSwitches { fromAgentId toAgentId switches from { id name } to { id name } }
      timeSeries { start total byType { type count } }
      responseTime { responses medianMs p90Ms }
    }
  }`;

/** A small deterministic PRNG, so a failure can be replayed. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4_294_967_296;
  };
}

// ---- What the numbers should be, computed here from the stored rows -------------------------

const GQL_TYPE: Record<string, string> = { message_created: 'MESSAGE_CREATED', agent_switched: 'AGENT_SWITCHED' };
const isAgentMessage = (event: StoredEvent) => event.event_type === 'message_created' && event.payload.role === 'agent';

function nearestRank(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.max(1, Math.ceil(p * sorted.length)) - 1]!;
}

function expectedAnalytics(all: StoredEvent[], from: Date, to: Date, bucket: 'HOUR' | 'DAY', top: number) {
  const inRange = all.filter((event) => event.created_at >= from && event.created_at < to);
  const count = (events: StoredEvent[], type: string) => events.filter((event) => event.event_type === type).length;
  const width = bucket === 'HOUR' ? HOUR : DAY;
  const timeSeries = [];
  for (let start = Math.floor(from.getTime() / width) * width; start < to.getTime(); start += width) {
    const inBucket = inRange.filter((event) => event.created_at.getTime() >= start && event.created_at.getTime() < start + width);
    timeSeries.push({
      start: new Date(start).toISOString(),
      total: inBucket.length,
      byType: ['message_created', 'agent_switched'].map((type) => ({ type: GQL_TYPE[type], count: count(inBucket, type) })),
    });
  }
  const perSession = new Map<string, number>();
  for (const event of inRange) if (event.event_type === 'message_created') perSession.set(event.session_id!, (perSession.get(event.session_id!) ?? 0) + 1);
  const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const sessions = [...perSession].map(([sessionId, messages]) => ({ sessionId, messages })).sort((a, b) => b.messages - a.messages || byCodePoint(a.sessionId, b.sessionId));
  const switches = new Map<string, { fromAgentId: string | null; toAgentId: string; switches: number }>();
  for (const event of inRange.filter((event) => event.event_type === 'agent_switched')) {
    const key = `${event.payload.fromAgentId} ${event.payload.toAgentId}`;
    const entry = switches.get(key) ?? { fromAgentId: event.payload.fromAgentId, toAgentId: event.payload.toAgentId, switches: 0 };
    entry.switches++;
    switches.set(key, entry);
  }
  // Each user message's wait for the next agent message of its session, counted when the agent answers.
  const gaps: number[] = [];
  for (const reply of inRange.filter(isAgentMessage)) {
    const earlier = all.filter((event) => event.session_id === reply.session_id && event.sequence < reply.sequence).sort((a, b) => b.sequence - a.sequence);
    for (const event of earlier) {
      if (isAgentMessage(event)) break;
      if (event.payload.role === 'user') gaps.push(Math.max(0, reply.created_at.getTime() - event.created_at.getTime()));
    }
  }
  gaps.sort((a, b) => a - b);
  return {
    totalEvents: inRange.length,
    eventsByType: ['message_created', 'agent_switched'].map((type) => ({ type: GQL_TYPE[type], count: count(inRange, type) })),
    activeUsers: new Set(inRange.filter((event) => !isAgentMessage(event)).map((event) => event.user_id)).size,
    activeSessions: perSession.size,
    topSessions: sessions.slice(0, top),
    agentSwitches: [...switches.values()].sort(
      (a, b) => b.switches - a.switches || byCodePoint(a.fromAgentId ?? '', b.fromAgentId ?? '') || byCodePoint(a.toAgentId, b.toAgentId),
    ),
    timeSeries,
    responses: gaps.length,
    median: nearestRank(gaps, 0.5),
    p90: nearestRank(gaps, 0.9),
  };
}

async function expectAnalyticsToMatch(projectId: string, from: Date, to: Date, bucket: 'HOUR' | 'DAY', top = 3) {
  const all = await storedEvents(db, projectId);
  const expected = expectedAnalytics(all, from, to, bucket, top);
  expect(expected.totalEvents, 'a range worth checking has events').toBeGreaterThan(0);
  const result = await t.gql(ANALYTICS, { p: projectId, from: from.toISOString(), to: to.toISOString(), bucket, top }, { as: 'bob' });
  expect(result.errors).toBeUndefined();
  const actual = result.data.projectAnalytics;
  expect(actual).toMatchObject({
    projectId,
    from: from.toISOString(),
    to: to.toISOString(),
    bucket,
    totalEvents: expected.totalEvents,
    eventsByType: expected.eventsByType,
    activeUsers: expected.activeUsers,
    activeSessions: expected.activeSessions,
    topSessions: expected.topSessions,
    agentSwitches: expected.agentSwitches,
    timeSeries: expected.timeSeries,
  });
  for (const entry of actual.topSessions) expect(entry.session.id).toBe(entry.sessionId);
  for (const entry of actual.agentSwitches) expect(entry.to.id).toBe(entry.toAgentId);
  expect(actual.responseTime.responses).toBe(expected.responses);
  for (const [reported, exact] of [
    [actual.responseTime.medianMs, expected.median],
    [actual.responseTime.p90Ms, expected.p90],
  ] as const) {
    if (exact === null) expect(reported).toBeNull();
    else if (exact === 0) expect(reported).toBe(0);
    else expect(Math.abs(reported / exact - 1)).toBeLessThanOrEqual(RESPONSE_PERCENTILE_RELATIVE_ERROR + 1e-9);
  }
  return actual;
}

// ---- The data: months of chat in two projects, written through the services -----------------

const START = Date.UTC(2026, 0, 3, 7, 13, 0);
const SPAN_DAYS = 140;

describe('projectAnalytics', () => {
  let p: Awaited<ReturnType<typeof createProjectFixture>>;
  let q: Awaited<ReturnType<typeof createProjectFixture>>;
  let sessions: string[];
  let ranges: { from: Date; to: Date; bucket: 'HOUR' | 'DAY' }[];

  beforeAll(async () => {
    p = await createProjectFixture(t, 'alice', ['bob', 'dave']);
    q = await createProjectFixture(t, 'carol', ['bob']);
    sessions = [p.sessionId];
    for (const title of ['Two', 'Three', 'Four']) {
      const created = await t.gql('mutation($p: ID!, $t: String!) { createChatSession(input: { projectId: $p, title: $t }) { id } }', { p: p.projectId, t: title }, { as: 'alice' });
      sessions.push(created.data.createChatSession.id);
    }
    const users = ['alice', 'bob', 'dave'];
    const next = random(42);
    vi.useFakeTimers({ toFake: ['Date'] });
    const minute = 60_000;
    ranges = [
      { from: new Date(START - HOUR), to: new Date(START + (SPAN_DAYS + 2) * DAY), bucket: 'DAY' },
      // Unaligned ends, long enough to need every kind of piece (checked below).
      { from: new Date(START + 2 * DAY + 5 * HOUR + 17 * minute + 3_001), to: new Date(START + 135 * DAY + 13 * HOUR + 2 * minute), bucket: 'DAY' },
      { from: new Date(START + 20 * DAY + 30 * minute), to: new Date(START + 61 * DAY + 11 * HOUR), bucket: 'HOUR' },
      { from: new Date(START + 40 * DAY + 3 * HOUR + 7 * minute), to: new Date(START + 44 * DAY + 19 * HOUR + 59 * minute), bucket: 'HOUR' },
    ];
    // The long range needs every kind of piece: whole days across a period boundary, whole hours
    // of the partial days at both ends, and raw minutes at both ends.
    const long = splitRange(ranges[1]!.from, ranges[1]!.to, true);
    const period = (day: string) => Math.floor(Date.parse(day) / (PERIOD_DAYS * DAY));
    expect(period(long.days!.end) - period(long.days!.start)).toBeGreaterThanOrEqual(2);
    expect(long.hours).toHaveLength(2);
    expect(long.raw).toHaveLength(2);

    // Conversations at random times, and on both sides of every edge of every piece of every
    // range, where an off-by-one would count an event in the wrong piece or not at all.
    const times: number[] = [];
    const exactly: number[] = [];
    for (let at = START; at < START + SPAN_DAYS * DAY; at += next() * 30 * HOUR) times.push(at);
    for (const { from, to, bucket } of ranges) {
      const split = splitRange(from, to, bucket === 'DAY');
      const edges = [from.getTime(), to.getTime(), ...split.raw.flatMap((r) => [r.start.getTime(), r.end.getTime()])];
      for (const piece of split.hours) {
        const day = Date.parse(`${piece.day}T00:00:00Z`);
        edges.push(day + piece.fromHour * HOUR, day + piece.toHour * HOUR);
      }
      for (const edge of edges) {
        times.push(edge - 2 * minute, edge + 10 * minute);
        exactly.push(edge - 1, edge);
      }
    }
    times.sort((a, b) => a - b);

    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      let now = START;
      const at = (ms: number) => vi.setSystemTime((now = Math.max(now, ms)));
      for (const time of times) {
        at(time);
        const session = sessions[Math.floor(next() * sessions.length)]!;
        const user = users[Math.floor(next() * users.length)]!;
        // One to three questions, then (usually) an answer after 0.3 s to ~20 min.
        const questions = 1 + Math.floor(next() * 3);
        for (let i = 0; i < questions; i++) {
          await sendMessage(em(), user, { sessionId: session, body: `question ${i}` });
          at(now + next() * 5_000);
        }
        if (next() < 0.85) {
          at(now + 300 + next() * next() * 1_200_000);
          await recordAgentMessage(em(), { sessionId: session, agentId: p.agentIds[Math.floor(next() * 2)]!, body: 'answer' });
        }
        if (next() < 0.3) await switchAgent(em(), user, { projectId: p.projectId, agentId: p.agentIds[Math.floor(next() * 2)]! });
        // Project Q is busy at the same times; none of it may show up in P's numbers.
        await sendMessage(em(), 'carol', { sessionId: q.sessionId, body: 'elsewhere' });
        if (next() < 0.2) await switchAgent(em(), 'carol', { projectId: q.projectId, agentId: q.agentIds[Math.floor(next() * 2)]! });
      }
      // Single events exactly on (and 1 ms before) every edge.
      for (const [index, time] of exactly.entries()) {
        vi.setSystemTime(time);
        if (index % 3 === 2) await switchAgent(em(), users[index % 3]!, { projectId: p.projectId, agentId: p.agentIds[index % 2]! });
        else if (index % 3 === 1) await recordAgentMessage(em(), { sessionId: sessions[index % sessions.length]!, agentId: p.agentIds[0], body: 'edge answer' });
        else await sendMessage(em(), users[index % 3]!, { sessionId: sessions[index % sessions.length]!, body: 'edge question' });
      }
    } finally {
      vi.useRealTimers();
    }

    // Everything written is visible before the tests compare numbers.
    await eventually(async () => {
      const everything = { from: new Date(START - 2 * DAY).toISOString(), to: new Date(START + (SPAN_DAYS + 10) * DAY).toISOString() };
      const result = await t.gql(ANALYTICS, { p: p.projectId, ...everything }, { as: 'bob' });
      expect(result.data.projectAnalytics.totalEvents).toBe((await storedEvents(db, p.projectId)).length);
    });
  });

  it('matches the stored events before anything is rolled up', async () => {
    const [state] = (await db.query(`select transaction_id::text from analytics_rollup_state`)).rows;
    expect(state.transaction_id).toBe('0');
    expect((await db.query('select count(*)::int as n from analytics_counts_by_hour')).rows[0].n).toBe(0);
    for (const { from, to, bucket } of ranges) await expectAnalyticsToMatch(p.projectId, from, to, bucket);
    // Listing no sessions still counts them.
    const none = await expectAnalyticsToMatch(p.projectId, ranges[0]!.from, ranges[0]!.to, 'DAY', 0);
    expect(none.topSessions).toEqual([]);
    expect(none.activeSessions).toBe(sessions.length);
  });

  it('matches them the same way once rolled up, and with new events not rolled up yet', async () => {
    const folded = await t.app.analyticsRollup.catchUp();
    expect(folded).toBeGreaterThanOrEqual((await storedEvents(db, p.projectId)).length);
    expect((await db.query('select count(*)::int as n from analytics_counts_by_day')).rows[0].n).toBeGreaterThan(0);
    for (const { from, to, bucket } of ranges) await expectAnalyticsToMatch(p.projectId, from, to, bucket, 10);

    // Late arrivals in old buckets, and a question answered after the fold.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(START + 30 * DAY + 2 * HOUR);
      await sendMessage(em(), 'dave', { sessionId: sessions[2]!, body: 'late question' });
      vi.setSystemTime(START + 30 * DAY + 2 * HOUR + 90_000);
      await recordAgentMessage(em(), { sessionId: sessions[2]!, agentId: p.agentIds[1], body: 'late answer' });
    } finally {
      vi.useRealTimers();
    }
    for (const { from, to, bucket } of ranges.slice(0, 3)) {
      await eventually(() => expectAnalyticsToMatch(p.projectId, from, to, bucket));
    }
    await t.app.analyticsRollup.catchUp();
    for (const { from, to, bucket } of ranges) await expectAnalyticsToMatch(p.projectId, from, to, bucket);
  });

  it('matches them while more events wait to be folded than a read looks up by transaction id', async () => {
    await t.app.analyticsRollup.catchUp();
    // An unfolded event of this project in an old bucket, behind thousands of another project's.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(START + 40 * DAY + 5 * HOUR);
      await sendMessage(em(), 'dave', { sessionId: sessions[3]!, body: 'asked while the worker lags' });
    } finally {
      vi.useRealTimers();
    }
    await seedPendingEvents(db, { sessions: 30, perSession: 100 });
    for (const { from, to, bucket } of ranges) await expectAnalyticsToMatch(p.projectId, from, to, bucket);
    await t.app.analyticsRollup.catchUp();
    for (const { from, to, bucket } of ranges) await expectAnalyticsToMatch(p.projectId, from, to, bucket);
  });

  it('counts each event once however often it is published, retried, failed and reprocessed', async () => {
    await t.app.analyticsRollup.catchUp();
    const before = [];
    for (const { from, to, bucket } of ranges) before.push(await expectAnalyticsToMatch(p.projectId, from, to, bucket));
    // What the publisher does: publish, republish after a crash, retry, fail, reprocess. It only
    // moves delivery positions; the log's rows are never changed, and every delivery carries the same id.
    const log = async () => (await db.query(`select md5(string_agg(e::text, ',' order by id)) as digest from event_outbox e`)).rows[0].digest;
    const logBefore = await log();
    await deliverAll(db);
    await db.query(`update outbox_delivery set delivered_through = delivered_through - 1, attempts = attempts + 1 where delivered_through % 3 = 0`);
    await db.query(`update outbox_delivery set failed_at = now(), last_error = 'bus down', attempts = 10 where delivered_through % 5 = 0`);
    await db.query(`update outbox_delivery set failed_at = null, attempts = 0, last_error = null, next_retry_at = now() where failed_at is not null`);
    expect(await log()).toBe(logBefore);
    expect(await t.app.analyticsRollup.catchUp()).toBe(0);
    const after = [];
    for (const { from, to, bucket } of ranges) after.push(await expectAnalyticsToMatch(p.projectId, from, to, bucket));
    expect(after).toEqual(before);
  });

  it('agrees with projectEventHistory on which events are in a range', async () => {
    const { from, to } = ranges[3]!;
    const listed = await walk(t, 'bob', 'projectEventHistory', { projectId: p.projectId, filter: { from: from.toISOString(), to: to.toISOString() }, first: 100 });
    const result = await t.gql(ANALYTICS, { p: p.projectId, from: from.toISOString(), to: to.toISOString() }, { as: 'bob' });
    expect(result.data.projectAnalytics.totalEvents).toBe(listed.length);
  });

  it('counts an event that commits late exactly once, and never one that rolled back', async () => {
    const from = new Date(Date.now() - HOUR);
    const to = new Date(Date.now() + HOUR);
    const total = async (projectId: string) =>
      (await t.gql(ANALYTICS, { p: projectId, from: from.toISOString(), to: to.toISOString() }, { as: 'bob' })).data.projectAnalytics.totalEvents;
    const late = await openTransaction(t.app.orm, (tx) => sendMessage(tx, 'bob', { sessionId: sessions[1]!, body: 'late' }));
    // Writes to the same project queue behind the open one on the project row (outbox.writer.ts),
    // so the events that commit first are in project Q; the rollup's horizon is server-wide.
    await expect(
      forkEm(t.app.orm).transactional(async (tx) => {
        await sendMessage(tx, 'carol', { sessionId: q.sessionId, body: 'rolled back' });
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    await sendMessage(em(), 'carol', { sessionId: q.sessionId, body: 'overtakes the late one' });
    // The committed event waits for the older transaction still open: counting it now would let
    // the rollup move past the late one, which would then never be counted.
    expect(await total(q.projectId)).toBe(0);
    await t.app.analyticsRollup.catchUp();
    expect(await total(q.projectId)).toBe(0);
    await late.commit();
    await eventually(async () => {
      expect(await total(p.projectId)).toBe(1);
      expect(await total(q.projectId)).toBe(1);
    });
    await t.app.analyticsRollup.catchUp();
    expect(await total(p.projectId)).toBe(1);
    expect(await total(q.projectId)).toBe(1);
  });

  it('refuses ranges and arguments it cannot answer, naming the argument', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ from: '2026-02-02T00:00:00Z', to: '2026-02-01T00:00:00Z' }, 'from'],
      [{ from: '2026-02-01T00:00:00Z', to: '2026-02-01T00:00:00Z' }, 'from'],
      [{ from: '2025-01-01T00:00:00Z', to: '2026-01-03T00:00:00Z' }, 'to'],
      [{ from: '2026-01-01T00:00:00Z', to: '2026-03-01T00:00:00Z', bucket: 'HOUR' }, 'bucket'],
      [{ from: '2026-01-01T00:00:00Z', to: '2026-01-02T00:00:00Z', top: 101 }, 'topSessions'],
      [{ from: '2026-01-01T00:00:00Z', to: '2026-01-02T00:00:00Z', top: -1 }, 'topSessions'],
      [{ p: 'not-an-id', from: '2026-01-01T00:00:00Z', to: '2026-01-02T00:00:00Z' }, 'projectId'],
    ];
    for (const [variables, field] of cases) {
      const result = await t.gql(ANALYTICS, { p: p.projectId, ...variables }, { as: 'bob' });
      expect(errorCode(result), JSON.stringify(variables)).toBe('BAD_USER_INPUT');
      expect(result.errors![0]!.extensions!.field).toBe(field);
    }
    // A year with a leap day is allowed; so are 1,000 hourly buckets.
    const leapYear = await t.gql(ANALYTICS, { p: p.projectId, from: '2028-01-01T00:00:00Z', to: '2029-01-01T00:00:00Z' }, { as: 'bob' });
    expect(leapYear.errors).toBeUndefined();
    expect(leapYear.data.projectAnalytics.timeSeries).toHaveLength(366);
    const hours = await t.gql(ANALYTICS, { p: p.projectId, from: '2026-01-01T00:00:00Z', to: new Date(Date.UTC(2026, 0, 1) + 1000 * HOUR).toISOString(), bucket: 'HOUR' }, { as: 'bob' });
    expect(hours.data.projectAnalytics.timeSeries).toHaveLength(1000);
  });
});

describe('the rollup worker', () => {
  it('folds new events in the background in batches, and stops cleanly', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'gina');
    await t.app.analyticsRollup.catchUp();
    const worker = createAnalyticsRollupWorker({ orm: t.app.orm, logger: createLogger({ level: 'silent', pretty: false }), options: { intervalMs: 20, batchSize: 100 } });
    worker.start();
    try {
      for (let i = 0; i < 250; i++) await sendMessage(em(), 'gina', { sessionId, body: `m${i}` });
      // Everything is folded (the watermark passed every event) and counted once.
      await eventually(async () => {
        const { rows } = await db.query(
          `select count(*)::int as unfolded from event_outbox where transaction_id >= (select transaction_id from analytics_rollup_state)`,
        );
        expect(rows[0].unfolded).toBe(0);
      });
      const { rows } = await db.query(
        `select sum(cumulative[25])::int as messages from analytics_counts_by_hour where project_id = $1 and metric = 'session' and key = $2`,
        [projectId, sessionId],
      );
      expect(rows[0].messages).toBe(250);
    } finally {
      await worker.stop();
    }
  });
});

describe('recordAgentMessage', () => {
  it("stores an agent's message as role agent, authored by the agent, and refuses an agent of another project", async () => {
    const mine = await createProjectFixture(t, 'erin');
    const theirs = await createProjectFixture(t, 'frank');
    const { message, event } = await recordAgentMessage(em(), { sessionId: mine.sessionId, agentId: mine.agentIds[0], body: 'hello' });
    const [row] = (await db.query('select role, author_user_id, body from message where id = $1', [message.id])).rows;
    expect(row).toEqual({ role: 'agent', author_user_id: agentAuthorId(mine.agentIds[0]), body: 'hello' });
    const [stored] = (await db.query('select user_id, payload from event_outbox where id = $1', [event.id])).rows;
    expect(stored.user_id).toBe(agentAuthorId(mine.agentIds[0]));
    expect(stored.payload).toMatchObject({ role: 'agent', agentId: mine.agentIds[0], messageId: message.id });

    await expect(recordAgentMessage(em(), { sessionId: mine.sessionId, agentId: theirs.agentIds[0], body: 'intruder' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(recordAgentMessage(em(), { sessionId: mine.sessionId, agentId: mine.agentIds[0], body: '  ' })).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    expect((await db.query('select count(*)::int as n from message where session_id = $1', [mine.sessionId])).rows[0].n).toBe(1);
  });
});
