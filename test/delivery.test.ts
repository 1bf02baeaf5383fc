import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, type TestApp } from './support/app.ts';
import { connect, failInsertsInto } from './support/database.ts';
import { createProjectFixture, SEND_MESSAGE, SWITCH_AGENT } from './support/fixtures.ts';
import { createFlakyBus } from './support/flaky-bus.ts';
import { PROJECT_EVENTS, SESSION_EVENTS, subscribe, type TestSubscriber } from './support/subscriber.ts';

// Fast retries so the retry paths run in a test's time. Values are config, not assertions.
const FAST = { OUTBOX_POLL_INTERVAL_MS: '50', OUTBOX_BACKOFF_BASE_MS: '20', OUTBOX_BACKOFF_MAX_MS: '100', OUTBOX_MAX_ATTEMPTS: '3' };

let t: TestApp;
let db: pg.Client;
const flaky = createFlakyBus();
const subscribers: TestSubscriber[] = [];

beforeAll(async () => {
  t = await startTestApp(FAST, { bus: flaky.bus });
  db = await connect(t.db.url);
});
afterEach(async () => {
  flaky.down = false;
  flaky.rejects = () => false;
  for (const s of subscribers.splice(0)) await s.stop();
});
afterAll(async () => {
  await db?.end();
  await t?.stop();
});

async function listen(query: string, variables: Record<string, unknown>, user = 'alice') {
  const s = await subscribe(t.app.graphqlUrl, await t.token(user), query, variables);
  subscribers.push(s);
  return s;
}

const send = (sessionId: string, body: string, as = 'alice') => t.gql(SEND_MESSAGE, { sessionId, body }, { as });
const statusOf = async (eventId: string) => (await db.query('select status, attempts, last_error from event_outbox where id = $1', [eventId])).rows[0];

async function until(check: () => Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('delivery of committed events', () => {
  it('delivers a committed message with eventId = outbox id, and never one whose transaction rolled back', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const sub = await listen(SESSION_EVENTS, { sessionId });

    const undo = await failInsertsInto(db, 'event_outbox');
    expect(errorCode(await send(sessionId, 'rolled back'))).toBe('INTERNAL_SERVER_ERROR');
    await undo();
    const undoMessage = await failInsertsInto(db, 'message');
    expect(errorCode(await send(sessionId, 'also rolled back'))).toBe('INTERNAL_SERVER_ERROR');
    await undoMessage();
    const committed = await send(sessionId, 'committed');

    await sub.waitForCount(1);
    await until(async () => (await statusOf(committed.data.sendMessage.eventId)).status === 'published');
    // A later commit proves the stream moved past anything the rollbacks could have produced.
    await send(sessionId, 'after');
    await sub.waitForCount(2);
    expect(sub.events.map((e) => [e.eventId, e.sequence, e.message?.body])).toEqual([
      [committed.data.sendMessage.eventId, 1, 'committed'],
      [expect.any(String), 2, 'after'],
    ]);
    expect(flaky.accepted.some((e) => (e.payload as { body?: string }).body?.includes('rolled back'))).toBe(false);
  });

  it('retries while the bus is down and delivers once it is back, with the same eventId', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const sub = await listen(SESSION_EVENTS, { sessionId });
    flaky.down = true;
    const sent = await send(sessionId, 'while down');
    const eventId = sent.data.sendMessage.eventId;
    await until(async () => (await statusOf(eventId)).attempts >= 2);
    const waiting = await statusOf(eventId);
    expect(waiting).toMatchObject({ status: 'pending', last_error: 'bus unavailable (injected)' });
    expect(sub.events).toEqual([]);

    flaky.down = false;
    await sub.waitForCount(1);
    expect(sub.events[0]!.eventId).toBe(eventId);
    await until(async () => (await statusOf(eventId)).status === 'published');
  });

  it('marks an event failed after max attempts, holds back only its own session, and reprocessing delivers it with its eventId', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'alice');
    const other = await t.gql<{ createChatSession: { id: string } }>('mutation($p: ID!) { createChatSession(input: { projectId: $p, title: "other" }) { id } }', { p: projectId }, { as: 'alice' });
    const otherSessionId = other.data!.createChatSession.id;
    const sub = await listen(SESSION_EVENTS, { sessionId });
    const otherSub = await listen(SESSION_EVENTS, { sessionId: otherSessionId });

    flaky.rejects = (event) => event.sessionId === sessionId;
    const poison = (await send(sessionId, 'first')).data.sendMessage.eventId;
    const behind = (await send(sessionId, 'second')).data.sendMessage.eventId;
    await until(async () => (await statusOf(poison)).status === 'failed');
    expect(await statusOf(poison)).toMatchObject({ status: 'failed', attempts: 3, last_error: 'bus unavailable (injected)' });

    // The other session keeps flowing while this one is stuck.
    await send(otherSessionId, 'unaffected');
    await otherSub.waitForCount(1);
    // The later event of the stuck session was never published before the failed one.
    expect(await statusOf(behind)).toMatchObject({ status: 'pending' });
    expect(flaky.accepted.filter((e) => e.sessionId === sessionId)).toEqual([]);

    const status = await t.gql('query($p: ID!) { outboxStatus(projectId: $p) { pending failed failedEvents { eventId attempts lastError } } }', { p: projectId }, { as: 'alice' });
    expect(status.data.outboxStatus).toMatchObject({ failed: 1, pending: 1, failedEvents: [{ eventId: poison, attempts: 3, lastError: 'bus unavailable (injected)' }] });

    flaky.rejects = () => false;
    const forbidden = await t.gql('mutation($p: ID!) { reprocessFailedEvents(projectId: $p) { count } }', { p: projectId }, { as: 'bob' });
    expect(errorCode(forbidden)).toBe('NOT_FOUND');
    const reprocessed = await t.gql('mutation($p: ID!) { reprocessFailedEvents(projectId: $p) { count eventIds } }', { p: projectId }, { as: 'alice' });
    expect(reprocessed.data.reprocessFailedEvents).toEqual({ count: 1, eventIds: [poison] });

    await sub.waitForCount(2);
    expect(sub.events.map((e) => e.eventId)).toEqual([poison, behind]);
    expect(flaky.accepted.filter((e) => e.sessionId === sessionId).map((e) => e.eventId)).toEqual([poison, behind]);
  });
});

describe('subscriptions', () => {
  it('resumes with `after`: exactly the missed events in order, then live ones', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const first = await listen(SESSION_EVENTS, { sessionId });
    await send(sessionId, 'one');
    await send(sessionId, 'two');
    await first.waitForCount(2);
    const lastSeen = first.events[1]!.eventId;
    await first.stop();

    for (const body of ['three', 'four', 'five']) await send(sessionId, body);
    const resumed = await listen(SESSION_EVENTS, { sessionId, after: lastSeen });
    await resumed.waitForCount(3);
    await send(sessionId, 'six');
    await resumed.waitForCount(4);
    expect(resumed.events.map((e) => [e.sequence, e.message?.body])).toEqual([[3, 'three'], [4, 'four'], [5, 'five'], [6, 'six']]);
  });

  it('replays a project from afterSequence: 0 in commit order across sessions and agent switches', async () => {
    const { projectId, sessionId, agentIds } = await createProjectFixture(t, 'alice', ['bob']);
    await send(sessionId, 'a');
    await t.gql(SWITCH_AGENT, { projectId, agentId: agentIds[1] }, { as: 'bob' });
    await send(sessionId, 'b', 'bob');
    const sub = await listen(PROJECT_EVENTS, { projectId, afterSequence: 0 });
    await sub.waitForCount(3);
    expect(sub.events.map((e) => [e.projectSequence, e.type])).toEqual([[1, 'MESSAGE_CREATED'], [2, 'AGENT_SWITCHED'], [3, 'MESSAGE_CREATED']]);
  });

  it('fills a gap from the database when a live event arrives before an earlier one (a retrying event of another session)', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'alice');
    const other = await t.gql<{ createChatSession: { id: string } }>('mutation($p: ID!) { createChatSession(input: { projectId: $p, title: "other" }) { id } }', { p: projectId }, { as: 'alice' });
    const sub = await listen(PROJECT_EVENTS, { projectId });
    flaky.rejects = (event) => event.sessionId === sessionId;
    await send(sessionId, 'retrying');
    await send(other.data!.createChatSession.id, 'flows');
    await sub.waitForCount(2);
    expect(sub.events.map((e) => [e.projectSequence, e.message?.body])).toEqual([[1, 'retrying'], [2, 'flows']]);
    flaky.rejects = () => false;
    await send(sessionId, 'later');
    await sub.waitForCount(3);
    // The retried event, published late, is not delivered a second time.
    await new Promise((r) => setTimeout(r, 200));
    expect(sub.events.map((e) => e.projectSequence)).toEqual([1, 2, 3]);
  });

  it('refuses non-members and unauthenticated clients, with a code, and sends them nothing', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'alice');
    const outsider = await listen(SESSION_EVENTS, { sessionId }, 'mallory');
    const outsiderProject = await listen(PROJECT_EVENTS, { projectId }, 'mallory');
    const anonymous = await subscribe(t.app.graphqlUrl, null, SESSION_EVENTS, { sessionId });
    subscribers.push(anonymous);
    await send(sessionId, 'private');
    for (const s of [outsider, outsiderProject, anonymous]) await s.waitFor((x) => x.errors.length > 0);
    expect(outsider.errors[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(outsiderProject.errors[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(anonymous.errors[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    for (const s of [outsider, outsiderProject, anonymous]) expect(s.events).toEqual([]);
  });

  it('rejects an `after` from another session with BAD_USER_INPUT', async () => {
    const a = await createProjectFixture(t, 'alice');
    const b = await createProjectFixture(t, 'alice');
    const foreign = (await send(b.sessionId, 'x')).data.sendMessage.eventId;
    const sub = await listen(SESSION_EVENTS, { sessionId: a.sessionId, after: foreign });
    await sub.waitFor((s) => s.errors.length > 0);
    expect(sub.errors[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('ends a subscription when its token expires, with UNAUTHENTICATED', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const shortLived = await t.app.tokens.sign('alice', { expiresIn: '2s' });
    const sub = await subscribe(t.app.graphqlUrl, shortLived, SESSION_EVENTS, { sessionId });
    subscribers.push(sub);
    await send(sessionId, 'while valid');
    await sub.waitForCount(1);
    await sub.waitFor((s) => s.errors.length > 0 && s.completed, 10_000);
    expect(sub.errors[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    await send(sessionId, 'after expiry');
    await new Promise((r) => setTimeout(r, 200));
    expect(sub.events).toHaveLength(1);
  });
});
