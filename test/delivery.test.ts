import { createClient } from 'graphql-ws';
import type pg from 'pg';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, startTestAppWithClient, type TestApp } from './support/app.ts';
import { connect, whileInsertsFail } from './support/database.ts';
import { createProjectFixture, SEND_MESSAGE, SWITCH_AGENT } from './support/fixtures.ts';
import { createFlakyBus } from './support/flaky-bus.ts';
import { PROJECT_EVENTS, SESSION_EVENTS, subscribe, type TestSubscriber } from './support/subscriber.ts';
import { until } from './support/until.ts';

// Fast retries so the retry paths run in a test's time. Values are config, not assertions.
const FAST = { OUTBOX_POLL_INTERVAL_MS: '50', OUTBOX_BACKOFF_BASE_MS: '20', OUTBOX_BACKOFF_MAX_MS: '100', OUTBOX_MAX_ATTEMPTS: '3', SUBSCRIPTION_AUTH_RECHECK_MS: '0' };

let t: TestApp;
let db: pg.Client;
const flaky = createFlakyBus();
const subscribers: TestSubscriber[] = [];

beforeAll(async () => {
  ({ t, db } = await startTestAppWithClient(FAST, { bus: flaky.bus }));
});
afterEach(async () => {
  flaky.down = false;
  flaky.rejects = () => false;
  for (const s of subscribers.splice(0)) await s.stop();
});
afterAll(() => t?.stop());

async function listen(query: string, variables: Record<string, unknown>, user = 'alice') {
  const s = await subscribe(t.app.graphqlUrl, await t.token(user), query, variables);
  subscribers.push(s);
  return s;
}

const send = (sessionId: string, body: string, as = 'alice') => t.gql(SEND_MESSAGE, { sessionId, body }, { as });
const statusOf = async (eventId: string) => (await db.query('select status, attempts, last_error from outbox_event_status where id = $1', [eventId])).rows[0];

describe('delivery of committed events', () => {
  it('delivers a committed message with eventId = outbox id, and never one whose transaction rolled back', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const sub = await listen(SESSION_EVENTS, { sessionId });

    expect(errorCode(await whileInsertsFail(db, 'event_outbox', () => send(sessionId, 'rolled back')))).toBe('INTERNAL_SERVER_ERROR');
    expect(errorCode(await whileInsertsFail(db, 'message', () => send(sessionId, 'also rolled back')))).toBe('INTERNAL_SERVER_ERROR');
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

    // The delivered event's record lands with the publisher's next statement (at most 25 ms later).
    const readStatus = () => t.gql('query($p: ID!) { outboxStatus(projectId: $p) { pending failed oldestPendingAt failedEvents { eventId type attempts lastError createdAt } } }', { p: projectId }, { as: 'alice' });
    await until(async () => (await readStatus()).data?.outboxStatus?.pending === 1);
    const status = await readStatus();
    expect(status.errors).toBeUndefined();
    expect(status.data.outboxStatus).toMatchObject({ failed: 1, pending: 1, oldestPendingAt: expect.any(String), failedEvents: [{ eventId: poison, type: 'MESSAGE_CREATED', attempts: 3, lastError: 'bus unavailable (injected)' }] });

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
    // An app of its own whose first retry comes 0.5-1 s later: the earlier event is reliably still
    // waiting while the later one is delivered, and never runs out of attempts meanwhile.
    const slowRetry = createFlakyBus();
    const app = await startTestApp({ ...FAST, OUTBOX_BACKOFF_BASE_MS: '1000', OUTBOX_BACKOFF_MAX_MS: '1000' }, { bus: slowRetry.bus });
    try {
      const { projectId, sessionId } = await createProjectFixture(app, 'alice');
      const other = await app.gql<{ createChatSession: { id: string } }>('mutation($p: ID!) { createChatSession(input: { projectId: $p, title: "other" }) { id } }', { p: projectId }, { as: 'alice' });
      const sub = await subscribe(app.app.graphqlUrl, await app.token('alice'), PROJECT_EVENTS, { projectId });
      subscribers.push(sub);
      let refusals = 0;
      slowRetry.rejects = (event) => event.sessionId === sessionId && refusals++ === 0;
      const retrying = await app.gql(SEND_MESSAGE, { sessionId, body: 'retrying' }, { as: 'alice' });
      await until(async () => refusals > 0);
      await app.gql(SEND_MESSAGE, { sessionId: other.data!.createChatSession.id, body: 'flows' }, { as: 'alice' });
      await sub.waitForCount(2);
      expect(sub.events.map((e) => [e.projectSequence, e.message?.body])).toEqual([[1, 'retrying'], [2, 'flows']]);
      // The first event reached the subscriber from the database: on the bus it is still waiting.
      expect(slowRetry.accepted.map((e) => (e.type === 'message_created' ? e.payload.body : e.type))).toEqual(['flows']);
      await app.gql(SEND_MESSAGE, { sessionId, body: 'later' }, { as: 'alice' });
      await sub.waitForCount(3);
      await until(() => slowRetry.accepted.some((e) => e.eventId === retrying.data.sendMessage.eventId));
      // The retried event, published late, is not delivered a second time.
      await new Promise((r) => setTimeout(r, 200));
      expect(sub.events.map((e) => e.projectSequence)).toEqual([1, 2, 3]);
    } finally {
      for (const s of subscribers.splice(0)) await s.stop();
      await app.stop();
    }
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

  it('ends the subscription of a member removed from the project, before sending them the next event', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'alice', ['bob']);
    const bob = await listen(PROJECT_EVENTS, { projectId }, 'bob');
    await send(sessionId, 'before removal');
    await bob.waitForCount(1);
    await db.query('delete from project_member where project_id = $1 and user_id = $2', [projectId, 'bob']);
    await send(sessionId, 'after removal');
    await bob.waitFor((s) => s.completed);
    expect(bob.errors[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(bob.events.map((e) => e.message?.body)).toEqual(['before removal']);
  });

  it('rejects an `after` from another session with BAD_USER_INPUT', async () => {
    const a = await createProjectFixture(t, 'alice');
    const b = await createProjectFixture(t, 'alice');
    const foreign = (await send(b.sessionId, 'x')).data.sendMessage.eventId;
    const sub = await listen(SESSION_EVENTS, { sessionId: a.sessionId, after: foreign });
    await sub.waitFor((s) => s.errors.length > 0);
    expect(sub.errors[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('rejects an afterSequence beyond the newest event, which would skip events silently', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    await send(sessionId, 'only one');
    const sub = await listen(SESSION_EVENTS, { sessionId, afterSequence: 5 });
    await sub.waitFor((s) => s.errors.length > 0);
    expect(sub.errors[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'afterSequence' });
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

describe('transports and lifecycle', () => {
  it('serves subscriptions over SSE with the Authorization header', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const controller = new AbortController();
    const response = await fetch(t.app.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${await t.token('alice')}` },
      body: JSON.stringify({ query: 'subscription($s: ID!) { sessionEvents(sessionId: $s) { eventId sequence ... on MessageCreatedEvent { message { body } } } }', variables: { s: sessionId } }),
      signal: controller.signal,
    });
    expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = response.body!.getReader();
    await new Promise((r) => setTimeout(r, 200));
    const sent = await send(sessionId, 'over sse');
    let text = '';
    while (!text.includes('over sse')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    const data = text.split('\n').find((line) => line.startsWith('data:') && line.includes('over sse'))!;
    expect(JSON.parse(data.slice(5)).data.sessionEvents).toEqual({ eventId: sent.data.sendMessage.eventId, sequence: 1, message: { body: 'over sse' } });
  });

  it('takes the token from connectionParams.headers or from the operation\'s extensions.headers (GraphiQL)', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const token = `Bearer ${await t.token('alice')}`;
    const received: string[][] = [[], []];
    const clients = [
      createClient({ url: t.app.graphqlUrl.replace('http', 'ws'), webSocketImpl: WebSocket, connectionParams: { headers: { Authorization: token } } }),
      createClient({ url: t.app.graphqlUrl.replace('http', 'ws'), webSocketImpl: WebSocket }),
    ];
    const extensions = [undefined, { headers: { Authorization: token } }];
    const stops = clients.map((client, i) =>
      client.subscribe(
        { query: SESSION_EVENTS, variables: { sessionId }, ...(extensions[i] ? { extensions: extensions[i] } : {}) },
        { next: (r) => received[i]!.push(JSON.stringify(r)), error: (e) => received[i]!.push(`error ${JSON.stringify(e)}`), complete: () => {} },
      ),
    );
    try {
      await new Promise((r) => setTimeout(r, 300));
      await send(sessionId, 'with header token');
      await until(async () => received.every((r) => r.length > 0));
      for (const r of received) expect(r[0]).toContain('with header token');
    } finally {
      stops.forEach((stop) => stop());
      for (const client of clients) await client.dispose();
    }
  });

  it('releases the bus listener of every subscription that ends', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'alice');
    const before = flaky.activeListeners;
    const subs = [await listen(SESSION_EVENTS, { sessionId }), await listen(PROJECT_EVENTS, { projectId })];
    expect(flaky.activeListeners).toBe(before + 2);
    for (const s of subs) await s.stop();
    await until(async () => flaky.activeListeners === before);
  });
});

describe('wake-ups inside one process (OUTBOX_WAKE=in-process, as behind PgBouncer)', () => {
  it('publishes right after a commit and right after a reprocess, with no LISTEN and no poll in between', async () => {
    const bus = createFlakyBus();
    const app = await startTestApp({ OUTBOX_WAKE: 'in-process', OUTBOX_POLL_INTERVAL_MS: '600000', OUTBOX_MAX_ATTEMPTS: '1' }, { bus: bus.bus });
    try {
      const { projectId, sessionId } = await createProjectFixture(app, 'alice');
      const sub = await subscribe(app.app.graphqlUrl, await app.token('alice'), SESSION_EVENTS, { sessionId });
      try {
        expect(app.app.publisher!.status()).toMatchObject({ listening: false, listenEnabled: false });
        await app.gql(SEND_MESSAGE, { sessionId, body: 'woken by the commit' }, { as: 'alice' });
        await sub.waitForCount(1);

        bus.down = true;
        await app.gql(SEND_MESSAGE, { sessionId, body: 'fails once' }, { as: 'alice' });
        await until(async () => (await app.gql('query($p: ID!) { outboxStatus(projectId: $p) { failed } }', { p: projectId }, { as: 'alice' })).data.outboxStatus.failed === 1);
        bus.down = false;
        await app.gql('mutation($p: ID!) { reprocessFailedEvents(projectId: $p) { count } }', { p: projectId }, { as: 'alice' });
        await sub.waitForCount(2);
        expect(sub.events.map((e) => e.message?.body)).toEqual(['woken by the commit', 'fails once']);
      } finally {
        await sub.stop();
      }
    } finally {
      await app.stop();
    }
  });
});

describe('graceful shutdown', () => {
  it('ends subscriptions, finishes or releases the batch in flight, and leaves no event claimed', async () => {
    const bus = createFlakyBus();
    const app = await startTestApp(FAST, { bus: bus.bus });
    const client = await connect(app.db.url);
    try {
      const { sessionId } = await createProjectFixture(app, 'alice');
      const sub = await subscribe(app.app.graphqlUrl, await app.token('alice'), SESSION_EVENTS, { sessionId });
      bus.delayMs = 300; // a slow bus, so a batch is in flight when stop is called
      await Promise.all(Array.from({ length: 20 }, (_, i) => app.gql(SEND_MESSAGE, { sessionId, body: `m${i}` }, { as: 'alice' })));
      await until(async () => Number((await client.query('select count(*) from outbox_event_status where claim_token is not null')).rows[0].count) > 0);
      await app.app.stop();
      await sub.waitFor((s) => s.completed);
      const rows = (await client.query('select status, claim_token from outbox_event_status')).rows;
      expect(rows.filter((r) => r.claim_token !== null)).toEqual([]);
      expect(rows.every((r) => r.status === 'published' || r.status === 'pending')).toBe(true);
      expect(app.app.publisher!.status().running).toBe(false);
      await sub.stop();
    } finally {
      await client.end();
      await app.stop();
    }
  });
});
