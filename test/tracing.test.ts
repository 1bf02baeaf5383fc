import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/platform/config.ts';
import { startTracing, type Tracing } from '../src/platform/observability/tracing.ts';
import { errorCode, startTestApp, type TestApp, useTwoInstances } from './support/app.ts';
import { connect } from './support/database.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { SESSION_EVENTS, subscribe } from './support/subscriber.ts';
import { until } from './support/until.ts';

const REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';
const FAST = { OUTBOX_POLL_INTERVAL_MS: '50' };

/** What tracing reads from a server's environment. */
const tracingOf = (env: Record<string, string>) => loadConfig({ JWT_SECRET: 'x'.repeat(32), DATABASE_URL: 'postgres://localhost/x', ...env }).tracing;

async function sendWithTraceparent(t: TestApp, sessionId: string, body: string, traceparent: string) {
  const response = await fetch(t.app.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${await t.token('alice')}`, traceparent },
    body: JSON.stringify({ query: SEND_MESSAGE, variables: { sessionId, body } }),
  });
  return (await response.json()) as { data: { sendMessage: { eventId: string } } };
}

async function allPublished(t: TestApp) {
  const db = await connect(t.db.url);
  try {
    await until(async () => (await db.query(`select count(*)::int as n from outbox_event_status where status <> 'published'`)).rows[0].n === 0);
  } finally {
    await db.end();
  }
}

describe('tracing settings (the standard OTEL_* variables)', () => {
  it('is off unless an OTLP endpoint or OTEL_TRACES_EXPORTER=otlp is set, and OTEL_SDK_DISABLED wins', () => {
    expect(tracingOf({}).enabled).toBe(false);
    expect(tracingOf({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).enabled).toBe(false);
    expect(tracingOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })).toMatchObject({ enabled: true, url: 'http://collector:4318/v1/traces' });
    expect(tracingOf({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://otlp.example/traces' })).toMatchObject({ enabled: true, url: 'https://otlp.example/traces' });
    expect(tracingOf({ OTEL_TRACES_EXPORTER: 'otlp' })).toMatchObject({ enabled: true, url: 'http://localhost:4318/v1/traces' });
    expect(tracingOf({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' }).enabled).toBe(false);
    expect(tracingOf({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' })).toMatchObject({ sampler: 'parentbased_traceidratio', ratio: 0.25 });
  });

  it('refuses values it cannot honour, naming the variable', () => {
    expect(() => tracingOf({ OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(ConfigError);
    expect(() => tracingOf({ OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(/OTEL_TRACES_EXPORTER/);
    expect(() => tracingOf({ OTEL_TRACES_SAMPLER_ARG: '2' })).toThrow(/OTEL_TRACES_SAMPLER_ARG/);
    expect(() => tracingOf({ OTEL_TRACES_SAMPLER: 'sometimes' })).toThrow(/OTEL_TRACES_SAMPLER/);
    expect(() => tracingOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
  });
});

// The two parts run in this order: tracing is process-wide, so the second starts after the first
// has shut it down (each test file runs in a process of its own).
describe('one trace from mutation to delivery, across two instances over Redis', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;

  beforeAll(() => {
    tracing = startTracing({ ...tracingOf({}), sampler: 'always_on' }, { spanProcessor: new SimpleSpanProcessor({ exporter }) });
  });
  afterAll(async () => {
    await tracing?.shutdown();
  });
  // The writer publishes; the reader only serves subscriptions: the event reaches it over Redis.
  const { first: writer, second: reader } = useTwoInstances({ ...FAST, REDIS_URL }, { REDIS_URL, OUTBOX_PUBLISHER_ENABLED: 'false' });

  it('links the operation, its transaction, the claim, the publish and the delivery by the trace context stored with the event', async () => {
    const { sessionId } = await createProjectFixture(writer, 'alice');
    const sub = await subscribe(reader.app.graphqlUrl, await reader.token('alice'), SESSION_EVENTS, { sessionId });
    try {
      await allPublished(writer); // the fixture's own events go out first, in traces of their own
      await tracing.forceFlush();
      // The graphql-ws subscription is an operation too (SESSION_EVENTS is anonymous).
      const subscribed = exporter.getFinishedSpans().filter((span) => span.name === 'subscription');
      expect(subscribed.length).toBeGreaterThan(0);
      expect(subscribed[0]!.attributes['graphql.operation.type']).toBe('subscription');
      exporter.reset();

      // The caller's trace: a client (or a proxy) that sends `traceparent` gets the whole story in its trace.
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const sent = await sendWithTraceparent(writer, sessionId, 'traced', `00-${traceId}-00f067aa0ba902b7-01`);
      const eventId = sent.data.sendMessage.eventId;
      await sub.waitFor((s) => s.events.some((e) => e.eventId === eventId));
      await until(async () => {
        await tracing.forceFlush();
        return exporter.getFinishedSpans().some((span) => span.name === 'deliver sessionEvents');
      });
      const spans = exporter.getFinishedSpans();
      const named = (name: string) => spans.filter((span) => span.name === name);

      // SEND_MESSAGE is an anonymous operation: the span is named by its type alone.
      const [operation] = named('mutation');
      expect(operation, spans.map((s) => s.name).join(', ')).toBeDefined();
      expect(operation!.kind).toBe(SpanKind.SERVER);
      expect(operation!.spanContext().traceId).toBe(traceId);
      expect(operation!.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
      expect(operation!.attributes).toMatchObject({ 'graphql.operation.type': 'mutation' });

      // The unit of work: its transaction is a child of the operation.
      const transactions = named('db transaction').filter((span) => span.parentSpanContext?.spanId === operation!.spanContext().spanId);
      expect(transactions.length).toBeGreaterThan(0);
      expect(transactions.every((span) => span.spanContext().traceId === traceId)).toBe(true);

      // Stored with the event: the operation's context.
      const db = await connect(writer.db.url);
      const stored = (await db.query('select trace_context from event_outbox where id = $1', [eventId])).rows[0].trace_context;
      await db.end();
      expect(stored.traceparent).toBe(`00-${traceId}-${operation!.spanContext().spanId}-01`);

      // Claim and publish: linked to the event's context, and in its trace (the batch held only it).
      const linksToOperation = (span: ReadableSpan) => span.links.some((link) => link.context.spanId === operation!.spanContext().spanId && link.context.traceId === traceId);
      for (const name of ['outbox claim', 'outbox publish']) {
        const [span] = named(name).filter(linksToOperation);
        expect(span, name).toBeDefined();
        expect(span!.spanContext().traceId).toBe(traceId);
      }
      expect(named('outbox publish').find(linksToOperation)!.kind).toBe(SpanKind.PRODUCER);

      // The delivery, on the other instance: the context crossed Redis with the event.
      const deliveries = named('deliver sessionEvents').filter((span) => span.attributes['messaging.message.id'] === eventId);
      expect(deliveries).toHaveLength(1);
      expect(deliveries[0]!.spanContext().traceId).toBe(traceId);
      expect(deliveries[0]!.parentSpanContext?.spanId).toBe(operation!.spanContext().spanId);
      expect(deliveries[0]!.kind).toBe(SpanKind.CONSUMER);
    } finally {
      await sub.stop();
    }
  });

  it('names an operation span by type and name, and marks one whose result has errors', async () => {
    await tracing.forceFlush();
    exporter.reset();
    expect((await writer.gql('query WhoAmI { viewer { userId } }', {}, { as: 'alice' })).data).toEqual({ viewer: { userId: 'alice' } });
    expect(errorCode(await writer.gql('query Anonymous { viewer { userId } }'))).toBe('UNAUTHENTICATED');
    await tracing.forceFlush();
    const [ok] = exporter.getFinishedSpans().filter((span) => span.name === 'query WhoAmI');
    expect(ok?.attributes).toMatchObject({ 'graphql.operation.type': 'query', 'graphql.operation.name': 'WhoAmI' });
    expect(ok?.status.code).toBe(SpanStatusCode.UNSET);
    const [refused] = exporter.getFinishedSpans().filter((span) => span.name === 'query Anonymous');
    expect(refused?.status.code).toBe(SpanStatusCode.ERROR);
    expect(refused?.attributes['error.type']).toBe('UNAUTHENTICATED');
  });

  it('gives a batch of events from many traces its own trace, linked to each of them', async () => {
    const { sessionId } = await createProjectFixture(writer, 'alice');
    await allPublished(writer);
    // Hold the publisher back by claiming nothing until both events are committed: stop it, write, restart.
    await writer.app.publisher?.stop();
    const traceIds = ['11111111111111111111111111111111', '22222222222222222222222222222222'];
    for (const [i, traceId] of traceIds.entries()) await sendWithTraceparent(writer, sessionId, `m${i}`, `00-${traceId}-00f067aa0ba902b7-01`);
    await tracing.forceFlush();
    exporter.reset();
    writer.app.publisher?.start();
    await allPublished(writer);
    await tracing.forceFlush();

    const publish = exporter.getFinishedSpans().find((span) => span.name === 'outbox publish' && span.attributes['messaging.batch.message_count'] === 2);
    expect(publish).toBeDefined();
    expect(publish!.links.map((link) => link.context.traceId).sort()).toEqual(traceIds);
    expect(traceIds).not.toContain(publish!.spanContext().traceId);
    expect(publish!.parentSpanContext).toBeUndefined();
  });
});

describe('the OTLP exporter a deployment uses', () => {
  let collector: Server;
  const received: { path: string; contentType: string; bytes: number }[] = [];

  beforeAll(async () => {
    // A stand-in collector on loopback: it only records what arrives.
    collector = createServer((request, response) => {
      let bytes = 0;
      request.on('data', (chunk: Buffer) => (bytes += chunk.length));
      request.on('end', () => {
        received.push({ path: request.url ?? '', contentType: String(request.headers['content-type']), bytes });
        response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise<void>((resolve) => collector.close(() => resolve())));

  it('sends the spans of a request as OTLP/protobuf to OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces', async () => {
    const { port } = collector.address() as AddressInfo;
    const config = tracingOf({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` });
    const tracing = startTracing(config);
    expect(tracing.enabled).toBe(true);
    const t = await startTestApp();
    try {
      expect((await t.gql('query WhoAmI { viewer { userId } }', {}, { as: 'alice' })).data).toEqual({ viewer: { userId: 'alice' } });
    } finally {
      await t.stop();
      await tracing.shutdown(); // flushes the batch processor
    }
    expect(received.length).toBeGreaterThan(0);
    expect(received[0]).toMatchObject({ path: '/v1/traces', contentType: 'application/x-protobuf' });
    expect(received[0]!.bytes).toBeGreaterThan(0);
  });
});

describe('tracing off (no OTEL_* variables)', () => {
  const exporter = new InMemorySpanExporter();
  let t: TestApp;

  beforeAll(async () => {
    // Registered and shut down again: what a span would reach if any were still made.
    await startTracing(tracingOf({}), { spanProcessor: new SimpleSpanProcessor({ exporter }) }).shutdown();
    expect(startTracing(tracingOf({})).enabled).toBe(false);
    t = await startTestApp(FAST);
  });
  afterAll(() => t?.stop());

  it('delivers as before, stores no trace context and makes no span', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const sub = await subscribe(t.app.graphqlUrl, await t.token('alice'), SESSION_EVENTS, { sessionId });
    try {
      // A caller's traceparent changes nothing when tracing is off.
      const sent = await sendWithTraceparent(t, sessionId, 'untraced', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
      await sub.waitFor((s) => s.events.some((e) => e.eventId === sent.data.sendMessage.eventId));
      const db = await connect(t.db.url);
      const { rows } = await db.query('select count(*)::int as n from event_outbox where trace_context is not null');
      await db.end();
      expect(rows[0].n).toBe(0);
      expect(exporter.getFinishedSpans()).toHaveLength(0);
    } finally {
      await sub.stop();
    }
  });
});
