import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { connect } from './support/database.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';

const APP_ORIGIN = 'https://app.example.com';
const OTHER_ORIGIN = 'http://localhost:5173';

let t: TestApp;
let open: TestApp;
let closed: TestApp;
let db: pg.Client;

beforeAll(async () => {
  t = await startTestApp({ CORS_ORIGINS: `${APP_ORIGIN},${OTHER_ORIGIN}` });
  // The same database, served with CORS_ORIGINS=* and with no CORS_ORIGINS at all.
  open = await startTestApp({ CORS_ORIGINS: '*' }, { db: t.db });
  closed = await startTestApp({}, { db: t.db });
  db = await connect(t.db.url);
});
afterAll(async () => {
  await db?.end();
  await closed?.stop();
  await open?.stop();
  await t?.stop();
});

const jsonQuery = (app: TestApp, headers: Record<string, string> = {}) =>
  fetch(app.app.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query: '{ __typename }' }) });

const preflight = (app: TestApp, origin: string) =>
  fetch(app.app.graphqlUrl, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
  });

describe('CORS', () => {
  it('answers an allowed Origin with exactly that origin, without credentials', async () => {
    for (const origin of [APP_ORIGIN, OTHER_ORIGIN]) {
      const response = await jsonQuery(t, { origin });
      expect(response.status).toBe(200);
      expect(response.headers.get('access-control-allow-origin')).toBe(origin);
      expect(response.headers.get('access-control-allow-credentials')).toBeNull();
      // The page may read the request id, to quote it when reporting a problem.
      expect(response.headers.get('access-control-expose-headers')).toBe('x-request-id');
    }
  });

  it('gives a disallowed Origin no access-control-allow-origin (not even "null")', async () => {
    for (const origin of ['https://evil.example', 'https://app.example.com.evil.example', 'null']) {
      const response = await jsonQuery(t, { origin });
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
      expect(response.headers.get('access-control-allow-credentials')).toBeNull();
    }
  });

  it('answers a preflight from an allowed origin with the methods and headers, and one from elsewhere with nothing', async () => {
    const allowed = await preflight(t, APP_ORIGIN);
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    expect(allowed.headers.get('access-control-allow-methods')).toBe('GET, POST');
    expect(allowed.headers.get('access-control-allow-headers')).toMatch(/authorization/);
    expect(Number(allowed.headers.get('access-control-max-age'))).toBeGreaterThan(0);

    const refused = await preflight(t, 'https://evil.example');
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    expect(refused.headers.get('access-control-allow-methods')).toBeNull();
  });

  it('by default allows no other origin, while a same-origin page (GraphiQL) still works', async () => {
    const foreign = await jsonQuery(closed, { origin: APP_ORIGIN });
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
    expect((await preflight(closed, APP_ORIGIN)).headers.get('access-control-allow-origin')).toBeNull();

    // What GraphiQL on this server sends: a JSON POST whose Origin is the server's own.
    const sameOrigin = await jsonQuery(closed, { origin: closed.app.url, authorization: `Bearer ${await closed.token('alice')}` });
    expect(sameOrigin.status).toBe(200);
    expect(await sameOrigin.json()).toEqual({ data: { __typename: 'Query' } });
  });

  it('with CORS_ORIGINS=* allows any origin, never with credentials', async () => {
    const response = await jsonQuery(open, { origin: 'https://anywhere.example' });
    expect(response.headers.get('access-control-allow-origin')).toBe('https://anywhere.example');
    expect(response.headers.get('vary')).toMatch(/origin/i);
    expect(response.headers.get('access-control-allow-credentials')).toBeNull();
  });
});

describe('CSRF prevention', () => {
  const messageCount = async (sessionId: string) => Number((await db.query('select count(*) from message where session_id = $1', [sessionId])).rows[0].count);
  const outboxCount = async (sessionId: string) => Number((await db.query('select count(*) from event_outbox where aggregate_id = $1', [sessionId])).rows[0].count);

  it.each([
    ['application/x-www-form-urlencoded', (body: { query: string; variables: object }) => new URLSearchParams({ query: body.query, variables: JSON.stringify(body.variables) })],
    [
      'multipart/form-data',
      (body: { query: string; variables: object }) => {
        const form = new FormData();
        form.set('operations', JSON.stringify(body));
        form.set('map', '{}');
        return form;
      },
    ],
    ['text/plain', (body: { query: string; variables: object }) => JSON.stringify(body)],
  ])('refuses a %s mutation without the header with a 4xx, and changes nothing', async (contentType, encode) => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const body = encode({ query: SEND_MESSAGE, variables: { sessionId, body: 'forged' } });
    const headers: Record<string, string> = { authorization: `Bearer ${await t.token('alice')}`, origin: 'https://evil.example' };
    // FormData sets its own content type, with the boundary.
    if (!(body instanceof FormData)) headers['content-type'] = contentType;
    const response = await fetch(t.app.graphqlUrl, { method: 'POST', headers, body });

    expect(response.status).toBe(403);
    const result = (await response.json()) as { errors: { message: string; extensions?: { code?: string } }[] };
    expect(result.errors[0]?.extensions?.code).toBe('BAD_REQUEST');
    expect(result.errors[0]?.message).toMatch(/x-graphql-yoga-csrf/);
    expect(await messageCount(sessionId)).toBe(0);
    expect(await outboxCount(sessionId)).toBe(0);
  });

  it('lets the same form-encoded mutation through with the header, which no page can add without a preflight', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const response = await fetch(t.app.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-graphql-yoga-csrf': '1', authorization: `Bearer ${await t.token('alice')}` },
      body: new URLSearchParams({ query: SEND_MESSAGE, variables: JSON.stringify({ sessionId, body: 'deliberate' }) }),
    });
    expect(response.status).toBe(200);
    expect(await messageCount(sessionId)).toBe(1);
  });

  it('needs the header on GET, also for SSE; a JSON POST (GraphiQL, clients, the docs curl example) needs none', async () => {
    const token = await t.token('alice');
    const url = `${t.app.graphqlUrl}?query=${encodeURIComponent('{ viewer { userId } }')}`;

    const bare = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    expect(bare.status).toBe(403);
    const withHeader = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'application/json', 'x-graphql-yoga-csrf': '1' } });
    expect(await withHeader.json()).toEqual({ data: { viewer: { userId: 'alice' } } });

    const sseBare = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    expect(sseBare.status).toBe(403);
    await sseBare.body?.cancel();
    const ssePost = await fetch(t.app.graphqlUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ viewer { userId } }' }),
    });
    expect(ssePost.status).toBe(200);
    expect(await ssePost.text()).toContain('"userId":"alice"');
  });

  it('still serves the GraphiQL page to a browser', async () => {
    const page = await fetch(t.app.graphqlUrl, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/graphiql/i);
  });
});
