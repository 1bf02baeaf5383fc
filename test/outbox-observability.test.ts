import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAppWithClient, type TestApp } from './support/app.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { createFlakyBus } from './support/flaky-bus.ts';
import { captureLogs, scrape } from './support/observability.ts';
import { SESSION_EVENTS, subscribe } from './support/subscriber.ts';
import { until } from './support/until.ts';

// The real publisher and subscriptions: what an operator sees while events are written,
// published, retried, failed and reprocessed.
const FAST = { OUTBOX_POLL_INTERVAL_MS: '50', OUTBOX_BACKOFF_BASE_MS: '20', OUTBOX_BACKOFF_MAX_MS: '50', OUTBOX_MAX_ATTEMPTS: '2', LOG_LEVEL: 'debug' };
const flaky = createFlakyBus();
const logs = captureLogs('debug');
let t: TestApp;
let db: pg.Client;

beforeAll(async () => {
  ({ t, db } = await startTestAppWithClient(FAST, { bus: flaky.bus, logger: logs.logger }));
});
afterAll(() => t?.stop());

const attempts = async (outcome: string) => (await scrape(t.app.url)).value('outbox_publish_attempts_total', { event_type: 'message_created', outcome }) ?? 0;

describe('metrics and logs of the outbox lifecycle', () => {
  it('count published, retried and failed attempts, delivered events and the backlog, and log each with its eventId', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const sub = await subscribe(t.app.graphqlUrl, await t.token('alice'), SESSION_EVENTS, { sessionId });
    try {
      const first = await scrape(t.app.url);
      expect(first.value('outbox_publisher_up')).toBe(1);
      expect(first.value('outbox_listen_connected')).toBe(1);
      expect(first.value('outbox_publisher_last_cycle_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 60);

      const sent = await t.gql(SEND_MESSAGE, { sessionId, body: 'secret body text' }, { as: 'alice' });
      await sub.waitForCount(1);
      await until(async () => (await attempts('success')) >= 1);
      const published = await scrape(t.app.url);
      expect(published.value('outbox_commit_to_publish_seconds_count', { event_type: 'message_created' })).toBeGreaterThanOrEqual(1);
      expect(published.value('outbox_batch_size_count')).toBeGreaterThanOrEqual(1);
      expect(published.value('subscription_events_delivered_total', { event_type: 'message_created' })).toBe(1);

      // The bus goes down: the attempt is retried, then the event fails (max attempts 2).
      flaky.down = true;
      const doomed = (await t.gql(SEND_MESSAGE, { sessionId, body: 'secret body text' }, { as: 'alice' })).data.sendMessage.eventId;
      await until(async () => (await db.query('select status from outbox_event_status where id = $1', [doomed])).rows[0].status === 'failed');
      expect(await attempts('retry')).toBe(1);
      expect(await attempts('failed')).toBe(1);
      await until(async () => (await scrape(t.app.url)).value('outbox_failed_events') === 1);

      const records = logs.records();
      const forEvent = (id: string) => records.filter((r) => r.eventId === id);
      expect(forEvent(sent.data.sendMessage.eventId).some((r) => r.msg.includes('published'))).toBe(true);
      const retry = forEvent(doomed).find((r) => r.level === 40);
      expect(retry).toMatchObject({ eventType: 'message_created', attempts: 1, delayMs: expect.any(Number) });
      expect(forEvent(doomed).find((r) => r.level === 50)).toMatchObject({ attempts: 2 });
      expect(logs.text()).not.toContain('secret body text');

      // Reprocessing is counted, logged with the eventId, and the event is delivered after all.
      flaky.down = false;
      const projectId = (await db.query('select project_id from event_outbox where id = $1', [doomed])).rows[0].project_id;
      await t.gql('mutation($p: ID!) { reprocessFailedEvents(projectId: $p) { count } }', { p: projectId }, { as: 'alice' });
      await sub.waitForCount(2);
      expect(sub.events[1]!.eventId).toBe(doomed);
      expect((await scrape(t.app.url)).value('outbox_reprocessed_total')).toBe(1);
      expect(logs.records().find((r) => r.outbox === 'reprocessed')).toMatchObject({ eventId: doomed, by: 'mutation', userId: 'alice' });
    } finally {
      flaky.down = false;
      await sub.stop();
    }
  });
});
