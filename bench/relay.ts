// npm run bench:relay — the OutboxPublisher on this machine. Prints:
//  1. drain rate of a 100k-event backlog (events/s), against a naive SKIP LOCKED relay that
//     ignores per-aggregate order, measured in the same run;
//  2. commit → graphql-ws client latency p50/p99 at a fixed 500 events/s (after a 1 s warm-up),
//     against the same pipeline with wake-ups turned off (poll only);
//  3. the claim query's time with 1M published rows in the table, against an empty table;
//  4. sendMessage throughput into one project against ten.
// BENCH_ONLY=drain,latency,claim,writes runs some sections; BENCH_BACKLOG, BENCH_LATENCY_EVENTS
// and BENCH_PUBLISHED_ROWS scale them down for a quick look.
// Network deadlines follow the settings, as in production (on, at their defaults). BENCH_DEADLINES=off
// turns them all off (every deadline setting 0), to measure what they cost: run once each way.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { createTokenService } from '../src/platform/auth/token.ts';
import { createChatSession, sendMessage } from '../src/domain/chat/chat.service.ts';
import { loadConfig } from '../src/platform/config.ts';
import { dbOf } from '../src/platform/db/database.ts';
import { createOrm, forkEm } from '../src/platform/db/orm.ts';
import { createLogger } from '../src/platform/logger.ts';
import { OutboxPublisher } from '../src/outbox/outbox.publisher.ts';
import { claimBatch } from '../src/outbox/outbox.sql.ts';
import { createProject } from '../src/domain/projects/project.service.ts';
import { createMemoryBus } from '../src/bus/event-bus.ts';
import { createCommitNotifier } from '../src/outbox/outbox.wakeups.ts';
import { PROJECT_EVENTS, subscribe } from '../test/support/subscriber.ts';
import { insertEvents, seedMessage, type SeedEvent } from '../test/support/outbox-seed.ts';
import { createBenchDatabase, fmt, percentile, startServerProcess, timed } from './support.ts';

const silent = createLogger({ level: 'silent', pretty: false });
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 100_000);
const SESSIONS = 1_000;
const RATE = 500;
const LATENCY_EVENTS = Number(process.env.BENCH_LATENCY_EVENTS ?? 5_000);
const PUBLISHED_ROWS = Number(process.env.BENCH_PUBLISHED_ROWS ?? 1_000_000);
const DEADLINES_OFF: Record<string, string> = {
  DB_CONNECT_TIMEOUT_MS: '0',
  DB_QUERY_TIMEOUT_MS: '0',
  TCP_KEEPALIVE_MS: '0',
  REDIS_COMMAND_TIMEOUT_MS: '0',
  REDIS_PING_INTERVAL_MS: '0',
  OUTBOX_CYCLE_TIMEOUT_MS: '0',
  OUTBOX_LISTEN_PING_MS: '0',
};
if (process.env.BENCH_DEADLINES === 'off') Object.assign(process.env, DEADLINES_OFF);
/** The deadlines the app would use with these settings: the drain's ORM and publisher get them too. */
const deadlineConfig = loadConfig(process.env, { requireAuth: false });
const publisherDeadlines = {
  connectTimeoutMs: deadlineConfig.network.dbConnectTimeoutMs,
  queryTimeoutMs: deadlineConfig.network.dbQueryTimeoutMs,
  keepAliveMs: deadlineConfig.network.tcpKeepAliveMs,
};
console.log(`network deadlines ${process.env.BENCH_DEADLINES === 'off' ? 'off (BENCH_DEADLINES=off)' : 'on'}: cycle ${deadlineConfig.outbox.cycleTimeoutMs} ms, query ${publisherDeadlines.queryTimeoutMs} ms, connect ${publisherDeadlines.connectTimeoutMs} ms, keepalive ${publisherDeadlines.keepAliveMs} ms`);

async function seed(client: pg.Client, count: number, status: 'pending' | 'published', sessions = SESSIONS) {
  // `count` events over `sessions` sessions of one project, numbered as the write path would.
  const projectId = crypto.randomUUID();
  const sessionIds = Array.from({ length: sessions }, () => crypto.randomUUID());
  const hourAgo = Date.now() - 3_600_000;
  let events: SeedEvent[] = [];
  // Inserted 50,000 at a time, so a million-row seed never sits in memory at once.
  for (let sequence = 1, seeded = 0; seeded < count; sequence++, seeded += sessions) {
    const createdAt = new Date(hourAgo + sequence);
    sessionIds.forEach((sessionId, i) => {
      const projectSequence = (sequence - 1) * sessions + i + 1;
      events.push({ event: seedMessage(projectId, sessionId, { authorUserId: 'bench', body: 'benchmark message', createdAt }), sequence, projectSequence, status, createdAt });
    });
    if (events.length >= 50_000) {
      await insertEvents(client, events);
      events = [];
    }
  }
  await insertEvents(client, events);
  await client.query('analyze event_outbox');
}

async function drain(label: string, url: string, run: (orm: Awaited<ReturnType<typeof createOrm>>) => Promise<number>, sessions = SESSIONS) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('truncate event_outbox');
  await seed(client, BACKLOG, 'pending', sessions);
  const orm = await createOrm({ kind: 'postgresql', url }, { network: publisherDeadlines });
  const [published, ms] = await timed(() => run(orm));
  const left = Number((await client.query(`select count(*) from event_outbox where status = 'pending'`)).rows[0].count);
  await orm.close();
  await client.end();
  const rate = (published / ms) * 1000;
  console.log(`  ${label.padEnd(34)} ${String(published).padStart(7)} events in ${fmt(ms / 1000)} s = ${fmt(rate, 0).padStart(7)} events/s (left pending: ${left})`);
  return rate;
}

async function drainBenchmark(url: string) {
  console.log(`\n1. Drain a ${BACKLOG.toLocaleString('en')}-event backlog (${SESSIONS} sessions, in-memory bus, batch 500)`);
  const ordered = async (orm: Awaited<ReturnType<typeof createOrm>>) => {
    let published = 0;
    const bus = createMemoryBus();
    const counting = { ...bus, publish: async (events: Parameters<typeof bus.publish>[0]) => ((published += events.length), bus.publish(events)) };
    const publisher = new OutboxPublisher({
      orm,
      bus: counting,
      logger: silent,
      options: { batchSize: 500, pollIntervalMs: 1000, maxAttempts: 10, backoffBaseMs: 500, backoffMaxMs: 300_000, claimLeaseMs: 30_000, cycleTimeoutMs: deadlineConfig.outbox.cycleTimeoutMs },
    });
    publisher.start();
    while (published < BACKLOG) await new Promise((r) => setTimeout(r, 5));
    await publisher.stop(); // includes recording the last batch
    return published;
  };
  const ours = await drain('OutboxPublisher (ordered)', url, ordered);
  const naive = await drain('baseline: naive SKIP LOCKED relay', url, async (orm) => {
    // Claims the oldest pending rows with no regard for per-aggregate order, publishes, marks.
    const bus = createMemoryBus();
    let published = 0;
    for (;;) {
      const db = dbOf(forkEm(orm));
      const rows = await db.transaction().execute(async (trx) => {
        const { rows } = await sql<{ id: string; project_id: string }>`
          select id, project_id from event_outbox where status = 'pending' order by next_retry_at, created_at
          limit 500 for update skip locked`.execute(trx);
        return rows;
      });
      if (rows.length === 0) return published;
      await bus.publish(rows.map((r) => ({ eventId: r.id, projectId: r.project_id }) as never));
      await sql`update event_outbox set status = 'published', published_at = now() where id = any(${rows.map((r) => r.id)}::uuid[])`.execute(db);
      published += rows.length;
    }
  });
  console.log(`  ratio ordered / naive: ${fmt(ours / naive)}  (target: >= 10,000 events/s)`);
  // The same backlog in other shapes: the claim walks aggregates, so neither a few long sessions
  // nor very many short ones may slow it down much.
  const few = await drain('ordered, the backlog in 10 sessions', url, ordered, 10);
  const many = await drain(`ordered, in ${BACKLOG.toLocaleString('en')} sessions`, url, ordered, BACKLOG);
  console.log(`  ratio 10 sessions / 1000: ${fmt(few / ours)}, ${BACKLOG.toLocaleString('en')} sessions / 1000: ${fmt(many / ours)}`);
}

const PROJECTS = 10;

/**
 * Commits one message_created event the way the write path does (both sequence numbers under
 * the project and session row locks, one row in event_outbox), in a single statement on a plain
 * connection, followed by the same coalesced NOTIFY an API-only instance sends after commit. The
 * relay learns of it through LISTEN/NOTIFY, the cross-process path, and the writer is not the
 * bottleneck.
 */
const WRITE_EVENT = `
  with p as (update project set event_sequence = event_sequence + 1 where id = $1 returning event_sequence),
       s as (update chat_session set event_sequence = event_sequence + 1
             where id = $2 and project_id = (select $1::uuid from p) returning event_sequence)
  insert into event_outbox (id, event_type, aggregate_type, aggregate_id, sequence, project_sequence, project_id,
                            user_id, session_id, payload)
  select gen_random_uuid(), 'message_created', 'chat_session', $2, s.event_sequence, p.event_sequence, $1, 'bench', $2, $3::jsonb
  from p, s
  returning id`;

async function latencyRun(url: string, label: string, env: Record<string, string>, events: number) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('truncate event_outbox, project cascade');
  // Flush what earlier phases left dirty, so their writes do not land in this one's measurements
  // (needs superuser or pg_checkpoint; without it the phase just starts less clean).
  await client.query('checkpoint').catch(() => {});
  await client.end();
  // The server runs in its own process, as in production, so the writer and the clients of this
  // process do not share its event loop.
  // A server on PostgreSQL refuses the published development secret: this run gets its own.
  const jwtSecret = randomBytes(32).toString('hex');
  const server = await startServerProcess({ DATABASE_URL: url, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', JWT_SECRET: jwtSecret, ...env });
  const orm = await createOrm({ kind: 'postgresql', url });
  const writers = new pg.Pool({ connectionString: url, max: 8 });
  const notifierOrm = await createOrm({ kind: 'postgresql', url });
  const notifier = createCommitNotifier(notifierOrm, silent);
  try {
    // Writes spread over several projects, one graphql-ws subscriber per project.
    const sessions: { projectId: string; id: string }[] = [];
    const subscribers = [];
    const receivedAt = new Map<string, number>();
    const token = await createTokenService({ secret: jwtSecret, issuer: loadConfig({ JWT_SECRET: jwtSecret }).auth.issuer }).sign('bench');
    for (let p = 0; p < PROJECTS; p++) {
      const project = await createProject(forkEm(orm), 'bench', { name: `latency ${p}` });
      for (let i = 0; i < 5; i++) {
        const session = await createChatSession(forkEm(orm), 'bench', { projectId: project.id, title: `s${i}` });
        sessions.push({ projectId: project.id, id: session.id });
      }
      const sub = await subscribe(server.graphqlUrl, token, PROJECT_EVENTS, { projectId: project.id });
      // Record when each event reaches the client.
      const push = sub.events.push.bind(sub.events);
      sub.events.push = (...items) => {
        for (const item of items) receivedAt.set(item.eventId, performance.now());
        return push(...items);
      };
      subscribers.push(sub);
    }
    const committedAt = new Map<string, number>();
    const interval = 1000 / RATE;
    const start = performance.now();
    const writes: Promise<void>[] = [];
    // The first second warms the server up (its code paths get compiled, its pools filled) and is
    // not measured: the figures are for a server that has been running.
    const warmUp = RATE;
    for (let i = 0; i < warmUp + events; i++) {
      const wait = start + i * interval - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const session = sessions[(i % PROJECTS) * 5 + (Math.floor(i / PROJECTS) % 5)]!;
      writes.push(
        writers.query(WRITE_EVENT, [session.projectId, session.id, seedMessage(session.projectId, session.id, { authorUserId: 'bench', body: `m${i}` }).payload]).then((result) => {
          if (i >= warmUp) committedAt.set(result.rows[0].id, performance.now());
          if (env.OUTBOX_WAKE !== 'poll') notifier.signal();
        }),
      );
    }
    await Promise.all(writes);
    const elapsed = (performance.now() - start) / 1000 - warmUp / RATE;
    const deadline = Date.now() + 120_000;
    while (receivedAt.size < warmUp + events && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const latencies = [...committedAt].map(([eventId, at]) => receivedAt.get(eventId)! - at);
    for (const sub of subscribers) await sub.stop();
    console.log(
      `  ${label.padEnd(34)} ${events} events at ${fmt(events / elapsed, 0)}/s: p50 ${fmt(percentile(latencies, 50))} ms, p99 ${fmt(percentile(latencies, 99))} ms, max ${fmt(Math.max(...latencies))} ms`,
    );
    return percentile(latencies, 99);
  } finally {
    await writers.end();
    await notifierOrm.close();
    await orm.close();
    await server.stop();
  }
}

/** sendMessage throughput into one project vs spread over ten: the cost of the project-wide sequence. */
async function writeThroughput(url: string) {
  console.log('\n4. sendMessage throughput, 32 concurrent writers, 2,000 messages');
  const orm = await createOrm({ kind: 'postgresql', url });
  const rates: number[] = [];
  for (const projects of [1, 10]) {
    const sessions: string[] = [];
    for (let p = 0; p < projects; p++) {
      const project = await createProject(forkEm(orm), 'bench', { name: `throughput ${p}` });
      for (let i = 0; i < 20 / projects; i++) sessions.push((await createChatSession(forkEm(orm), 'bench', { projectId: project.id, title: `s${i}` })).id);
    }
    let next = 0;
    const [, ms] = await timed(() =>
      Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < 2_000) {
            const i = next++;
            await sendMessage(forkEm(orm), 'bench', { sessionId: sessions[i % sessions.length]!, body: `m${i}` });
          }
        }),
      ),
    );
    const rate = (2_000 / ms) * 1000;
    rates.push(rate);
    console.log(`  ${(projects === 1 ? 'one project, 20 sessions' : 'baseline: 10 projects, 2 sessions each').padEnd(40)} ${fmt(rate, 0)} messages/s`);
  }
  console.log(`  ratio one project / ten: ${fmt(rates[0]! / rates[1]!)}`);
  await orm.close();
}

async function latencyBenchmark(url: string) {
  console.log(`\n2. Commit → graphql-ws client latency at ${RATE} events/s, written by another process (projectEvents subscribers)`);
  const p99 = await latencyRun(url, 'woken by LISTEN/NOTIFY (default)', {}, LATENCY_EVENTS);
  // Baseline: wake-ups off, so only polling (every 100 ms) finds new events.
  const baseline = await latencyRun(url, 'baseline: poll only, every 100 ms', { OUTBOX_WAKE: 'poll', OUTBOX_POLL_INTERVAL_MS: '100' }, Math.min(LATENCY_EVENTS, 1500));
  console.log(`  ratio p99 wake / poll: ${fmt(p99 / baseline)}  (target: p99 <= 15 ms)`);
}

async function claimBenchmark(url: string) {
  console.log(`\n3. Claim statement time (batch 500, each claim undone before the next) with published rows accumulating`);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const orm = await createOrm({ kind: 'postgresql', url });
  async function measure(label: string) {
    const times: number[] = [];
    for (let i = 0; i < 60; i++) {
      const [claimed, ms] = await timed(() => claimBatch(orm, { limit: 500, token: crypto.randomUUID(), leaseMs: 30_000 }));
      // Undo the claim (by primary key), so every run claims the same 500 events.
      await client.query('update event_outbox set claimed_until = null, claim_token = null, attempts = 0 where id = any($1)', [claimed.rows.map((row) => row.id)]);
      if (i >= 10) times.push(ms);
    }
    console.log(`  ${label.padEnd(34)} p50 ${fmt(percentile(times, 50))} ms, p99 ${fmt(percentile(times, 99))} ms`);
    return percentile(times, 50);
  }
  await client.query('truncate event_outbox');
  await seed(client, 5_000, 'pending');
  const empty = await measure('5k pending, 0 published');
  const [, seedMs] = await timed(() => seed(client, PUBLISHED_ROWS, 'published'));
  await client.query('vacuum analyze event_outbox');
  const full = await measure(`5k pending, ${(PUBLISHED_ROWS / 1e6).toLocaleString('en')}M published`);
  console.log(`  (seeded ${PUBLISHED_ROWS.toLocaleString('en')} published rows in ${fmt(seedMs / 1000, 1)} s)`);
  console.log(`  ratio with / without published rows: ${fmt(full / empty)}`);
  await orm.close();
  await client.end();
}

const database = await createBenchDatabase('chat_outbox_bench_relay');
try {
  console.log(`bench:relay on ${new URL(database.url).host} (${process.version})`);
  // BENCH_ONLY=drain,latency,claim,writes runs some of the sections (all by default).
  const only = process.env.BENCH_ONLY?.split(',');
  const wanted = (section: string) => !only || only.includes(section);
  if (wanted('drain')) await drainBenchmark(database.url);
  if (wanted('latency')) await latencyBenchmark(database.url);
  if (wanted('claim')) await claimBenchmark(database.url);
  if (wanted('writes')) await writeThroughput(database.url);
} finally {
  await database.drop();
}
