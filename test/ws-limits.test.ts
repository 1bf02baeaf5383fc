import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/platform/config.ts';
import { MAX_MESSAGE_BODY_LENGTH } from '../src/domain/chat/chat.service.ts';
import { WsCloseCode } from '../src/platform/limits/ws-limits.ts';
import { startTestApp, type TestApp, useTestApp } from './support/app.ts';
import { eventually, parseScrape } from './support/observability.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { RawSocket, type ServerMessage } from './support/raw-socket.ts';
import { SESSION_EVENTS } from './support/subscriber.ts';
import { until } from './support/until.ts';

const LIMITS = {
  WS_MAX_SUBSCRIPTIONS_PER_CONNECTION: '2',
  MAX_SUBSCRIPTIONS_PER_USER: '3',
  WS_MAX_CONNECTIONS_PER_USER: '2',
  WS_CONNECTION_INIT_TIMEOUT_MS: '300',
  WS_MAX_MESSAGE_BYTES: '4096',
};

let t: TestApp;
const sockets: RawSocket[] = [];
const aborts: AbortController[] = [];

beforeAll(async () => {
  t = await startTestApp(LIMITS);
});
afterEach(async () => {
  for (const abort of aborts.splice(0)) abort.abort();
  for (const socket of sockets.splice(0)) await socket.close();
});
afterAll(async () => {
  await t?.stop();
});

const auth = async (userId: string) => ({ authorization: `Bearer ${await t.token(userId)}` });

async function open(userId: string | null): Promise<RawSocket> {
  const socket = await RawSocket.open(t.app.graphqlUrl, userId ? await auth(userId) : {});
  sockets.push(socket);
  return socket;
}

async function connect(userId: string) {
  const attempt = await RawSocket.connect(t.app.graphqlUrl, await auth(userId));
  sockets.push(attempt.socket);
  return attempt;
}

/** graphql-ws sends a refusal before execution as an `error` message, one from execution as a `next` with errors. */
/**
 * A socket for `userId` once one is admitted: the server may see a socket close a moment after its
 * client does, and until then one more socket is one too many.
 */
async function admitted(userId: string): Promise<RawSocket> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const { socket, acknowledged } = await connect(userId);
    if (acknowledged) return socket;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no socket admitted for ${userId}`);
}

const isRefusal = (id: string) => (m: ServerMessage) => m.id === id && (m.type === 'error' || (m.type === 'next' && m.payload?.errors !== undefined));
const errorsOf = (m: ServerMessage) => (m.type === 'error' ? m.payload : m.payload.errors);
/** A project whose session already has one message, so a subscription from the start proves it is live by replaying it. */
async function seededSession(owner: string, members: string[] = []): Promise<string> {
  const { sessionId } = await createProjectFixture(t, owner, members);
  const seed = await t.gql(SEND_MESSAGE, { sessionId, body: 'seed' }, { as: owner });
  expect(seed.errors).toBeUndefined();
  return sessionId;
}

/** Subscribes `id` from the session's start: 'live' once the first event is replayed to it, else the refusal's errors. */
async function start(socket: RawSocket, id: string, sessionId: string): Promise<'live' | unknown[]> {
  socket.subscribe(id, SESSION_EVENTS, { sessionId, afterSequence: 0 });
  const first = await socket.waitFor((m) => m.id === id && (m.type === 'next' || m.type === 'error'));
  return isRefusal(id)(first) ? errorsOf(first) : 'live';
}

/** Starts subscriptions until one is live (places are given back as the server sees streams end, a moment after the client). */
async function startOnceFree(socket: RawSocket, sessionId: string): Promise<void> {
  await until(async () => (await start(socket, `retry-${crypto.randomUUID()}`, sessionId)) === 'live');
}

/** Starts an SSE subscription and resolves once the server holds it (the response has begun). */
async function sse(userId: string, sessionId: string) {
  const abort = new AbortController();
  aborts.push(abort);
  const response = await fetch(t.app.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...(await auth(userId)) },
    body: JSON.stringify({ query: SESSION_EVENTS, variables: { sessionId, afterSequence: 0 } }),
    signal: abort.signal,
  });
  expect(response.status).toBe(200);
  return abort;
}

describe('subscriptions per connection', () => {
  it('refuses one more than the limit on that connection with TOO_MANY_SUBSCRIPTIONS, and gives the place back when one completes', async () => {
    const sessionId = await seededSession('alice');
    const socket = await open('alice');
    expect([await start(socket, '1', sessionId), await start(socket, '2', sessionId)]).toEqual(['live', 'live']);
    expect(await start(socket, '3', sessionId)).toEqual([
      expect.objectContaining({ extensions: { code: 'TOO_MANY_SUBSCRIPTIONS', limit: 2, scope: 'connection' } }),
    ]);

    socket.complete('1');
    await startOnceFree(socket, sessionId);
    expect(socket.closeCode).toBeNull();
  });
});

describe('subscriptions per user', () => {
  it('counts WebSocket and SSE subscriptions together, refuses one more with TOO_MANY_SUBSCRIPTIONS, and gives places back when they end', async () => {
    const sessionId = await seededSession('erin', ['bob']);
    const first = await open('erin');
    expect([await start(first, 'a', sessionId), await start(first, 'b', sessionId)]).toEqual(['live', 'live']);
    const overSse = await sse('erin', sessionId);

    const second = await open('erin');
    expect(await start(second, 'c', sessionId)).toEqual([
      expect.objectContaining({ extensions: { code: 'TOO_MANY_SUBSCRIPTIONS', limit: 3, scope: 'user' } }),
    ]);
    // Another user has places of their own.
    expect(await start(await open('bob'), 'bob', sessionId)).toBe('live');

    // The SSE client goes away: its place is free again.
    overSse.abort();
    await startOnceFree(second, sessionId);
    expect(await start(second, 'd', sessionId)).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ scope: 'user' }) })]);

    // The first socket closes with two open: both places are free again.
    await first.close();
    const third = await admitted('erin');
    await startOnceFree(third, sessionId);
    expect(await start(third, 'e', sessionId)).toBe('live');
  });
});

describe('connections per user', () => {
  it('closes one more than the limit with 4430, lets other users in, and admits the user again once one closes', async () => {
    // Users of their own: sockets of other tests may still be closing on the server's side.
    const [one, two] = await Promise.all([connect('cora'), connect('cora')]);
    expect([one.acknowledged, two.acknowledged]).toEqual([true, true]);

    const three = await connect('cora');
    expect(three).toMatchObject({ acknowledged: false, closeCode: WsCloseCode.TooManyConnections });
    expect(WsCloseCode.TooManyConnections).toBe(4430);
    expect((await connect('bob')).acknowledged).toBe(true);

    await one.socket.close();
    await admitted('cora');
  });

  it('counts a socket that sends its token per operation (as GraphiQL does) once its first operation names the user', async () => {
    const sessionId = await seededSession('dora');
    const gotIn = [await connect('dora'), await connect('dora')].map((attempt) => attempt.acknowledged);
    expect(gotIn).toEqual([true, true]);
    const anonymous = await open(null);
    anonymous.subscribe('1', SESSION_EVENTS, { sessionId }, { headers: await auth('dora') });
    expect((await anonymous.closed).code).toBe(WsCloseCode.TooManyConnections);
  });
});

describe('connection_init timeout', () => {
  it('closes a socket that never sends connection_init with 4408', async () => {
    const idle = await RawSocket.open(t.app.graphqlUrl, null);
    sockets.push(idle);
    const started = Date.now();
    expect(await idle.closed).toEqual({ code: 4408, reason: 'Connection initialisation timeout' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(WsCloseCode.ConnectionInitialisationTimeout).toBe(4408);
  });
});

describe('message size', () => {
  it('closes the socket with 1009 on a message over WS_MAX_MESSAGE_BYTES, and takes one just under it', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const socket = await open('alice');
    const withBody = (id: string, body: string) => JSON.stringify({ id, type: 'subscribe', payload: { query: SEND_MESSAGE, variables: { sessionId, body } } });
    const fits = withBody('fits', 'x'.repeat(4096 - withBody('fits', '').length));
    expect(Buffer.byteLength(fits)).toBe(4096);
    socket.send(fits);
    const result = await socket.waitFor((m) => m.id === 'fits' && m.type === 'next');
    expect(result.payload.errors).toBeUndefined();

    socket.send(withBody('too-big', 'x'.repeat(4097 - withBody('too-big', '').length)));
    expect((await socket.closed).code).toBe(WsCloseCode.MessageTooBig);
    expect(socket.of('too-big')).toEqual([]);
  });
});

describe('after all of the above', () => {
  it('counts no socket and no subscription once every client is gone, refused ones included', async () => {
    await eventually(async () => {
      const scrape = parseScrape((await t.app.metrics.scrape()).body);
      expect([
        scrape.value('graphql_ws_connected_clients'),
        scrape.value('graphql_active_subscriptions', { transport: 'ws' }),
        scrape.value('graphql_active_subscriptions', { transport: 'sse' }),
      ]).toEqual([0, 0, 0]);
    });
  });
});

describe('with the default limits', () => {
  const defaults = useTestApp();

  it('a message body of the longest allowed length in 4-byte characters fits in one WebSocket message', async () => {
    const { sessionId } = await createProjectFixture(defaults, 'alice');
    const socket = await RawSocket.open(defaults.app.graphqlUrl, { authorization: `Bearer ${await defaults.token('alice')}` });
    sockets.push(socket);
    const body = '😀'.repeat(MAX_MESSAGE_BODY_LENGTH);
    socket.send({ id: 'long', type: 'subscribe', payload: { query: SEND_MESSAGE, variables: { sessionId, body } } });
    const result = await socket.waitFor((m) => m.id === 'long' && m.type === 'next');
    expect(result.payload.data.sendMessage.message.body).toBe(body);
  });

  it('are documented defaults', () => {
    expect(loadConfig({}).abuse).toMatchObject({
      subscriptionsPerConnection: 50,
      subscriptionsPerUser: 100,
      connectionsPerUser: 20,
      connectionInitTimeoutMs: 3000,
      maxMessageBytes: 65536,
    });
  });
});
