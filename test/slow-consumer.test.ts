import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestAppWithClient, type TestApp } from './support/app.ts';
import { createProjectFixture } from './support/fixtures.ts';
import { scrape } from './support/observability.ts';
import { insertEvents, seedMessage } from './support/outbox-seed.ts';

// A client that stops reading its socket while events keep coming: the server must end the
// subscription once SUBSCRIPTION_BUFFER_SIZE events wait, not buffer without bound (docs/design-notes.md#iterator-leaks).
let t: TestApp;
let db: pg.Client;

beforeAll(async () => {
  ({ t, db } = await startTestAppWithClient({ SUBSCRIPTION_BUFFER_SIZE: '20', OUTBOX_POLL_INTERVAL_MS: '50', WS_KEEPALIVE_MS: '0' }));
});
afterAll(() => t?.stop());

describe('a client that stops reading', () => {
  it('has its subscription ended with SLOW_CONSUMER and the last delivered eventId, and the bus listener released', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'alice');
    const socket = new WebSocket(t.app.graphqlUrl.replace('http', 'ws'), 'graphql-transport-ws');
    const messages: any[] = [];
    socket.on('message', (data) => messages.push(JSON.parse(String(data))));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${await t.token('alice')}` } }));
    while (!messages.some((m) => m.type === 'connection_ack')) await new Promise((r) => setTimeout(r, 10));
    socket.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: { query: 'subscription($s: ID!) { sessionEvents(sessionId: $s) { eventId ... on MessageCreatedEvent { message { body } } } }', variables: { s: sessionId } },
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    // Stop reading: the kernel buffers fill, graphql-ws's sends stop completing, events queue up.
    (socket as any)._socket.pause();

    // 1,500 committed events of 8,000 characters each (12 MB), numbered as the write path would.
    const body = 'x'.repeat(8000);
    await insertEvents(
      db,
      Array.from({ length: 1500 }, (_, i) => ({
        event: seedMessage(projectId, sessionId, { authorUserId: 'alice', body }),
        sequence: i + 1,
        projectSequence: i + 1,
      })),
    );
    await db.query('update chat_session set event_sequence = 1500 where id = $1', [sessionId]);
    await db.query('update project set event_sequence = 1500 where id = $1', [projectId]);

    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && (await scrape(t.app.url)).value('subscriptions_ended_slow_consumer_total') !== 1) {
      await new Promise((r) => setTimeout(r, 100));
    }
    (socket as any)._socket.resume();
    while (Date.now() < deadline && !messages.some((m) => m.id === '1' && (m.type === 'complete' || m.payload?.errors))) {
      await new Promise((r) => setTimeout(r, 50));
    }
    socket.close();

    const delivered = messages.filter((m) => m.type === 'next' && m.payload?.data?.sessionEvents);
    const ending = messages.find((m) => m.type === 'next' && m.payload?.errors);
    expect(delivered.length).toBeGreaterThan(0);
    expect(delivered.length).toBeLessThan(1500);
    expect(ending.payload.errors[0].extensions).toEqual({
      code: 'SLOW_CONSUMER',
      resumeAfter: delivered.at(-1).payload.data.sessionEvents.eventId,
    });
    expect(messages.at(-1)).toMatchObject({ id: '1', type: 'complete' });
    expect((await scrape(t.app.url)).value('graphql_active_subscriptions', { transport: 'ws' }) ?? 0).toBe(0);
  });
});
