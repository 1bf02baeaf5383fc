import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parseScrape, captureLogs, eventually, scrape } from './support/observability.ts';
import { startSchemaServer, type SchemaServer } from './support/schema-server.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { PROJECT_EVENTS } from './support/subscriber.ts';

let s: SchemaServer;
const logs = captureLogs();

beforeAll(async () => {
  s = await startSchemaServer(logs.logger);
});
afterAll(async () => {
  await s?.stop();
});

const gauges = async () => {
  const metrics = parseScrape((await s.server.metrics.scrape()).body);
  return {
    clients: metrics.value('graphql_ws_connected_clients'),
    ws: metrics.value('graphql_active_subscriptions', { transport: 'ws' }),
    sse: metrics.value('graphql_active_subscriptions', { transport: 'sse' }),
    subscriptionsStarted: metrics.value('graphql_operations_total', { operation_name: 'Ticks', operation_type: 'subscription', outcome: 'success' }),
  };
};

function wsClient(): Client {
  return createClient({ url: s.wsUrl, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0 });
}

describe('graphql-ws connections and subscriptions', () => {
  it('count a connected client and its open subscriptions, and let go of both when they end', async () => {
    expect(await gauges()).toMatchObject({ clients: 0, ws: 0, sse: 0 });
    const client = wsClient();
    try {
      await eventually(async () => expect((await gauges()).clients).toBe(1));

      const first = client.iterate({ query: 'subscription Ticks { ticks }' });
      const second = client.iterate({ query: 'subscription Ticks { ticks }' });
      expect((await first.next()).value).toEqual({ data: { ticks: 0 } });
      expect((await second.next()).value).toEqual({ data: { ticks: 0 } });
      expect(await gauges()).toMatchObject({ clients: 1, ws: 2, sse: 0, subscriptionsStarted: 2 });

      // The client completes one subscription: the server ends that stream.
      await first.return?.();
      await eventually(async () => expect((await gauges()).ws).toBe(1));
      expect((await second.next()).done).toBe(false);
    } finally {
      // The socket goes away with a subscription still open.
      await client.dispose();
    }
    await eventually(async () => expect(await gauges()).toMatchObject({ clients: 0, ws: 0 }));
    const lines = logs.records().filter((line) => line.transport === 'ws' && line.operationName === 'Ticks');
    expect(lines.filter((line) => line.msg === 'subscription started')).toHaveLength(2);
    expect(lines.filter((line) => line.msg === 'subscription ended')).toHaveLength(2);
  });

  it('let go of a subscription whose source stream throws', async () => {
    const client = wsClient();
    try {
      const failing = client.iterate({ query: 'subscription Failing { failing }' });
      expect((await failing.next()).value).toEqual({ data: { failing: 1 } });
      await expect(failing.next()).rejects.toBeDefined();
      await eventually(async () => expect((await gauges()).ws).toBe(0));
    } finally {
      await client.dispose();
    }
    await eventually(async () => expect((await gauges()).clients).toBe(0));
  });

  it('count queries over the socket as operations and log them with the connection request id', async () => {
    const client = wsClient();
    try {
      const result = client.iterate({ query: 'query OverSocket { logged }' });
      expect((await result.next()).value).toEqual({ data: { logged: 'ok' } });
    } finally {
      await client.dispose();
    }
    const metrics = parseScrape((await s.server.metrics.scrape()).body);
    expect(metrics.value('graphql_operations_total', { operation_name: 'OverSocket', operation_type: 'query', outcome: 'success' })).toBe(1);
    const completed = logs.records().find((line) => line.msg === 'graphql operation completed' && line.operationName === 'OverSocket');
    const fromResolver = logs.records().find((line) => line.probe === 'resolver');
    expect(completed?.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(fromResolver?.requestId).toBe(completed?.requestId);
  });
});

describe('server-sent events', () => {
  it('count an SSE subscription while its response is open', async () => {
    const abort = new AbortController();
    const response = await fetch(`${s.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: 'subscription Ticks { ticks }' }),
      signal: abort.signal,
    });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toMatch(/ticks/);
    await eventually(async () => expect((await gauges()).sse).toBe(1));
    abort.abort();
    await reader.cancel().catch(() => undefined);
    await eventually(async () => expect((await gauges()).sse).toBe(0));
    const line = await eventually(() => {
      const found = logs.records().find((record) => record.msg === 'request completed' && record.operationType === 'subscription');
      expect(found).toBeDefined();
      return found!;
    });
    expect(line).toMatchObject({ operationName: 'Ticks', outcome: 'success', path: '/graphql' });
  });
});

describe('subscription groups (one execution per event per group)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t?.stop();
  });
  const send = (sessionId: string, body: string) => t.gql(SEND_MESSAGE, { sessionId, body }, { as: 'alice' });

  it('sends every subscriber of a group the same frame, from one execution per event', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'alice', ['bob', 'dave']);
    const frames = new Map<string, string[]>();
    const sockets: WebSocket[] = [];
    try {
      for (const user of ['alice', 'bob', 'dave']) {
        const socket = new WebSocket(t.app.graphqlUrl.replace(/^http/, 'ws'), 'graphql-transport-ws');
        sockets.push(socket);
        frames.set(user, []);
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.on('message', (data) => {
            const text = String(data);
            if (text.includes('connection_ack')) return resolve();
            frames.get(user)!.push(text);
          });
          socket.once('open', async () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${await t.token(user)}` } })));
        });
        socket.send(JSON.stringify({ id: `sub-${user}`, type: 'subscribe', payload: { query: PROJECT_EVENTS, variables: { projectId } } }));
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      const before = await scrape(t.app.url);
      await send(sessionId, 'one frame');
      await send(sessionId, 'another');
      const deadline = Date.now() + 10_000;
      while ([...frames.values()].some((list) => list.length < 2) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      const after = await scrape(t.app.url);

      // Byte for byte the same, but for the subscription id each client chose.
      const normalized = [...frames.entries()].map(([user, list]) => list.map((frame) => frame.replace(`"sub-${user}"`, '"ID"')));
      expect(normalized[0]).toHaveLength(2);
      expect(normalized[1]).toEqual(normalized[0]);
      expect(normalized[2]).toEqual(normalized[0]);
      expect(JSON.parse(normalized[0]![0]!).payload.data.projectEvents.message.body).toBe('one frame');

      const delta = (name: string) => (after.value(name) ?? 0) - (before.value(name) ?? 0);
      // Two events, each executed once for the group of three, and six frames sent.
      expect(delta('subscription_group_subscribers_count')).toBe(2);
      expect(delta('subscription_group_subscribers_sum')).toBe(6);
      expect(delta('subscription_frames_sent_total')).toBe(6);
      // Each bus event was handed to the three streams of the project on this instance.
      expect(delta('subscription_event_fanout_count')).toBe(2);
      expect(delta('subscription_event_fanout_sum')).toBe(6);
    } finally {
      for (const socket of sockets) socket.terminate();
    }
  });
});
