import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createRedisBus } from '../src/bus/event-bus.ts';
import type { DomainEvent } from '../src/events/domain-event.ts';
import { useTwoInstances } from './support/app.ts';
import { connect } from './support/database.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { SESSION_EVENTS, subscribe } from './support/subscriber.ts';
import { until } from './support/until.ts';

const REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';

describe('two API instances sharing a database and Redis', () => {
  // B publishes nothing itself: whatever its subscribers get came through Redis from A.
  const { first: a, second: b } = useTwoInstances({ REDIS_URL });

  it('delivers an event written and published through A to a subscriber connected to B', async () => {
    const { sessionId } = await createProjectFixture(a, 'alice');
    const sub = await subscribe(b.app.graphqlUrl, await b.token('alice'), SESSION_EVENTS, { sessionId });
    try {
      const sent = await a.gql(SEND_MESSAGE, { sessionId, body: 'across instances' }, { as: 'alice' });
      await sub.waitForCount(1);
      expect(sub.events[0]).toMatchObject({ eventId: sent.data.sendMessage.eventId, message: { body: 'across instances' } });
    } finally {
      await sub.stop();
    }
  });
});

describe('an instance whose Redis subscriber connection drops', () => {
  const name = `test-b-${crypto.randomUUID().slice(0, 8)}`;
  // B reconnects to Redis one second after losing its connection: events published in that
  // second never reach it through Redis.
  const { first: a, second: b } = useTwoInstances({ REDIS_URL }, { REDIS_URL, OUTBOX_PUBLISHER_ENABLED: 'false' }, () => ({
    bus: createRedisBus(REDIS_URL, { connectionName: name, reconnectDelayMs: 1_000 }),
  }));

  it('reads what was published meanwhile as soon as it is back, without waiting for the next event', async () => {
    const { sessionId } = await createProjectFixture(a, 'alice');
    const sub = await subscribe(b.app.graphqlUrl, await b.token('alice'), SESSION_EVENTS, { sessionId });
    const admin = new Redis(REDIS_URL);
    const db = await connect(a.db.url);
    try {
      await a.gql(SEND_MESSAGE, { sessionId, body: 'before' }, { as: 'alice' });
      await sub.waitForCount(1);

      const clients = String(await admin.client('LIST')).split('\n');
      const subscriber = clients.find((line) => line.includes(` name=${name}:subscribe `));
      expect(subscriber).toBeDefined();
      await admin.client('KILL', 'ID', /\bid=(\d+)/.exec(subscriber!)![1]!);
      const missed = await a.gql(SEND_MESSAGE, { sessionId, body: 'while away' }, { as: 'alice' });
      const missedId = missed.data.sendMessage.eventId;
      await until(async () => (await db.query('select status from outbox_event_status where id = $1', [missedId])).rows[0]?.status === 'published');
      // Published while B was away: it did not arrive live.
      expect(sub.events).toHaveLength(1);

      // No other event follows; B's stream reads it from the table once its channel is live again.
      await sub.waitForCount(2, 10_000);
      expect(sub.events.map((e) => e.message?.body)).toEqual(['before', 'while away']);
      expect(sub.events[1]!.eventId).toBe(missedId);
    } finally {
      admin.disconnect();
      await db.end();
      await sub.stop();
    }
  });
});

describe('an API-only instance and a publishing instance', () => {
  // The relay polls every ten minutes: only the API instance's NOTIFY after commit can wake it.
  const { first: api, second: relay } = useTwoInstances({ REDIS_URL, OUTBOX_PUBLISHER_ENABLED: 'false' }, { REDIS_URL, OUTBOX_POLL_INTERVAL_MS: '600000' });

  it('wakes the other instance\'s publisher with a NOTIFY after commit, and the subscriber gets the event', async () => {
    const { sessionId } = await createProjectFixture(api, 'alice');
    const sub = await subscribe(api.app.graphqlUrl, await api.token('alice'), SESSION_EVENTS, { sessionId });
    try {
      const deadline = Date.now() + 10_000;
      while (!relay.app.publisher!.status().listening && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      const sent = await api.gql(SEND_MESSAGE, { sessionId, body: 'via notify' }, { as: 'alice' });
      await sub.waitForCount(1);
      expect(sub.events[0]!.eventId).toBe(sent.data.sendMessage.eventId);
    } finally {
      await sub.stop();
    }
  });
});

describe('Redis bus', () => {
  it('fails fast, without queueing, when Redis is unreachable', async () => {
    const bus = createRedisBus('redis://127.0.0.1:1');
    try {
      const event = { eventId: 'e', projectId: 'p' } as DomainEvent;
      const results = await bus.publish([event, event]);
      expect(results.map((r) => r instanceof Error)).toEqual([true, true]);
    } finally {
      await bus.close();
    }
  });
});
