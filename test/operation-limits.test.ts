import { request as httpRequest } from 'node:http';
import { connect as connectSocket } from 'node:net';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, startTestAppWithClient, type GqlResult, type TestApp } from './support/app.ts';
import { connect } from './support/database.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { TestSubscriber } from './support/subscriber.ts';

let t: TestApp;
let db: pg.Client;
let fixture: Awaited<ReturnType<typeof createProjectFixture>>;
let token: string;

beforeAll(async () => {
  ({ t, db } = await startTestAppWithClient());
  fixture = await createProjectFixture(t, 'alice');
  token = await t.token('alice');
});
afterAll(async () => {
  await t?.stop();
});

async function post(body: unknown, headers: Record<string, string> = {}): Promise<GqlResult<any>> {
  const response = await fetch(t.app.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${token}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, ...((await response.json()) as object) };
}

const rowCounts = async () => Number((await db.query('select (select count(*) from message) + (select count(*) from event_outbox) as n')).rows[0].n);

/** project → sessions → nodes → project → … `levels` times: valid, and as deep as asked. */
function deepProjectQuery(levels: number, first = 100): string {
  let selection = 'id';
  for (let i = 0; i < levels; i++) selection = i % 2 === 0 ? `sessions(first: ${first}) { nodes { ${selection} } }` : `project { ${selection} }`;
  return `query($id: ID!) { project(id: $id) { ${selection} } }`;
}

/** What a rejected request must look like: a 4xx, the code, no stack or SQL, the server still up. */
async function expectRejected(result: GqlResult<any>, code: string, status = 400) {
  expect(result.status).toBe(status);
  expect(errorCode(result)).toBe(code);
  expect(result.errors?.[0]?.extensions).not.toHaveProperty('http');
  expect(JSON.stringify(result)).not.toMatch(/at .*\.ts:\d+|stack|select |insert /i);
  const live = await fetch(`${t.app.url}/health/live`);
  expect(live.status).toBe(200);
}

describe('the attacks of a request that asks too much', () => {
  it('a query 40 levels deep with first: 100 is refused for its depth', async () => {
    const result = await post({ query: deepProjectQuery(40), variables: { id: fixture.projectId } });
    await expectRejected(result, 'QUERY_TOO_COMPLEX');
    expect(result.errors?.[0]?.extensions).toMatchObject({ limit: 'depth', max: 12 });
  });

  it('1,000 aliases of project → sessions → messages(first: 100) are refused before they run', async () => {
    const tree = 'project(id: $id) { sessions(first: 100) { nodes { messages(first: 100) { nodes { id body } } } } }';
    const query = `query($id: ID!) { ${Array.from({ length: 1000 }, (_, i) => `a${i}: ${tree}`).join(' ')} }`;
    await expectRejected(await post({ query, variables: { id: fixture.projectId } }), 'QUERY_TOO_COMPLEX');
  });

  it('aliases are counted even where the document is small enough to parse', async () => {
    const query = `query($id: ID!) { ${Array.from({ length: 25 }, (_, i) => `a${i}: project(id: $id) { id }`).join(' ')} }`;
    const result = await post({ query, variables: { id: fixture.projectId } });
    await expectRejected(result, 'QUERY_TOO_COMPLEX');
    expect(result.errors?.[0]?.extensions).toMatchObject({ limit: 'aliases' });
  });

  // A backward page (`last`) costs what the forward page of the same size does.
  it.each(['first', 'last'])('a cost that multiplies page sizes (%s) is refused, the same shape with small pages runs', async (size) => {
    const query = (n: number) =>
      `query($id: ID!) { project(id: $id) { sessions(${size}: ${n}) { nodes { messages(${size}: ${n}) { nodes { id body role createdAt } } } } } }`;
    const expensive = await post({ query: query(100), variables: { id: fixture.projectId } });
    await expectRejected(expensive, 'QUERY_TOO_COMPLEX');
    expect(expensive.errors?.[0]?.extensions).toMatchObject({ limit: 'cost', max: 10_000 });
    expect(expensive.errors?.[0]?.extensions?.cost).toBeGreaterThan(10_000);

    const cheap = await post({ query: query(10), variables: { id: fixture.projectId } });
    expect(cheap.errors).toBeUndefined();
    expect(cheap.data.project.sessions.nodes).toHaveLength(1);
  });

  it('the cost reads page sizes from the variables of each request, whatever ran the same document before', async () => {
    const query = 'query($id: ID!, $n: Int) { project(id: $id) { sessions(first: $n) { nodes { messages(first: $n) { nodes { id body } } } } } }';
    expect((await post({ query, variables: { id: fixture.projectId, n: 5 } })).errors).toBeUndefined();
    await expectRejected(await post({ query, variables: { id: fixture.projectId, n: 100 } }), 'QUERY_TOO_COMPLEX');
    const cheap = await post({ query, variables: { id: fixture.projectId, n: 5 } });
    expect(cheap.errors, JSON.stringify(cheap.errors)).toBeUndefined();
  });

  it('too many directives are refused', async () => {
    const query = `{ viewer { userId ${'@include(if: true) '.repeat(30)} } }`;
    const result = await post({ query });
    await expectRejected(result, 'QUERY_TOO_COMPLEX');
    expect(result.errors?.[0]?.extensions).toMatchObject({ limit: 'directives' });
  });

  it('1,000 aliased sendMessage fields write nothing', async () => {
    const before = await rowCounts();
    const fields = Array.from({ length: 1000 }, (_, i) => `m${i}: sendMessage(input: { sessionId: $s, body: "spam ${i}" }) { eventId }`);
    await expectRejected(await post({ query: `mutation($s: ID!) { ${fields.join(' ')} }`, variables: { s: fixture.sessionId } }), 'QUERY_TOO_COMPLEX');
    expect(await rowCounts()).toBe(before);
  });

  it('a request runs at most three mutation fields, fragments included, and a refused one writes nothing', async () => {
    const before = await rowCounts();
    const field = (i: number) => `m${i}: sendMessage(input: { sessionId: $s, body: "hello ${i}" }) { eventId }`;
    const four = `mutation($s: ID!) { ${field(0)} ...More } fragment More on Mutation { ${field(1)} ${field(2)} ${field(3)} }`;
    const refused = await post({ query: four, variables: { s: fixture.sessionId } });
    await expectRejected(refused, 'QUERY_TOO_COMPLEX');
    expect(refused.errors?.[0]?.extensions).toMatchObject({ limit: 'mutationFields', max: 3 });
    expect(await rowCounts()).toBe(before);

    const three = await post({ query: `mutation($s: ID!) { __typename ${field(0)} ${field(1)} ${field(2)} }`, variables: { s: fixture.sessionId } });
    expect(three.errors).toBeUndefined();
    expect(await rowCounts()).toBe(before + 6);
  });
});

describe('malformed requests are client errors', () => {
  it('a list literal nested 3,000 deep is refused, not a stack overflow', async () => {
    const query = `{ viewer(x: ${'['.repeat(3000)}1${']'.repeat(3000)}) { userId } }`;
    const result = await post({ query });
    await expectRejected(result, 'QUERY_TOO_COMPLEX');
    expect(['tokens', 'nesting']).toContain(result.errors?.[0]?.extensions?.limit);
  });

  it('selections nested 5,000 deep are refused at the token limit', async () => {
    await expectRejected(await post({ query: `{${'a{'.repeat(5000)}b${'}'.repeat(5001)}` }), 'QUERY_TOO_COMPLEX');
  });

  it('a GET whose variables are not JSON is 400 BAD_REQUEST', async () => {
    const response = await fetch(`${t.app.graphqlUrl}?query=${encodeURIComponent('{ viewer { userId } }')}&variables=%7Bnope`, {
      headers: { accept: 'application/json', authorization: `Bearer ${token}`, 'x-graphql-yoga-csrf': '1' },
    });
    await expectRejected({ status: response.status, ...((await response.json()) as object) }, 'BAD_REQUEST');
  });

  it('a body over the limit is refused with 413 before it is read', async () => {
    const before = await rowCounts();
    const body = JSON.stringify({ query: SEND_MESSAGE, variables: { sessionId: fixture.sessionId, body: 'x'.repeat(200_000) } });
    await expectRejected(await post(body), 'PAYLOAD_TOO_LARGE', 413);
    expect(await rowCounts()).toBe(before);
  });

  it('a body with no declared length is counted as it streams: over the limit 413, under it served', async () => {
    const url = new URL(t.app.graphqlUrl);
    const chunked = (body: string) =>
      new Promise<GqlResult<any>>((resolve, reject) => {
        const headers = { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${token}`, 'transfer-encoding': 'chunked' };
        const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers, agent: false }, (res) => {
          let text = '';
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode!, ...JSON.parse(text) }));
        });
        req.on('error', reject);
        for (let i = 0; i < body.length; i += 16_384) req.write(body.slice(i, i + 16_384));
        req.end();
      });
    const before = await rowCounts();
    const big = JSON.stringify({ query: SEND_MESSAGE, variables: { sessionId: fixture.sessionId, body: 'x'.repeat(200_000) } });
    // The server answers as soon as the limit is crossed and closes the connection with the rest
    // unread, so the client may see a reset instead of the 413 it was sent.
    const refused = await chunked(big).catch((error: NodeJS.ErrnoException) => error);
    if (refused instanceof Error) expect(refused.code).toMatch(/ECONNRESET|EPIPE/);
    else await expectRejected(refused, 'PAYLOAD_TOO_LARGE', 413);
    expect(await rowCounts()).toBe(before);
    const small = await chunked(JSON.stringify({ query: '{ viewer { userId } }' }));
    expect(small).toMatchObject({ status: 200, data: { viewer: { userId: 'alice' } } });
  });

  // A declared length is not counted again: this shows nothing gets past it by declaring less.
  it('a body longer than its declared length is read only as far as declared: a client error, nothing written', async () => {
    const url = new URL(t.app.graphqlUrl);
    const before = await rowCounts();
    const body = JSON.stringify({ query: SEND_MESSAGE, variables: { sessionId: fixture.sessionId, body: 'x'.repeat(200_000) } });
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connectSocket({ host: url.hostname, port: Number(url.port) }, () => {
        socket.write(
          `POST ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\naccept: application/json\r\n` +
            `authorization: Bearer ${token}\r\ncontent-length: 100\r\nconnection: close\r\n\r\n${body}`,
        );
      });
      let text = '';
      socket.on('data', (chunk) => (text += chunk));
      socket.on('end', () => resolve(text));
      socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? resolve(text) : reject(error)));
    });
    // The first 100 bytes are a JSON body cut short; whatever follows is not a request.
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).not.toMatch(/at .*\.ts:\d+|stack/i);
    expect(await rowCounts()).toBe(before);
    expect((await fetch(`${t.app.url}/health/live`)).status).toBe(200);
  });
});

describe('over graphql-ws', () => {
  it('a subscription document over the limits is answered with the code, and the socket stays usable', async () => {
    const deep = `subscription($p: ID!) { projectEvents(projectId: $p) { ... on MessageCreatedEvent { message { session { project { sessions { nodes { project { sessions { nodes { project { sessions { nodes { id } } } } } } } } } } } } } }`;
    const subscriber = new TestSubscriber(t.app.graphqlUrl, token);
    try {
      await subscriber.start(deep, { p: fixture.projectId });
      await subscriber.waitFor((s) => s.errors.length > 0);
      expect(subscriber.errors[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'depth' });
      expect(subscriber.errors[0]?.extensions).not.toHaveProperty('http');
    } finally {
      await subscriber.stop();
    }
  });

  it.each([
    ['40 levels deep', () => ({ query: deepProjectQuery(40), variables: { id: fixture.projectId } })],
    ['1,000 aliases', () => ({ query: `{ ${Array.from({ length: 1000 }, (_, i) => `a${i}: viewer { userId }`).join(' ')} }`, variables: {} })],
    ['a cost by page sizes', () => ({ query: 'query($id: ID!) { project(id: $id) { sessions(first: 100) { nodes { messages(first: 100) { nodes { id body } } } } } }', variables: { id: fixture.projectId } })],
    // Written compactly so that the message stays under WS_MAX_MESSAGE_BYTES (a larger one closes the socket with 1009).
    ['1,000 aliased sendMessage', () => ({ query: `mutation($s:ID!){${Array.from({ length: 1000 }, (_, i) => `m${i}:sendMessage(input:{sessionId:$s,body:"x"}){eventId}`).join(' ')}}`, variables: { s: fixture.sessionId } })],
    ['four sendMessage fields', () => ({ query: `mutation($s: ID!) { ${[0, 1, 2, 3].map((i) => `m${i}: sendMessage(input: { sessionId: $s, body: "ws ${i}" }) { eventId }`).join(' ')} }`, variables: { s: fixture.sessionId } })],
    ['a list literal nested 3,000 deep', () => ({ query: `{ viewer(x: ${'['.repeat(3000)}1${']'.repeat(3000)}) { userId } }`, variables: {} })],
  ])('a query or mutation of %s over graphql-ws is refused with the code and writes nothing', async (_name, build) => {
    const before = await rowCounts();
    const { query, variables } = build();
    const subscriber = new TestSubscriber(t.app.graphqlUrl, token);
    try {
      await subscriber.start(query, variables);
      await subscriber.waitFor((s) => s.errors.length > 0);
      expect(subscriber.errors[0]?.extensions?.code, JSON.stringify(subscriber.errors)).toBe('QUERY_TOO_COMPLEX');
      expect(subscriber.errors[0]?.extensions).not.toHaveProperty('http');
    } finally {
      await subscriber.stop();
    }
    expect(await rowCounts()).toBe(before);
  });

  it('a document over the token limit is answered with the code', async () => {
    const subscriber = new TestSubscriber(t.app.graphqlUrl, token);
    try {
      await subscriber.start(`subscription { ${'a{'.repeat(5000)}b${'}'.repeat(5000)} }`, {});
      await subscriber.waitFor((s) => s.errors.length > 0);
      expect(subscriber.errors[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'tokens' });
    } finally {
      await subscriber.stop();
    }
  });
});

describe('the execution deadline', () => {
  let slow: TestApp;
  let slowFixture: Awaited<ReturnType<typeof createProjectFixture>>;

  beforeAll(async () => {
    slow = await startTestApp({ OPERATION_TIMEOUT_MS: '300', GRAPHQL_MAX_TOKENS: '1000000' });
    slowFixture = await createProjectFixture(slow, 'alice');
  });
  afterAll(async () => {
    await slow?.stop();
  });

  it('a query stuck in the database past the deadline is answered with TIMEOUT and its statement is cancelled', async () => {
    const locker = await connect(slow.db.url);
    try {
      await locker.query('begin');
      await locker.query('lock table message in access exclusive mode');
      const started = Date.now();
      const result = await slow.gql('query($id: ID!) { chatSession(id: $id) { messages(first: 5) { nodes { id } } } }', { id: slowFixture.sessionId }, { as: 'alice' });
      expect(result.status).toBe(503);
      expect(errorCode(result)).toBe('TIMEOUT');
      expect(Date.now() - started).toBeLessThan(5_000);
      // PostgreSQL ends the waiting statement at the same deadline: nothing of ours is left waiting on the lock.
      const deadlineAt = Date.now() + 5_000;
      let waiting = 1;
      while (waiting > 0 && Date.now() < deadlineAt) {
        const rows = await locker.query(`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()`);
        waiting = rows.rows[0].n;
        if (waiting > 0) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(waiting).toBe(0);
    } finally {
      await locker.query('rollback');
      await locker.end();
    }
    // The next operation runs as usual.
    const after = await slow.gql('query($id: ID!) { chatSession(id: $id) { messages(first: 5) { nodes { id } } } }', { id: slowFixture.sessionId }, { as: 'alice' });
    expect(after.errors).toBeUndefined();
  });

  it('without the token limit, nesting that would exhaust the parser stack is still a client error', async () => {
    const response = await fetch(slow.app.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query: `{ viewer(x: ${'['.repeat(20_000)}1${']'.repeat(20_000)}) { userId } }` }),
    });
    const result = { status: response.status, ...((await response.json()) as object) } as GqlResult<unknown>;
    expect(result.status).toBe(400);
    expect(errorCode(result)).toBe('QUERY_TOO_COMPLEX');
    expect(result.errors?.[0]?.extensions).toMatchObject({ limit: 'nesting' });
  });
});
