import { describe, expect, it } from 'vitest';
import { createAnalyticsRollupWorker } from '../src/domain/analytics/analytics-rollup.worker.ts';
import { createChatSession, sendMessage } from '../src/domain/chat/chat.service.ts';
import { forkEm } from '../src/platform/db/orm.ts';
import { createLogger } from '../src/platform/logger.ts';
import { OutboxPublisher } from '../src/outbox/outbox.publisher.ts';
import { listenForCommits } from '../src/outbox/outbox.wakeups.ts';
import { createProject } from '../src/domain/projects/project.service.ts';
import { startTestApp, useTestDatabase } from './support/app.ts';
import { connect } from './support/database.ts';
import { FakeClock } from './support/fake-clock.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { createFlakyBus } from './support/flaky-bus.ts';
import { PROJECT_EVENTS, SESSION_EVENTS, subscribe } from './support/subscriber.ts';
import { until } from './support/until.ts';

// The loops' waits run on a fake clock here, so each test moves time on by exactly the interval
// under test instead of sleeping through it, and can show that nothing happens a moment before.

const silent = createLogger({ level: 'silent', pretty: false });
const fixture = useTestDatabase();

async function newSession() {
  const project = await createProject(forkEm(fixture.orm), 'alice', { name: 'p' });
  return createChatSession(forkEm(fixture.orm), 'alice', { projectId: project.id, title: 's' });
}

const statusOf = async (eventId: string) => (await fixture.client.query('select status from outbox_event_status where id = $1', [eventId])).rows[0]?.status;

const options = { batchSize: 100, pollIntervalMs: 60_000, maxAttempts: 5, backoffBaseMs: 20, backoffMaxMs: 100, claimLeaseMs: 30_000 };

describe('the outbox publisher on a fake clock', () => {
  it('finds an event no wake-up announced when the clock reaches the poll interval, not before', async () => {
    const clock = new FakeClock();
    const bus = createFlakyBus();
    // No commit hook and no LISTEN: only the poll can find the event.
    const publisher = new OutboxPublisher({ orm: fixture.orm, bus: bus.bus, logger: silent, options, clock });
    publisher.start();
    try {
      await clock.waitForTimers(1); // the first cycle found nothing and went to sleep
      expect(clock.pending()).toEqual([60_000]);
      const session = await newSession();
      const { event } = await sendMessage(forkEm(fixture.orm), 'alice', { sessionId: session.id, body: 'polled' });

      await clock.advance(59_999);
      expect(await statusOf(event.id)).toBe('pending');
      expect(bus.accepted).toEqual([]);

      await clock.advance(1);
      await until(async () => (await statusOf(event.id)) === 'published');
      expect(bus.accepted.map((e) => e.eventId)).toEqual([event.id]);
      expect(publisher.status().lastCycleAt!.getTime()).toBe(clock.now());
      await clock.waitForTimers(1);
      expect(clock.pending()).toEqual([60_000]); // asleep again for a full interval
    } finally {
      await publisher.stop();
    }
    expect(clock.pending()).toEqual([]); // stop cancels the sleep
  });

  it('stops without waiting for the poll interval when stop comes while it records its last batch', async () => {
    const clock = new FakeClock();
    const flaky = createFlakyBus();
    let releaseBus = () => {};
    const busGate = new Promise<void>((resolve) => (releaseBus = resolve));
    let publishing = false;
    const bus = { ...flaky.bus, publish: async (events: Parameters<typeof flaky.bus.publish>[0]) => ((publishing = true), await busGate, flaky.bus.publish(events)) };
    const publisher = new OutboxPublisher({ orm: fixture.orm, bus, logger: silent, options, clock });
    const holder = await connect(fixture.db.url);
    publisher.start();
    try {
      await clock.waitForTimers(1);
      const session = await newSession();
      const { event } = await sendMessage(forkEm(fixture.orm), 'alice', { sessionId: session.id, body: 'last one' });
      publisher.nudge();
      // Claimed and on its way to the bus: hold the aggregate's position, so that recording this
      // small batch (deferred, then done alone) waits on it.
      await until(() => publishing);
      await holder.query('begin');
      await holder.query('select 1 from outbox_delivery where aggregate_id = $1 for update', [session.id]);
      releaseBus();
      await until(async () => (await fixture.client.query(`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)).rows.length > 0);

      const stopping = publisher.stop();
      await holder.query('rollback');
      // The clock never moves: a loop that went back to sleep for the poll interval would never end.
      let stopped = false;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([stopping.then(() => (stopped = true)), new Promise((resolve) => (timer = setTimeout(resolve, 5_000)))]);
      clearTimeout(timer);
      expect(stopped).toBe(true);
      expect(clock.pending()).toEqual([]);
      expect(await statusOf(event.id)).toBe('published');
    } finally {
      releaseBus();
      await holder.query('rollback').catch(() => {});
      await holder.end();
      await publisher.stop();
    }
  });

  it('backs off after failed cycles from 100 ms, doubling up to the poll interval, and recovers', async () => {
    const clock = new FakeClock();
    const bus = createFlakyBus();
    // Every statement that writes delivery positions fails, as a claim against a broken database would.
    await fixture.client.query(`create function fail_outbox_update() returns trigger language plpgsql as $$
      begin raise exception 'injected failure on update of outbox_delivery'; end $$`);
    await fixture.client.query('create trigger fail_outbox_update before insert or update on outbox_delivery for each statement execute function fail_outbox_update()');
    const failures: unknown[] = [];
    const publisher = new OutboxPublisher({
      orm: fixture.orm,
      bus: bus.bus,
      logger: silent,
      options: { ...options, pollIntervalMs: 1_000 },
      observer: { cycleFailed: (error) => failures.push(error) },
      clock,
    });
    publisher.start();
    try {
      const waits: number[] = [];
      for (let i = 0; i < 6; i++) {
        await clock.waitForTimers(1);
        waits.push(...clock.pending());
        await clock.advance(clock.pending()[0]!);
      }
      expect(waits).toEqual([100, 200, 400, 800, 1_000, 1_000]);
      expect(failures.length).toBeGreaterThanOrEqual(6);

      await fixture.client.query('drop trigger fail_outbox_update on outbox_delivery');
      const session = await newSession();
      const { event } = await sendMessage(forkEm(fixture.orm), 'alice', { sessionId: session.id, body: 'after the outage' });
      await clock.waitForTimers(1);
      await clock.advance(clock.pending()[0]!);
      await until(async () => (await statusOf(event.id)) === 'published');
      await clock.waitForTimers(1);
      expect(clock.pending()).toEqual([1_000]); // healthy again: back to the poll interval
    } finally {
      await fixture.client.query('drop trigger if exists fail_outbox_update on outbox_delivery');
      await fixture.client.query('drop function if exists fail_outbox_update()');
      await publisher.stop();
    }
  });
});

describe('the LISTEN connection on a fake clock', () => {
  it('reconnects after the retry delay, not before, and then asks for a sweep', async () => {
    const clock = new FakeClock();
    const states: boolean[] = [];
    let wakes = 0;
    const listener = listenForCommits({ url: fixture.db.url, logger: silent, wake: () => wakes++, onStateChange: (on) => states.push(on), retryBaseMs: 5_000, clock });
    try {
      await until(() => states.at(-1) === true);
      const wakesBefore = wakes;
      await listener.simulateDisconnect();
      await until(() => states.at(-1) === false);
      await clock.waitForTimers(1);
      expect(clock.pending()).toEqual([5_000]);

      await clock.advance(4_999);
      await new Promise((resolve) => setTimeout(resolve, 100)); // a real moment in which nothing may connect
      expect(states.at(-1)).toBe(false);

      await clock.advance(1);
      await until(() => states.at(-1) === true);
      expect(wakes).toBe(wakesBefore + 1); // the sweep for what was committed while away
    } finally {
      await listener.stop();
    }
  });
});

describe('the analytics rollup worker on a fake clock', () => {
  const unfolded = async () =>
    (await fixture.client.query('select count(*)::int as n from event_outbox where transaction_id >= (select transaction_id from analytics_rollup_state)')).rows[0].n as number;

  it('folds at start, then pauses for the injected interval before folding new events', async () => {
    const clock = new FakeClock();
    const worker = createAnalyticsRollupWorker({ orm: fixture.orm, logger: silent, options: { intervalMs: 60_000, batchSize: 100 }, clock });
    worker.start();
    try {
      expect(clock.pending()).toEqual([0]);
      await clock.advance(0);
      await until(() => worker.status().lastFoldAt !== null);
      expect(worker.status().lastFoldAt!.getTime()).toBe(clock.now());
      await clock.waitForTimers(1);
      expect(clock.pending()).toEqual([60_000]);

      const firstFoldAt = clock.now();
      const session = await newSession();
      for (let i = 0; i < 3; i++) await sendMessage(forkEm(fixture.orm), 'alice', { sessionId: session.id, body: `m${i}` });
      await clock.advance(59_999);
      expect(worker.status().lastFoldAt!.getTime()).toBe(firstFoldAt);
      expect(await unfolded()).toBeGreaterThan(0);

      await clock.advance(1);
      await until(() => worker.status().lastFoldAt!.getTime() === firstFoldAt + 60_000);
      // A fold takes what has finished below the snapshot horizon, which a transaction anywhere on
      // the server can hold back; so the new events are in after this fold or one of the next.
      await until(async () => {
        if ((await unfolded()) === 0) return true;
        await clock.waitForTimers(1);
        expect(clock.pending()).toEqual([60_000]);
        const foldAt = clock.now() + 60_000;
        await clock.advance(60_000);
        await until(() => worker.status().lastFoldAt!.getTime() === foldAt);
        return false;
      });
    } finally {
      await worker.stop();
    }
    expect(clock.pending()).toEqual([]);
  });
});

describe('subscriptions on a fake clock', () => {
  it('end with UNAUTHENTICATED when the clock passes the token expiry', async () => {
    const clock = new FakeClock(Date.now());
    const t = await startTestApp({ ANALYTICS_ROLLUP_INTERVAL_MS: '0' }, { clock });
    try {
      const { sessionId } = await createProjectFixture(t, 'alice');
      const token = await t.token('alice', '1h');
      const expiresAt = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp * 1000;
      const sub = await subscribe(t.app.graphqlUrl, token, SESSION_EVENTS, { sessionId });
      try {
        expect((await t.gql(SEND_MESSAGE, { sessionId, body: 'while valid' }, { as: 'alice' })).errors).toBeUndefined();
        await sub.waitForCount(1);

        await clock.advance(expiresAt - clock.now() - 1); // about an hour on, a millisecond before exp
        expect((await t.gql(SEND_MESSAGE, { sessionId, body: 'still valid' }, { as: 'alice' })).errors).toBeUndefined();
        await sub.waitForCount(2);
        expect(sub.completed).toBe(false);

        await clock.advance(1);
        await sub.waitFor((s) => s.completed);
        expect(sub.errors.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
        expect(sub.events.map((e) => e.message?.body)).toEqual(['while valid', 'still valid']);
      } finally {
        await sub.stop();
      }
    } finally {
      await t.stop();
    }
  });

  it("re-check a removed member's membership once the re-check interval has passed on the clock", async () => {
    const clock = new FakeClock(Date.now());
    const t = await startTestApp({ ANALYTICS_ROLLUP_INTERVAL_MS: '0', SUBSCRIPTION_AUTH_RECHECK_MS: '60000' }, { clock });
    const appDb = await connect(t.db.url);
    try {
      const { projectId, sessionId } = await createProjectFixture(t, 'alice', ['bob']);
      const bob = await subscribe(t.app.graphqlUrl, await t.token('bob'), PROJECT_EVENTS, { projectId });
      try {
        await appDb.query('delete from project_member where project_id = $1 and user_id = $2', [projectId, 'bob']);
        // Within the interval the membership checked at subscribe time still stands.
        await clock.advance(59_999);
        await t.gql(SEND_MESSAGE, { sessionId, body: 'within the interval' }, { as: 'alice' });
        await bob.waitForCount(1);

        await clock.advance(1);
        await t.gql(SEND_MESSAGE, { sessionId, body: 'after the re-check' }, { as: 'alice' });
        await bob.waitFor((s) => s.completed);
        expect(bob.errors[0]?.extensions?.code).toBe('NOT_FOUND');
        expect(bob.events.map((e) => e.message?.body)).toEqual(['within the interval']);
      } finally {
        await bob.stop();
      }
    } finally {
      await appDb.end();
      await t.stop();
    }
  });
});

describe('shutdown on a fake clock', () => {
  it('keeps serving through the drain, and stops when the clock has passed it', async () => {
    const clock = new FakeClock();
    const t = await startTestApp({ ANALYTICS_ROLLUP_INTERVAL_MS: '0', SHUTDOWN_DRAIN_MS: '60000' }, { clock });
    let stopped = false;
    const stopping = t.stop().then(() => (stopped = true));
    try {
      await clock.advance(59_999);
      expect((await fetch(`${t.app.url}/health/ready`)).status).toBe(503);
      expect((await t.gql('{ __typename }')).data).toEqual({ __typename: 'Query' });
      expect(stopped).toBe(false);
    } finally {
      await clock.advance(1);
      await stopping;
    }
    await expect(fetch(`${t.app.url}/health/live`)).rejects.toThrow();
  });
});
