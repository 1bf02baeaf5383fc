// npm run bench:tracing — what tracing costs on the write path. One app in this process (the
// server, the publisher and a graphql-ws subscriber that receives every message), on a scratch
// database; rounds of `sendMessage` over HTTP alternate between tracing off and tracing on with
// every trace sampled (`always_on`), so machine noise falls on both. Spans go through the batch
// processor a deployment uses, to an exporter that only counts them: what is measured is making,
// linking and batching spans, and storing the trace context with each event, not a collector.
// Prints per mode: sendMessage p50/p99 latency, throughput (messages/s at BENCH_TRACING_CONCURRENCY
// clients), and the ratio on/off.
// BENCH_TRACING_ROUNDS (default 10) rounds of BENCH_TRACING_PER_ROUND (default 200) messages per mode.
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startApp } from '../src/app.ts';
import { loadConfig } from '../src/platform/config.ts';
import { createLogger } from '../src/platform/logger.ts';
import { startTracing } from '../src/platform/observability/tracing.ts';
import { createBenchDatabase, fmt, percentile } from './support.ts';

const ROUNDS = Number(process.env.BENCH_TRACING_ROUNDS ?? 10);
const PER_ROUND = Number(process.env.BENCH_TRACING_PER_ROUND ?? 200);
const CONCURRENCY = Number(process.env.BENCH_TRACING_CONCURRENCY ?? 4);
const SECRET = 'bench-tracing-secret-0123456789abcdef0123456789';

/** Accepts every span and keeps only the count: the cost of a collector is not ours to measure. */
class CountingExporter implements SpanExporter {
  spans = 0;
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.spans += spans.length;
    done({ code: ExportResultCode.SUCCESS });
  }
  async shutdown(): Promise<void> {}
  async forceFlush(): Promise<void> {}
}

const database = await createBenchDatabase('bench_tracing');
const config = loadConfig({
  DATABASE_URL: database.url,
  PORT: '0',
  HOST: '127.0.0.1',
  JWT_SECRET: SECRET,
  LOG_LEVEL: 'silent',
  RATE_LIMIT_MUTATIONS_PER_MINUTE: '0',
});
const app = await startApp(config, createLogger({ level: 'silent', pretty: false }));
const exporter = new CountingExporter();

try {
  const token = await app.tokens.sign('bench-user');
  const gql = async (query: string, variables: Record<string, unknown> = {}) => {
    const response = await fetch(app.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: any; errors?: unknown[] };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data;
  };

  const projectId = (await gql('mutation { createProject(input: { name: "bench" }) { id } }')).createProject.id;
  const sessionIds: string[] = [];
  for (let i = 0; i < CONCURRENCY; i++) {
    sessionIds.push((await gql('mutation($p: ID!) { createChatSession(input: { projectId: $p, title: "bench" }) { id } }', { p: projectId })).createChatSession.id);
  }

  // A live subscriber, so every message is also claimed, published and delivered (one span each when on).
  let delivered = 0;
  const ws = createClient({ url: app.graphqlUrl.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  const connected = new Promise<void>((resolve) => ws.on('connected', () => resolve()));
  const dispose = ws.subscribe({ query: 'subscription($p: ID!) { projectEvents(projectId: $p) { eventId } }', variables: { p: projectId } }, {
    next: () => void delivered++,
    error: (error) => console.error('subscription failed', error),
    complete: () => {},
  });
  await connected;
  await new Promise((resolve) => setTimeout(resolve, 200));

  const SEND = 'mutation($s: ID!, $b: String!) { sendMessage(input: { sessionId: $s, body: $b }) { eventId } }';
  const results = { off: { latencies: [] as number[], ms: 0, count: 0 }, on: { latencies: [] as number[], ms: 0, count: 0 } };

  async function round(mode: 'off' | 'on') {
    const tracing = mode === 'on' ? startTracing({ ...config.tracing, sampler: 'always_on' }, { spanProcessor: new BatchSpanProcessor({ exporter }) }) : null;
    const target = delivered + PER_ROUND;
    const started = performance.now();
    let next = 0;
    await Promise.all(
      sessionIds.map(async (sessionId) => {
        while (next < PER_ROUND) {
          next++;
          const t0 = performance.now();
          await gql(SEND, { s: sessionId, b: `message ${next}` });
          results[mode].latencies.push(performance.now() - t0);
        }
      }),
    );
    // Until the subscriber has every message: the publish and delivery are part of the cost.
    while (delivered < target) await new Promise((resolve) => setTimeout(resolve, 2));
    results[mode].ms += performance.now() - started;
    results[mode].count += PER_ROUND;
    await tracing?.shutdown();
  }

  await round('off'); // warm-up, not counted
  await round('on');
  results.off = { latencies: [], ms: 0, count: 0 };
  results.on = { latencies: [], ms: 0, count: 0 };
  exporter.spans = 0;
  for (let i = 0; i < ROUNDS; i++) {
    await round(i % 2 === 0 ? 'off' : 'on');
    await round(i % 2 === 0 ? 'on' : 'off');
  }

  dispose();
  await ws.dispose();

  const line = (mode: 'off' | 'on') => {
    const r = results[mode];
    return { p50: percentile(r.latencies, 50), p99: percentile(r.latencies, 99), perSecond: (r.count / r.ms) * 1000 };
  };
  const off = line('off');
  const on = line('on');
  console.log(`sendMessage, ${ROUNDS} rounds x ${PER_ROUND} messages per mode, ${CONCURRENCY} clients, delivered to 1 subscriber`);
  console.log(`tracing off:             p50 ${fmt(off.p50)} ms  p99 ${fmt(off.p99)} ms  ${fmt(off.perSecond, 0)} msg/s`);
  console.log(`tracing on (100 %):      p50 ${fmt(on.p50)} ms  p99 ${fmt(on.p99)} ms  ${fmt(on.perSecond, 0)} msg/s  (${fmt(exporter.spans / results.on.count, 1)} spans per message)`);
  console.log(`on / off:                p50 x${fmt(on.p50 / off.p50)}  p99 x${fmt(on.p99 / off.p99)}  throughput x${fmt(on.perSecond / off.perSecond)}`);
} finally {
  await app.stop();
  await database.drop();
}
