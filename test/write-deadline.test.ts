import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createWriteDeadline } from '../src/platform/http/write-deadline.ts';
import { startTestAppWithClient, type TestApp } from './support/app.ts';
import { FakeClock } from './support/fake-clock.ts';
import { createProjectFixture } from './support/fixtures.ts';
import { insertEvents, seedMessage, type SeedEvent } from './support/outbox-seed.ts';
import { until } from './support/until.ts';

// A subscriber that stops reading (or whose connection went half-open) must not hold its
// connection and buffers until TCP gives up: the write deadline cuts it.

describe('the write deadline', () => {
  function writer(queued: number[]) {
    let cut = false;
    return {
      get cut() {
        return cut;
      },
      // Each sweep reads the next figure; the last one stays.
      writer: { buffered: () => (queued.length > 1 ? queued.shift()! : (queued[0] ?? 0)), cut: () => void (cut = true) },
    };
  }

  it('cuts a connection whose queued output neither drains nor shrinks for the timeout, and no other', async () => {
    const clock = new FakeClock();
    const cuts: string[] = [];
    const deadline = createWriteDeadline({ timeoutMs: 1_000, clock, onCut: (kind) => cuts.push(kind) });
    const stuck = writer([0, 8_000]); // fills once, then stays full
    const draining = writer([8_000, 6_000, 4_000, 2_000, 1_000, 500, 400, 300, 200, 100, 0]);
    const idle = writer([0]);
    const gone = writer([8_000]);
    deadline.watch(stuck.writer, 'ws');
    deadline.watch(draining.writer, 'sse');
    deadline.watch(idle.writer, 'ws');
    const unwatch = deadline.watch(gone.writer, 'sse');
    unwatch(); // its connection closed
    await clock.advance(1_000);
    expect(stuck.cut).toBe(false); // full for 750 ms so far
    await clock.advance(500);
    expect(stuck.cut).toBe(true);
    expect(cuts).toEqual(['ws']);
    await clock.advance(5_000);
    expect([draining.cut, idle.cut, gone.cut]).toEqual([false, false, false]);
    deadline.stop();
  });

  it('watches nothing when turned off', async () => {
    const clock = new FakeClock();
    const deadline = createWriteDeadline({ timeoutMs: 0, clock, onCut: () => {} });
    const stuck = writer([8_000]);
    deadline.watch(stuck.writer, 'ws');
    await clock.advance(60_000);
    expect(stuck.cut).toBe(false);
    expect(clock.pending()).toEqual([]);
  });
});

describe('a graphql-ws subscriber that stopped reading', () => {
  let t: TestApp;
  let db: pg.Client;
  beforeAll(async () => {
    ({ t, db } = await startTestAppWithClient({ SUBSCRIPTION_WRITE_TIMEOUT_MS: '1000', SUBSCRIPTION_BUFFER_SIZE: '1000000', AGENT_RUNTIME_ENABLED: 'false' }));
  });
  afterAll(async () => {
    await t?.stop();
  });

  const cutCount = async () => {
    const text = await (await fetch(`${t.app.url}/metrics`)).text();
    return Number(/^subscriber_connections_cut_total\{transport="ws"\} (\d+)/m.exec(text)?.[1]);
  };

  it('is cut once its output backs up, counted, and the server goes on serving', async () => {
    const fixture = await createProjectFixture(t, 'alice');
    const token = await t.token('alice');
    expect(await cutCount()).toBe(0);
    const socket = new WebSocket(t.app.graphqlUrl.replace(/^http/, 'ws'), 'graphql-transport-ws');
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('open', () => resolve()));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    await new Promise<void>((resolve) => socket.once('message', () => resolve()));
    const query = 'subscription($p: ID!) { projectEvents(projectId: $p) { eventId ... on MessageCreatedEvent { message { body } } } }';
    socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables: { p: fixture.projectId } } }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    // From here the client reads nothing: the kernel's buffers fill (tens of MB on loopback), then ws's.
    (socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const sessionId = crypto.randomUUID();
    let projectSequence = 0;
    for (let round = 0; round < 20 && (await cutCount()) === 0; round++) {
      const events: SeedEvent[] = Array.from({ length: 1_000 }, () => ({
        event: seedMessage(fixture.projectId, sessionId, { body: 'x'.repeat(8_000) }),
        sequence: ++projectSequence,
        projectSequence,
      }));
      await insertEvents(db, events);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await until(async () => (await cutCount()) === 1, 15_000);
    const healthy = await t.gql<{ viewer: { userId: string } }>('{ viewer { userId } }', {}, { as: 'alice' });
    expect(healthy.data?.viewer.userId).toBe('alice');
    socket.terminate();
  });
});
