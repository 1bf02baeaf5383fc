import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../src/platform/observability/metrics.ts';
import { outboxBacklogQuery } from '../src/outbox/outbox-backlog.ts';
import { createOperationNameLabels } from '../src/platform/observability/operation-name-label.ts';
import { startTestApp, startTestAppWithClient, type TestApp } from './support/app.ts';
import { whileInsertsFail } from './support/database.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { eventually, parseScrape, scrape } from './support/observability.ts';
import { deliverAll, insertEvents, seedMessage, setDeliveryState } from './support/outbox-seed.ts';

let t: TestApp;
let db: pg.Client;

beforeAll(async () => {
  // The gauges are read from the database; the rows are moved by hand here, so no publisher runs.
  // (test/outbox-observability.test.ts covers the same metrics with the real publisher.)
  ({ t, db } = await startTestAppWithClient({ OUTBOX_PUBLISHER_ENABLED: 'false' }));
});
afterAll(() => t?.stop());

const post = (body: unknown, headers: Record<string, string> = {}) =>
  fetch(t.app.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

describe('outbox backlog gauges (read from the database at scrape time)', () => {
  it('show pending events and the age of the oldest, then failed ones, as rows change state', async () => {
    // Other tests in this file write events too: start from a clean table.
    await db.query('delete from event_outbox');
    let metrics = await scrape(t.app.url);
    expect(metrics.value('outbox_pending_events')).toBe(0);
    expect(metrics.value('outbox_failed_events')).toBe(0);
    expect(metrics.value('outbox_oldest_pending_age_seconds')).toBe(0);

    const { sessionId } = await createProjectFixture(t, 'alice');
    for (const body of ['one', 'two', 'three']) await t.gql(SEND_MESSAGE, { sessionId, body }, { as: 'alice' });
    // The age is measured from created_at by the database clock: make the first event 90 s old.
    await db.query(`update event_outbox set created_at = now() - interval '90 seconds' where aggregate_id = $1 and sequence = 1`, [sessionId]);

    metrics = await scrape(t.app.url);
    expect(metrics.value('outbox_pending_events')).toBe(3);
    expect(metrics.value('outbox_failed_events')).toBe(0);
    expect(metrics.value('outbox_oldest_pending_age_seconds')).toBeGreaterThanOrEqual(90);
    expect(metrics.value('outbox_oldest_pending_age_seconds')).toBeLessThan(3600);

    // No publisher exists yet: do to the rows what it will do (publish one, give up on another).
    await setDeliveryState(db, sessionId, { deliveredThrough: 1, attempts: 10, lastError: 'bus down', failed: true });

    metrics = await scrape(t.app.url);
    expect(metrics.value('outbox_pending_events')).toBe(1);
    expect(metrics.value('outbox_failed_events')).toBe(1);
    // The 90-second-old event is published; the oldest pending one is seconds old.
    expect(metrics.value('outbox_oldest_pending_age_seconds')).toBeLessThan(90);

    await deliverAll(db);
    metrics = await scrape(t.app.url);
    expect(metrics.value('outbox_pending_events')).toBe(0);
    expect(metrics.value('outbox_oldest_pending_age_seconds')).toBe(0);
  });

  it('leave the gauges out and count a scrape error when the query fails, and /metrics still answers', async () => {
    const before = (await scrape(t.app.url)).value('outbox_metrics_scrape_errors_total')!;
    await db.query('alter table event_outbox rename to event_outbox_away');
    try {
      const metrics = await scrape(t.app.url);
      expect(metrics.value('outbox_pending_events')).toBeUndefined();
      expect(metrics.value('outbox_failed_events')).toBeUndefined();
      expect(metrics.value('outbox_oldest_pending_age_seconds')).toBeUndefined();
      // One failed query per scrape, not one per gauge.
      expect(metrics.value('outbox_metrics_scrape_errors_total')).toBe(before + 1);
      expect(metrics.text).toContain('# TYPE outbox_pending_events gauge');
      expect(metrics.value('process_cpu_user_seconds_total')).toBeGreaterThan(0);
    } finally {
      await db.query('alter table event_outbox_away rename to event_outbox');
    }
    expect((await scrape(t.app.url)).value('outbox_pending_events')).toBeTypeOf('number');
  });

  it('read only the undelivered aggregates and the log past the relay watermark, however many published rows the table holds', async () => {
    const published = Array.from({ length: 20_000 }, () => ({
      event: seedMessage(crypto.randomUUID(), crypto.randomUUID(), { authorUserId: 'u' }),
      sequence: 1,
      projectSequence: 1,
      status: 'published' as const,
    }));
    await insertEvents(db, published);
    // As the relay leaves them: registered, and its watermark past them.
    await db.query(`update outbox_relay_state set transaction_id = pg_snapshot_xmin(pg_current_snapshot())`);
    await db.query('analyze event_outbox');
    await db.query('analyze outbox_delivery');
    const compiled = outboxBacklogQuery();
    const plan = (await db.query(`explain ${compiled.sql}`, [...compiled.parameters])).rows.map((row) => row['QUERY PLAN']).join('\n');
    expect(plan).toContain('outbox_delivery_undelivered_idx');
    expect(plan).toContain('event_outbox_transaction_id_idx');
    expect(plan).not.toMatch(/Seq Scan on event_outbox/);
  });
});

describe('publisher gauges', () => {
  it('show the publisher down until a status source is attached, then what it reports', async () => {
    let metrics = await scrape(t.app.url);
    expect(metrics.value('outbox_publisher_up')).toBe(0);
    expect(metrics.value('outbox_listen_connected')).toBe(0);
    expect(metrics.value('outbox_publisher_last_cycle_timestamp_seconds')).toBeUndefined();

    // Stands in for `publisher.status()`, to drive every state (the real one: outbox-observability.test.ts).
    const lastCycleAt = new Date('2026-11-23T10:00:00.000Z');
    let status = { running: true, lastCycleAt: null as Date | null, listening: false, listenEnabled: true };
    t.app.metrics.setPublisherStatusSource({ status: () => status });
    try {
      metrics = await scrape(t.app.url);
      expect(metrics.value('outbox_publisher_up')).toBe(1);
      expect(metrics.value('outbox_publisher_last_cycle_timestamp_seconds')).toBeUndefined();
      status = { running: true, lastCycleAt, listening: true, listenEnabled: true };
      metrics = await scrape(t.app.url);
      expect(metrics.value('outbox_publisher_last_cycle_timestamp_seconds')).toBe(lastCycleAt.getTime() / 1000);
      expect(metrics.value('outbox_listen_connected')).toBe(1);
      expect(metrics.value('outbox_listen_enabled')).toBe(1);
      status = { running: false, lastCycleAt, listening: false, listenEnabled: false };
      metrics = await scrape(t.app.url);
      expect(metrics.value('outbox_publisher_up')).toBe(0);
      expect(metrics.value('outbox_listen_connected')).toBe(0);
      expect(metrics.value('outbox_listen_enabled')).toBe(0);
    } finally {
      t.app.metrics.setPublisherStatusSource(null);
    }
  });
});

describe('outbox instruments the publisher records into', () => {
  // No publisher exists yet, so these go through the instruments directly: they show the series,
  // labels and units the publisher gets, not that it calls them.
  it('export attempts by event type and outcome, latency, batch sizes and reprocessing', async () => {
    const metrics = createMetrics();
    const createdAt = new Date('2026-11-23T10:00:00.000Z');
    metrics.outbox.recordBatchClaimed(3);
    metrics.outbox.recordBatchClaimed(0);
    metrics.outbox.recordPublishAttempts('message_created', 'success', 2);
    metrics.outbox.recordPublishAttempts('message_created', 'retry');
    metrics.outbox.recordPublishAttempts('agent_switched', 'failed');
    metrics.outbox.recordPublished({ eventType: 'message_created', createdAt }, new Date(createdAt.getTime() + 40));
    metrics.outbox.recordPublished({ eventType: 'message_created', createdAt }, new Date(createdAt.getTime() + 2_000));
    metrics.outbox.recordReprocessed(4);
    metrics.subscriptions.recordDelivered('agent_switched', 3);
    metrics.subscriptions.recordEndedSlowConsumer();

    const scraped = parseScrape((await metrics.scrape()).body);
    expect(scraped.value('outbox_publish_attempts_total', { event_type: 'message_created', outcome: 'success' })).toBe(2);
    expect(scraped.value('outbox_publish_attempts_total', { event_type: 'message_created', outcome: 'retry' })).toBe(1);
    expect(scraped.value('outbox_publish_attempts_total', { event_type: 'agent_switched', outcome: 'failed' })).toBe(1);
    expect(scraped.value('outbox_publish_attempts_total', { event_type: 'agent_switched', outcome: 'success' })).toBe(0);
    expect(scraped.value('outbox_commit_to_publish_seconds_bucket', { event_type: 'message_created', le: '0.05' })).toBe(1);
    expect(scraped.value('outbox_commit_to_publish_seconds_bucket', { event_type: 'message_created', le: '2.5' })).toBe(2);
    expect(scraped.value('outbox_commit_to_publish_seconds_sum', { event_type: 'message_created' })).toBeCloseTo(2.04, 5);
    // An empty poll is not a batch.
    expect(scraped.value('outbox_batch_size_count')).toBe(1);
    expect(scraped.value('outbox_batch_size_sum')).toBe(3);
    expect(scraped.value('outbox_reprocessed_total')).toBe(4);
    expect(scraped.value('subscription_events_delivered_total', { event_type: 'agent_switched' })).toBe(3);
    expect(scraped.value('subscriptions_ended_slow_consumer_total')).toBe(1);
  });

  it('live on a registry of their own: two instances in one process do not see each other', async () => {
    const a = createMetrics();
    const b = createMetrics();
    a.outbox.recordReprocessed(1);
    expect(parseScrape((await a.scrape()).body).value('outbox_reprocessed_total')).toBe(1);
    expect(parseScrape((await b.scrape()).body).value('outbox_reprocessed_total')).toBe(0);
  });
});

describe('GraphQL operation metrics', () => {
  it('count operations by name, type and outcome, and time queries and mutations', async () => {
    const { sessionId } = await createProjectFixture(t, 'carol');
    const token = await t.token('carol');
    const auth = { authorization: `Bearer ${token}` };

    await post({ query: 'query MetricsViewer { viewer { userId } }' }, auth);
    await post({ query: 'query MetricsViewer { viewer { userId } }' }, auth);
    await post({ query: 'query MetricsMissing { project(id: "00000000-0000-4000-8000-000000000000") { id } }' }, auth);
    await post({ query: 'query MetricsBroken { viewer { ' });
    await post({ query: 'query MetricsInvalid { noSuchField }' });
    await post({ query: 'mutation MetricsSend($s: ID!, $b: String!) { sendMessage(input: { sessionId: $s, body: $b }) { eventId } }', variables: { s: sessionId, b: 'hi' } }, auth);
    await whileInsertsFail(db, 'message', () =>
      post({ query: 'mutation MetricsSendFails($s: ID!) { sendMessage(input: { sessionId: $s, body: "x" }) { eventId } }', variables: { s: sessionId } }, auth),
    );
    await post({ query: '{ viewer { userId } }' }, auth);

    const metrics = await scrape(t.app.url);
    const ops = (name: string, type: string, outcome: string) =>
      metrics.value('graphql_operations_total', { operation_name: name, operation_type: type, outcome });
    expect(ops('MetricsViewer', 'query', 'success')).toBe(2);
    expect(ops('MetricsMissing', 'query', 'client_error')).toBe(1);
    expect(ops('MetricsSend', 'mutation', 'success')).toBe(1);
    expect(ops('MetricsSendFails', 'mutation', 'server_error')).toBe(1);
    expect(ops('anonymous', 'query', 'success')).toBe(1);
    // Documents that fail to parse or validate never reach execution, and their names never get a
    // label (an unparsable document has no name unless the request says `operationName`).
    expect(ops('anonymous', 'unknown', 'client_error')).toBe(1);
    expect(ops('other', 'query', 'client_error')).toBe(1);
    expect(metrics.text).not.toContain('MetricsBroken');
    expect(metrics.text).not.toContain('MetricsInvalid');
    expect(metrics.value('graphql_operation_duration_seconds_count', { operation_name: 'MetricsViewer', operation_type: 'query' })).toBe(2);
    expect(metrics.value('graphql_operation_duration_seconds_count', { operation_name: 'MetricsSend', operation_type: 'mutation' })).toBe(1);
  });

  it('keep the operation name label bounded whatever names clients send', async () => {
    const longName = `Q${'x'.repeat(100)}`;
    await post({ query: `query ${longName} { __typename }` });
    const metrics = await scrape(t.app.url);
    expect(metrics.text).not.toContain(longName);
    expect(metrics.value('graphql_operations_total', { operation_name: 'other', operation_type: 'query', outcome: 'success' })).toBeGreaterThanOrEqual(1);

    const labels = createOperationNameLabels(3);
    expect(['A', 'B', 'C', 'D', 'E'].map((name) => labels.label(name))).toEqual(['A', 'B', 'C', 'other', 'other']);
    expect(labels.label('A')).toBe('A');
    expect(labels.label(undefined)).toBe('anonymous');
    expect(labels.label('has space')).toBe('other');
    expect(labels.size).toBe(3);
    const unadmitted = createOperationNameLabels(3);
    expect(unadmitted.label('Fresh', { admit: false })).toBe('other');
    expect(unadmitted.size).toBe(0);
  });
});

describe('GET /metrics', () => {
  it('is not served when METRICS_ENABLED=false, while GraphQL and health still are', async () => {
    const off = await startTestApp({ METRICS_ENABLED: 'false' });
    try {
      expect((await fetch(`${off.app.url}/metrics`)).status).toBe(404);
      expect((await fetch(`${off.app.url}/health/live`)).status).toBe(200);
      expect((await off.gql('{ __typename }')).data).toEqual({ __typename: 'Query' });
    } finally {
      await off.stop();
    }
  });

  it('answers only GET and HEAD', async () => {
    const response = await fetch(`${t.app.url}/metrics`, { method: 'POST' });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET, HEAD');
  });
});

describe('analytics rollup gauge', () => {
  it('shows when this instance last folded, and is absent where the rollup worker is off', async () => {
    // The app above runs the worker (the default interval); its first fold runs at start.
    const folded = await eventually(async () => {
      const value = (await scrape(t.app.url)).value('analytics_rollup_last_fold_timestamp_seconds');
      if (value === undefined) throw new Error('no fold yet');
      return value;
    });
    expect(Math.abs(folded - Date.now() / 1000)).toBeLessThan(60);

    const off = await startTestApp({ OUTBOX_PUBLISHER_ENABLED: 'false', ANALYTICS_ROLLUP_INTERVAL_MS: '0' }, { db: t.db });
    try {
      const metrics = await scrape(off.app.url);
      expect(metrics.value('analytics_rollup_last_fold_timestamp_seconds')).toBeUndefined();
      expect(metrics.value('outbox_pending_events')).toBeDefined(); // the scrape itself worked
    } finally {
      await off.stop();
    }
  });
});
