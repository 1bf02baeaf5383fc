import { getOperationAST, parse } from 'graphql';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/platform/config.ts';
import { rootFieldCount } from '../src/platform/graphql/root-fields.ts';
import { errorCode, startTestApp, type TestApp, useTestApp, useTwoInstances } from './support/app.ts';
import { connect } from './support/database.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { RawSocket } from './support/raw-socket.ts';
import { SESSION_EVENTS, subscribe } from './support/subscriber.ts';

const REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';

/** One request with `count` sendMessage root fields, each with its own alias and body. */
function sendMany(prefix: string, count: number): string {
  const fields = Array.from({ length: count }, (_, i) => `m${i}: sendMessage(input: { sessionId: $sessionId, body: "${prefix} ${i}" }) { eventId }`);
  return `mutation($sessionId: ID!) { ${fields.join(' ')} }`;
}

/** POSTs as `userId` and keeps what a client of the HTTP API sees: status, headers and body. */
async function post(t: TestApp, userId: string, query: string, variables: Record<string, unknown>) {
  const response = await fetch(t.app.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${await t.token(userId)}` },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as any };
}

/** The rate limit counts root fields: these tests send more in one request than the default request limit allows. */
const MANY_FIELDS = { GRAPHQL_MAX_MUTATION_FIELDS: '20' };

describe('the mutation rate limit, in memory (no REDIS_URL)', () => {
  let t: TestApp;
  let db: pg.Client;
  // The fixture costs its owner 6 mutations (project, 2 members, 2 agents, session).
  const LIMIT = 8;

  beforeAll(async () => {
    t = await startTestApp({ ...MANY_FIELDS, RATE_LIMIT_MUTATIONS_PER_MINUTE: String(LIMIT) });
    db = await connect(t.db.url);
  });
  afterAll(async () => {
    await db?.end();
    await t?.stop();
  });

  const bodiesOf = async (userId: string) =>
    (await db.query('select body from message where author_user_id = $1 order by body', [userId])).rows.map((row) => row.body);
  const outboxRowsOf = async (userId: string) => Number((await db.query('select count(*) from event_outbox where user_id = $1', [userId])).rows[0].count);

  it('counts every root field, and refuses a request that would go over the budget whole: RATE_LIMITED, 429, nothing written', async () => {
    const { sessionId } = await createProjectFixture(t, 'olga', ['alice', 'bob']);

    const first = await post(t, 'alice', sendMany('first', 5), { sessionId });
    expect(first.status).toBe(200);
    expect(Object.keys(first.body.data)).toHaveLength(5);

    // 3 points are left; these 5 fields need 5.
    const refused = await post(t, 'alice', sendMany('second', 5), { sessionId });
    expect(refused.status).toBe(429);
    expect(refused.body.data ?? null).toBeNull();
    expect(refused.body.errors).toHaveLength(1);
    const error = refused.body.errors[0];
    expect(error.extensions).toEqual({ code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) });
    expect(error.extensions.retryAfterMs).toBeGreaterThan(0);
    expect(error.extensions.retryAfterMs).toBeLessThanOrEqual(60_000);
    expect(Number(refused.retryAfter)).toBe(Math.ceil(error.extensions.retryAfterMs / 1000));

    expect(await bodiesOf('alice')).toEqual(['first 0', 'first 1', 'first 2', 'first 3', 'first 4']);
    expect(await outboxRowsOf('alice')).toBe(5);

    // The refused attempt counted: the window is used up until it ends.
    expect(errorCode(await t.gql(SEND_MESSAGE, { sessionId, body: 'third' }, { as: 'alice' }))).toBe('RATE_LIMITED');
    expect(await bodiesOf('alice')).not.toContain('third');

    // Budgets are per user.
    const bobs = await t.gql(SEND_MESSAGE, { sessionId, body: 'from bob' }, { as: 'bob' });
    expect(bobs.errors).toBeUndefined();
    expect(await bodiesOf('bob')).toEqual(['from bob']);
  });

  it('counts mutations sent over graphql-ws in the same budget, and refuses them with the same error', async () => {
    // The fixture (project, member, 2 agents, session) leaves its owner 3 of 8 points.
    const { sessionId } = await createProjectFixture(t, 'quinn', ['rita']);
    const socket = await RawSocket.open(t.app.graphqlUrl, { authorization: `Bearer ${await t.token('quinn')}` });
    try {
      socket.send({ id: 'over', type: 'subscribe', payload: { query: sendMany('over ws', 4), variables: { sessionId } } });
      const refused = await socket.waitFor((m) => m.id === 'over' && m.type === 'next');
      expect(refused.payload.errors).toEqual([
        { message: expect.stringContaining('Too many mutations'), extensions: { code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) } },
      ]);
      expect(await bodiesOf('quinn')).toEqual([]);
    } finally {
      await socket.close();
    }
  });

  it('does not count requests without a valid token: they get UNAUTHENTICATED, never RATE_LIMITED', async () => {
    const { sessionId } = await createProjectFixture(t, 'pia');
    for (let i = 0; i < LIMIT + 2; i++) {
      expect(errorCode(await t.gql(SEND_MESSAGE, { sessionId, body: `anonymous ${i}` }))).toBe('UNAUTHENTICATED');
    }
  });
});

describe('the subscribe rate limit', () => {
  const t = useTestApp({ RATE_LIMIT_SUBSCRIBES_PER_MINUTE: '2' });

  it('refuses the subscription started over the budget with RATE_LIMITED and retryAfterMs', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const token = await t.token('alice');
    const started = [await subscribe(t.app.graphqlUrl, token, SESSION_EVENTS, { sessionId }), await subscribe(t.app.graphqlUrl, token, SESSION_EVENTS, { sessionId })];
    const third = await subscribe(t.app.graphqlUrl, token, SESSION_EVENTS, { sessionId });
    try {
      await third.waitFor((s) => s.completed);
      expect(third.errors).toEqual([
        expect.objectContaining({ extensions: { code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) } }),
      ]);
      // The two it did start are live.
      await t.gql(SEND_MESSAGE, { sessionId, body: 'still delivered' }, { as: 'alice' });
      for (const s of started) await s.waitForCount(1);
      expect(started.map((s) => s.completed)).toEqual([false, false]);
    } finally {
      for (const s of [...started, third]) await s.stop();
    }
  });
});

describe('two instances sharing Redis', () => {
  // Unique per run, so parallel test files and earlier runs never share these counters.
  const RATE_LIMIT_KEY_PREFIX = `test-rate-limit-${crypto.randomUUID()}`;
  const env = { ...MANY_FIELDS, REDIS_URL, RATE_LIMIT_KEY_PREFIX, RATE_LIMIT_MUTATIONS_PER_MINUTE: '10' };
  const two = useTwoInstances(env);

  it('draw on one budget per user: what is spent on A is gone on B', async () => {
    const { sessionId } = await createProjectFixture(two.first, 'olga', ['alice']);
    expect((await post(two.first, 'alice', sendMany('on a', 6), { sessionId })).status).toBe(200);
    expect((await post(two.second, 'alice', sendMany('on b', 4), { sessionId })).status).toBe(200);

    const onB = await post(two.second, 'alice', SEND_MESSAGE, { sessionId, body: 'one more on b' });
    const onA = await post(two.first, 'alice', SEND_MESSAGE, { sessionId, body: 'one more on a' });
    for (const refused of [onA, onB]) {
      expect(refused.status).toBe(429);
      expect(refused.body.errors[0].extensions.code).toBe('RATE_LIMITED');
    }
  });
});

describe('an instance whose Redis is unreachable', () => {
  let t: TestApp;

  beforeAll(async () => {
    // Nothing listens on port 1: every Redis command fails at once.
    t = await startTestApp({ ...MANY_FIELDS, REDIS_URL: 'redis://127.0.0.1:1', RATE_LIMIT_MUTATIONS_PER_MINUTE: '8' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('still holds the limit, counting in memory', async () => {
    const { sessionId } = await createProjectFixture(t, 'olga', ['alice']);
    expect((await post(t, 'alice', sendMany('without redis', 8), { sessionId })).status).toBe(200);
    const refused = await post(t, 'alice', SEND_MESSAGE, { sessionId, body: 'one more' });
    expect(refused.status).toBe(429);
    expect(refused.body.errors[0].extensions.code).toBe('RATE_LIMITED');
  });
});

describe('two instances without Redis', () => {
  const env = { ...MANY_FIELDS, RATE_LIMIT_MUTATIONS_PER_MINUTE: '10' };
  const two = useTwoInstances(env);

  it('each count on their own', async () => {
    const { sessionId } = await createProjectFixture(two.first, 'olga', ['alice']);
    expect((await post(two.first, 'alice', sendMany('on a', 10), { sessionId })).status).toBe(200);
    expect((await post(two.first, 'alice', SEND_MESSAGE, { sessionId, body: 'one more on a' })).status).toBe(429);
    expect((await post(two.second, 'alice', sendMany('on b', 10), { sessionId })).status).toBe(200);
  });
});

describe('what a mutation costs', () => {
  const cost = (source: string) => {
    const document = parse(source);
    return rootFieldCount(document, getOperationAST(document)!.selectionSet);
  };

  it('is one point per root field that runs, looking through fragments', () => {
    expect(cost('mutation { a: sendMessage(input: $i) { eventId } b: sendMessage(input: $i) { eventId } }')).toBe(2);
    expect(cost('mutation { ...Two c: createProject(input: $p) { id } } fragment Two on Mutation { a: sendMessage(input: $i) { eventId } b: sendMessage(input: $i) { eventId } }')).toBe(3);
    expect(cost('mutation { ... on Mutation { a: sendMessage(input: $i) { eventId } } d: switchAgent(input: $s) { switched } }')).toBe(2);
  });

  it('counts a response key once, as execution runs it once, and __typename not at all', () => {
    expect(cost('mutation { sendMessage(input: $i) { eventId } sendMessage(input: $i) { sequence } __typename }')).toBe(1);
    expect(cost('mutation { ...A ...A } fragment A on Mutation { createProject(input: $p) { id } }')).toBe(1);
  });
});

describe('rate limit settings', () => {
  it('default to limits no person typing reaches, and read 0 as off', () => {
    expect(loadConfig({}).abuse).toMatchObject({ mutationsPerMinute: 600, subscribesPerMinute: 300, rateLimitKeyPrefix: 'chat-outbox:rate-limit' });
    expect(loadConfig({ RATE_LIMIT_MUTATIONS_PER_MINUTE: '0', RATE_LIMIT_SUBSCRIBES_PER_MINUTE: '0' }).abuse).toMatchObject({ mutationsPerMinute: 0, subscribesPerMinute: 0 });
  });

  it.each([
    ['RATE_LIMIT_MUTATIONS_PER_MINUTE', '-1'],
    ['RATE_LIMIT_SUBSCRIBES_PER_MINUTE', 'lots'],
  ])('stop start-up with a message naming %s when it is %s', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });
});
