// npm run bench:relay — the OutboxPublisher on this machine. Prints:
//  1. drain rate of a 100k-event backlog (events/s) over 1,000, 10 and BENCH_BACKLOG sessions,
//     each against a naive SKIP LOCKED relay that ignores per-aggregate order and marks every row
//     published (on a copy of the log with the per-row status columns it needs), in the same run;
//  2. commit → graphql-ws client latency p50/p99 at a fixed 500 events/s (after a 3 s warm-up,
//     BENCH_LATENCY_WARMUP_SECONDS; the warm-up's own p99 is printed beside it),
//     against the same pipeline with wake-ups turned off (poll only);
//  3. the claim query's time with 1M published rows in the table, against an empty table;
//  4. sendMessage throughput into one project against ten;
//  5. the relay's database CPU per published event at a trickle (50 events/s), per minute, while
//     delivered events accumulate (read from /proc/<pid>/stat of the publisher's backends);
//  6. growth: claim, replay from a cursor, history pages and projectAnalytics on one project with
//     100k events in the log, then in the same database grown to BENCH_GROWTH_EVENTS (default 10M),
//     with the ratio of each and the bytes on disk per event at both sizes.
// Each section runs on a PostgreSQL cluster the bench starts itself with production settings
// (autovacuum on; bench/pg-cluster.ts), then on the machine's server (BENCH_CLUSTER=off or
// BENCH_TARGETS=machine: only that; BENCH_TARGETS=cluster: only the own cluster).
// BENCH_ONLY=drain,latency,claim,writes,trickle,growth runs some sections; BENCH_BACKLOG, BENCH_LATENCY_EVENTS,
// BENCH_PUBLISHED_ROWS, BENCH_TRICKLE_SECONDS (default 600) and BENCH_GROWTH_EVENTS scale them down for a quick look;
// BENCH_DRAIN_SESSIONS (default 1000,10,BACKLOG) picks the drain's shapes.
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
import { claimBatch, discoverNewEvents } from '../src/outbox/outbox.sql.ts';
import { createProject } from '../src/domain/projects/project.service.ts';
import { createMemoryBus } from '../src/bus/event-bus.ts';
import { eventFromRow, type EventRow } from '../src/events/domain-event.ts';
import { createCommitNotifier } from '../src/outbox/outbox.wakeups.ts';
import { PUBLISHER_POOL } from '../src/outbox/outbox-relay.ts';
import { PROJECT_EVENTS, subscribe } from '../test/support/subscriber.ts';
import { insertEvents, seedMessage, type SeedEvent } from '../test/support/outbox-seed.ts';
import { createAnalyticsRollupWorker } from '../src/domain/analytics/analytics-rollup.worker.ts';
import { getProjectAnalytics, listProjectEvents, listSessionEvents } from '../src/domain/analytics/analytics.service.ts';
import { createEventStreams } from '../src/subscriptions/event-subscription.service.ts';
import { StreamEnd } from '../src/subscriptions/event-stream.ts';
import { EVENTS_PER_SESSION, seedProjects, sessionOf, settleWatermarks, type ProjectGroup, type SeededProject } from './growth-log.ts';
import { cpuMsOf, createBenchDatabase, databaseUrl, fmt, percentile, SERVER_URL, startServerProcess, timed, withAdmin } from './support.ts';
import { benchServers } from './pg-cluster.ts';

const silent = createLogger({ level: 'silent', pretty: false });
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 100_000);
const SESSIONS = 1_000;
/** The drain's backlog shapes, in sessions (BENCH_DRAIN_SESSIONS=100000 measures one). */
const DRAIN_SHAPES = process.env.BENCH_DRAIN_SESSIONS?.split(',').map(Number) ?? [SESSIONS, 10, BACKLOG];
const RATE = 500;
const LATENCY_EVENTS = Number(process.env.BENCH_LATENCY_EVENTS ?? 5_000);
/**
 * Seconds of writes at the latency rate before measuring. After 1 s, most of the tail still fell in
 * the next half second (39 of 58 events over 10 ms in one run), while V8 was still optimising the
 * server's code paths: a figure for a server that has been running needs a longer start.
 */
const LATENCY_WARMUP_SECONDS = Number(process.env.BENCH_LATENCY_WARMUP_SECONDS ?? 3);
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

/**
 * The naive relay's table: the log's columns and indexes plus the per-row bookkeeping it updates
 * (status, published_at, next_retry_at and a partial index of pending rows), as the outbox looked
 * before delivery positions.
 */
const NAIVE_TABLE = `
  create table if not exists naive_outbox (like event_outbox including all);
  alter table naive_outbox add column if not exists status varchar(16) not null default 'pending',
    add column if not exists published_at timestamptz, add column if not exists next_retry_at timestamptz not null default now();
  alter table naive_outbox set (fillfactor = 50);
  create index if not exists naive_outbox_pending_idx on naive_outbox (next_retry_at, created_at) where status = 'pending';`;

async function drain(label: string, url: string, run: (orm: Awaited<ReturnType<typeof createOrm>>) => Promise<number>, sessions = SESSIONS, naive = false) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('truncate event_outbox, outbox_delivery');
  await client.query(NAIVE_TABLE);
  await client.query('truncate naive_outbox');
  await seed(client, BACKLOG, 'pending', sessions);
  if (naive) {
    await client.query('insert into naive_outbox select e.* from event_outbox e');
    await client.query('truncate event_outbox');
    await client.query('analyze naive_outbox');
  }
  // Start clean, as a server that has been vacuuming would be.
  await client.query('checkpoint').catch(() => {});
  const orm = await createOrm({ kind: 'postgresql', url }, { network: publisherDeadlines });
  const [published, ms] = await timed(() => run(orm));
  const left = naive
    ? Number((await client.query(`select count(*) from naive_outbox where status = 'pending'`)).rows[0].count)
    : Number((await client.query(`select count(*) from outbox_event_status where status = 'pending'`)).rows[0].count);
  await orm.close();
  await client.end();
  const rate = (published / ms) * 1000;
  console.log(`  ${label.padEnd(34)} ${String(published).padStart(7)} events in ${fmt(ms / 1000)} s = ${fmt(rate, 0).padStart(7)} events/s (left pending: ${left})`);
  return rate;
}

/** A publisher over an in-memory bus (batches of 500, production backoff), counting what it publishes. */
function countingPublisher(orm: Awaited<ReturnType<typeof createOrm>>) {
  let published = 0;
  const bus = createMemoryBus();
  const counting = { ...bus, publish: async (events: Parameters<typeof bus.publish>[0]) => ((published += events.length), bus.publish(events)) };
  const publisher = new OutboxPublisher({
    orm,
    bus: counting,
    logger: silent,
    options: { batchSize: 500, pollIntervalMs: 1000, maxAttempts: 10, backoffBaseMs: 500, backoffMaxMs: 300_000, claimLeaseMs: 30_000, cycleTimeoutMs: deadlineConfig.outbox.cycleTimeoutMs },
  });
  return { publisher, published: () => published };
}

async function drainBenchmark(url: string) {
  console.log(`\n1. Drain a ${BACKLOG.toLocaleString('en')}-event backlog (${SESSIONS} sessions, in-memory bus, batch 500)`);
  const ordered = async (orm: Awaited<ReturnType<typeof createOrm>>) => {
    const { publisher, published } = countingPublisher(orm);
    publisher.start();
    while (published() < BACKLOG) await new Promise((r) => setTimeout(r, 5));
    await publisher.stop(); // includes recording the last batch
    return published();
  };
  const naiveRelay = async (orm: Awaited<ReturnType<typeof createOrm>>) => {
    // Claims the oldest pending rows with no regard for per-aggregate order, publishes, marks each row.
    // It reads and publishes whole events, as ours does: the same columns, the same row -> event mapping.
    const bus = createMemoryBus();
    let published = 0;
    for (;;) {
      const db = dbOf(forkEm(orm));
      const rows = await db.transaction().execute(async (trx) => {
        const { rows } = await sql<EventRow>`
          select id, event_type, aggregate_type, aggregate_id, sequence, project_sequence, project_id, session_id,
                 user_id, payload, created_at, trace_context
          from naive_outbox where status = 'pending' order by next_retry_at, created_at
          limit 500 for update skip locked`.execute(trx);
        return rows;
      });
      if (rows.length === 0) return published;
      await bus.publish(rows.map(eventFromRow));
      await sql`update naive_outbox set status = 'published', published_at = now() where id = any(${rows.map((r) => r.id)}::uuid[])`.execute(db);
      published += rows.length;
    }
  };
  // The same backlog in three shapes: a few long sessions, the usual, very many short ones.
  const ratios: string[] = [];
  for (const sessions of DRAIN_SHAPES) {
    const shape = `${sessions.toLocaleString('en')} sessions`;
    const ours = await drain(`OutboxPublisher (ordered), ${shape}`, url, ordered, sessions);
    const naive = await drain(`baseline: naive SKIP LOCKED, ${shape}`, url, naiveRelay, sessions, true);
    const target = sessions === SESSIONS ? 1.5 : 1.0;
    ratios.push(`  ratio ordered / naive, ${shape}: ${fmt(ours / naive)}  (goal: >= ${fmt(target, 1)})`);
    console.log(ratios.at(-1));
  }
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
  await client.query('truncate event_outbox, outbox_delivery, project cascade');
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
    /** When each write's commit was answered, and whether it was written during the warm-up. */
    const committedAt = new Map<string, { at: number; warmingUp: boolean }>();
    const interval = 1000 / RATE;
    const start = performance.now();
    const writes: Promise<void>[] = [];
    // The warm-up gets the server's code paths compiled and its pools filled; it is not measured,
    // but its p99 is printed: the figures are for a server that has been running.
    const warmUp = RATE * LATENCY_WARMUP_SECONDS;
    const warmUpLatencies: number[] = [];
    for (let i = 0; i < warmUp + events; i++) {
      const wait = start + i * interval - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const session = sessions[(i % PROJECTS) * 5 + (Math.floor(i / PROJECTS) % 5)]!;
      writes.push(
        writers.query(WRITE_EVENT, [session.projectId, session.id, seedMessage(session.projectId, session.id, { authorUserId: 'bench', body: `m${i}` }).payload]).then((result) => {
          committedAt.set(result.rows[0].id, { at: performance.now(), warmingUp: i < warmUp });
          if (env.OUTBOX_WAKE !== 'poll') notifier.signal();
        }),
      );
    }
    await Promise.all(writes);
    const elapsed = (performance.now() - start) / 1000 - warmUp / RATE;
    const deadline = Date.now() + 120_000;
    while (receivedAt.size < warmUp + events && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const latencies: number[] = [];
    for (const [eventId, { at, warmingUp }] of committedAt) (warmingUp ? warmUpLatencies : latencies).push(receivedAt.get(eventId)! - at);
    for (const sub of subscribers) await sub.stop();
    console.log(
      `  ${label.padEnd(34)} ${events} events at ${fmt(events / elapsed, 0)}/s: p50 ${fmt(percentile(latencies, 50))} ms, p99 ${fmt(percentile(latencies, 99))} ms, max ${fmt(Math.max(...latencies))} ms (the ${LATENCY_WARMUP_SECONDS} s warm-up before: p99 ${fmt(percentile(warmUpLatencies, 99))} ms)`,
    );
    return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
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
  const woken = await latencyRun(url, 'woken by LISTEN/NOTIFY (default)', {}, LATENCY_EVENTS);
  // Baseline: wake-ups off, so only polling (every 100 ms) finds new events.
  const baseline = await latencyRun(url, 'baseline: poll only, every 100 ms', { OUTBOX_WAKE: 'poll', OUTBOX_POLL_INTERVAL_MS: '100' }, Math.min(LATENCY_EVENTS, 1500));
  console.log(`  ratio p99 wake / poll: ${fmt(woken.p99 / baseline.p99)}  (goal: p50 <= 3 ms, p99 <= 10 ms: ${woken.p50 <= 3 && woken.p99 <= 10 ? 'met' : 'NOT MET'})`);
}

/** One claim of a 500-event batch, undone afterwards (so every claim takes the same events); its time in ms. */
async function claimOnce(client: pg.Client, orm: Awaited<ReturnType<typeof createOrm>>): Promise<number> {
  const [claimed, ms] = await timed(() => claimBatch(orm, { limit: 500, token: crypto.randomUUID(), leaseMs: 30_000 }));
  await client.query('update outbox_delivery set claimed_until = null, claim_token = null, claimed_through = null, attempts = 0 where aggregate_id = any($1)', [claimed.runs.map((run) => run.aggregateId)]);
  return ms;
}

/** What the log costs on disk: the table with its TOAST and every index, and the delivery positions. */
async function logSize(client: pg.Client) {
  const { rows } = await client.query<{ table: string; indexes: string; positions: string; events: string }>(
    `select pg_table_size('event_outbox') as table, pg_indexes_size('event_outbox') as indexes,
            pg_total_relation_size('outbox_delivery') as positions, (select count(*) from event_outbox) as events`,
  );
  const events = Number(rows[0]!.events);
  const perEvent = (bytes: string) => Number(bytes) / events;
  return { events, table: perEvent(rows[0]!.table), indexes: perEvent(rows[0]!.indexes), positions: perEvent(rows[0]!.positions) };
}

const describeSize = (size: Awaited<ReturnType<typeof logSize>>) =>
  `${fmt(size.table + size.indexes, 0)} (event_outbox with its indexes: ${fmt(size.table, 0)} table + ${fmt(size.indexes, 0)} indexes), plus ${fmt(size.positions, 1)} for outbox_delivery`;

async function claimBenchmark(url: string) {
  console.log(`\n3. Claim statement time (batch 500, each claim undone before the next) with published rows accumulating`);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const orm = await createOrm({ kind: 'postgresql', url });
  async function measure(label: string) {
    const times: number[] = [];
    for (let i = 0; i < 60; i++) {
      const ms = await claimOnce(client, orm);
      if (i >= 10) times.push(ms);
    }
    console.log(`  ${label.padEnd(34)} p50 ${fmt(percentile(times, 50))} ms, p99 ${fmt(percentile(times, 99))} ms`);
    return percentile(times, 50);
  }
  await client.query('truncate event_outbox, outbox_delivery');
  await seed(client, 5_000, 'pending');
  await discoverNewEvents(orm);
  const empty = await measure('5k pending, 0 published');
  const [, seedMs] = await timed(() => seed(client, PUBLISHED_ROWS, 'published'));
  await client.query('vacuum analyze event_outbox');
  await client.query('vacuum analyze outbox_delivery');
  const full = await measure(`5k pending, ${(PUBLISHED_ROWS / 1e6).toLocaleString('en')}M published`);
  console.log(`  (seeded ${PUBLISHED_ROWS.toLocaleString('en')} published rows in ${fmt(seedMs / 1000, 1)} s)`);
  console.log(`  bytes on disk per event: ${describeSize(await logSize(client))}`);
  console.log(`  ratio with / without published rows: ${fmt(full / empty)}`);
  await orm.close();
  await client.end();
}

const TRICKLE_RATE = 50;
const TRICKLE_SECONDS = Number(process.env.BENCH_TRICKLE_SECONDS ?? 600);
const PUBLISHER_APP_NAME = 'chat_outbox_bench_publisher';
/** CPU milliseconds used so far by the backends of connections named `applicationName`. */
async function backendCpuMs(client: pg.Client, applicationName: string): Promise<{ ms: number; backends: number }> {
  const { rows } = await client.query<{ pid: number }>('select pid from pg_stat_activity where application_name = $1', [applicationName]);
  return { ms: rows.reduce((sum, { pid }) => sum + cpuMsOf(pid), 0), backends: rows.length };
}

/**
 * Goal 4: at 50 events/s over 200 sessions, the publisher's database CPU per published event,
 * per minute while delivered events accumulate. The publisher is woken after each commit as the
 * app's in-process wake-up does, and polls every second; its connections carry an application
 * name so their backends can be found (the backend of a connection that is replaced is counted
 * while it lives). CPU of backends that ended is lost, which can only make the figure lower than
 * it was: the backend count is printed beside it.
 */
async function trickleBenchmark(url: string) {
  console.log(`\n5. Relay database CPU per published event at ${TRICKLE_RATE} events/s for ${TRICKLE_SECONDS} s (200 sessions in 10 projects)`);
  const setup = await createOrm({ kind: 'postgresql', url });
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('truncate event_outbox, outbox_delivery, project cascade');
  const sessions: { projectId: string; id: string }[] = [];
  for (let p = 0; p < 10; p++) {
    const project = await createProject(forkEm(setup), 'bench', { name: `trickle ${p}` });
    for (let i = 0; i < 20; i++) sessions.push({ projectId: project.id, id: (await createChatSession(forkEm(setup), 'bench', { projectId: project.id, title: `s${i}` })).id });
  }
  await setup.close();
  // The publisher's pool as the relay makes it (commits without waiting for the WAL flush), named.
  const orm = await createOrm({ kind: 'postgresql', url }, { network: publisherDeadlines, pool: PUBLISHER_POOL.pool, settings: { ...PUBLISHER_POOL.settings, application_name: PUBLISHER_APP_NAME } });
  const { publisher, published } = countingPublisher(orm);
  const writers = new pg.Pool({ connectionString: url, max: 4 });
  publisher.start();
  const start = performance.now();
  let written = 0;
  let minuteStart = { at: start, cpu: (await backendCpuMs(client, PUBLISHER_APP_NAME)).ms, published: 0 };
  const perMinute: number[] = [];
  const report = async (label: string) => {
    const cpu = await backendCpuMs(client, PUBLISHER_APP_NAME);
    const events = published() - minuteStart.published;
    const msPerEvent = events ? (cpu.ms - minuteStart.cpu) / events : 0;
    const { rows } = await client.query(`select n_live_tup, n_dead_tup, last_autovacuum from pg_stat_user_tables where relname = 'outbox_delivery'`);
    console.log(
      `  ${label.padEnd(14)} ${String(events).padStart(6)} events published, ${fmt(msPerEvent, 3)} ms CPU/event (${cpu.backends} backend(s)); log ${published().toLocaleString('en')} events; outbox_delivery ${rows[0]?.n_live_tup ?? '?'} live / ${rows[0]?.n_dead_tup ?? '?'} dead tuples, last autovacuum ${rows[0]?.last_autovacuum ? new Date(rows[0].last_autovacuum).toISOString().slice(11, 19) : 'never'}`,
    );
    perMinute.push(msPerEvent);
    minuteStart = { at: performance.now(), cpu: cpu.ms, published: published() };
  };
  const writes: Promise<unknown>[] = [];
  const window = Math.min(60, TRICKLE_SECONDS);
  for (let i = 0; i < TRICKLE_RATE * TRICKLE_SECONDS; i++) {
    const wait = start + (i * 1000) / TRICKLE_RATE - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const session = sessions[i % sessions.length]!;
    writes.push(
      writers.query(WRITE_EVENT, [session.projectId, session.id, seedMessage(session.projectId, session.id, { authorUserId: 'bench', body: `m${i}` }).payload]).then(() => {
        written += 1;
        publisher.nudge();
      }),
    );
    if (performance.now() - minuteStart.at >= window * 1000) await report(`minute ${perMinute.length + 1}`);
  }
  await Promise.all(writes);
  while (published() < written) await new Promise((r) => setTimeout(r, 20));
  if (published() > minuteStart.published) await report(`minute ${perMinute.length + 1}`);
  await publisher.stop();
  await writers.end();
  await orm.close();
  await client.end();
  const first = perMinute[0] ?? 0;
  const last = perMinute.at(-1) ?? 0;
  console.log(`  CPU/event first minute ${fmt(first, 3)} ms, last ${fmt(last, 3)} ms, ratio last / first ${first ? fmt(last / first) : '-'}  (goal: <= 1 ms, flat)`);
}

const GROWTH_EVENTS = Number(process.env.BENCH_GROWTH_EVENTS ?? 10_000_000);
/** Sessions of a typical project: 10,000 events, a thousandth of a 10M log (growth-log.ts shapes them). */
const TYPICAL_SESSIONS = 100;
const TYPICAL_EVENTS = TYPICAL_SESSIONS * EVENTS_PER_SESSION;
/** The first size: this many typical projects, 100,000 events. */
const BASE_PROJECTS = 10;
const PENDING_PER_SESSION = 5;
/** Events the rollup worker folds per transaction while catching up with a seeded log: fewer running-total rows rewritten per event. */
const GROWTH_FOLD_BATCH = 250_000;
const DAY_MS = 86_400_000;

type GrowthOperation = { label: string; run: () => Promise<number> };

/**
 * The operations that must not slow down as the log grows, on one project, through the code the
 * server runs: the publisher's claim; what a subscription resuming with `after` reads (the
 * service opens the stream, the replay is read until `count` events arrive); history pages; and
 * projectAnalytics over 30 days. Each returns its time in ms.
 */
async function growthOperations(client: pg.Client, orm: Awaited<ReturnType<typeof createOrm>>, project: SeededProject, withClaim: boolean): Promise<GrowthOperation[]> {
  const em = () => forkEm(orm);
  const viewer = project.viewer;
  const streams = createEventStreams({ orm, bus: createMemoryBus(), options: deadlineConfig.subscriptions });
  const session = await sessionOf(client, project, Math.floor(project.sessions / 2));
  const eventAt = async (where: string, params: unknown[]) => (await client.query<{ id: string }>(`select id from event_outbox where ${where}`, params)).rows[0]!.id;
  const sessionCursor = await eventAt('aggregate_id = $1 and sequence = 50', [session]);
  const projectCursor = await eventAt('project_id = $1 and project_sequence = $2', [project.id, project.events - 1_000]);
  const replay = async (open: () => Promise<AsyncIterableIterator<unknown>>, count: number) => {
    const stream = await open();
    for (let i = 0; i < count; i++) {
      const next = await stream.next();
      if (next.done || next.value instanceof StreamEnd) throw new Error(`replay ended after ${i} of ${count} events`);
    }
    await stream.return?.();
  };
  // Cursors deep in history, found by walking there once: page 11 of the project's newest first.
  let pageCursor: string | null = null;
  for (let i = 0; i < 10; i++) {
    const page = await listProjectEvents(em(), viewer, { projectId: project.id, first: 100, after: pageCursor });
    pageCursor = page.cursorOf(page.items.at(-1)!);
  }
  const sessionPage = await listSessionEvents(em(), viewer, { projectId: project.id, sessionId: session, first: 100 });
  const sessionPageCursor = sessionPage.cursorOf(sessionPage.items[50]!);
  const who = { userId: viewer, tokenExpiresAt: null };
  const operations: GrowthOperation[] = [
    { label: 'replay: sessionEvents after a cursor (45 events)', run: async () => (await timed(() => replay(() => streams.session(who, session, { after: sessionCursor }), 45)))[1] },
    { label: 'replay: projectEvents after a cursor (500 events)', run: async () => (await timed(() => replay(() => streams.project(who, project.id, { after: projectCursor }), 500)))[1] },
    { label: 'projectEventHistory first page (20)', run: async () => (await timed(() => listProjectEvents(em(), viewer, { projectId: project.id, first: 20 })))[1] },
    { label: 'projectEventHistory page 51 from a cursor (20)', run: async () => (await timed(() => listProjectEvents(em(), viewer, { projectId: project.id, first: 20, after: pageCursor })))[1] },
    { label: "projectEventHistory a user's events (20)", run: async () => (await timed(() => listProjectEvents(em(), viewer, { projectId: project.id, filter: { userId: viewer }, first: 20 })))[1] },
    { label: 'sessionEventHistory from a cursor (20)', run: async () => (await timed(() => listSessionEvents(em(), viewer, { projectId: project.id, sessionId: session, first: 20, after: sessionPageCursor })))[1] },
    {
      label: 'projectAnalytics last 30 days, by day',
      run: async () => (await timed(() => getProjectAnalytics(em(), viewer, { projectId: project.id, from: new Date(Date.now() - 30 * DAY_MS), to: new Date(), bucket: 'day' })))[1],
    },
  ];
  return withClaim ? [{ label: `claim a batch of 500 (${BASE_PROJECTS * TYPICAL_SESSIONS * PENDING_PER_SESSION} pending)`, run: () => claimOnce(client, orm) }, ...operations] : operations;
}

/**
 * Every operation of every set `rounds` times, one of each per round (so load from elsewhere
 * lands on all alike), after 10 unmeasured rounds; the samples of each set by label.
 */
async function sampleOperations(sets: GrowthOperation[][], rounds = 100): Promise<Map<string, number[]>[]> {
  const samples = sets.map((operations) => new Map(operations.map((operation) => [operation.label, [] as number[]])));
  for (let round = 0; round < rounds + 10; round++) {
    for (const [i, operations] of sets.entries()) {
      for (const operation of operations) {
        const ms = await operation.run();
        if (round >= 10) samples[i]!.get(operation.label)!.push(ms);
      }
    }
  }
  return samples;
}

/** Events whose transaction has not ended are invisible to history and analytics: wait until every seeded one has. */
async function waitForHorizon(client: pg.Client) {
  const deadline = Date.now() + 300_000;
  for (let waited = 0; ; waited += 1) {
    const { rows } = await client.query<{ passed: boolean }>(
      `select pg_snapshot_xmin(pg_current_snapshot()) > coalesce((select max(transaction_id) from event_outbox), '0') as passed`,
    );
    if (rows[0]!.passed) return;
    if (waited === 0) console.log('  (waiting for a transaction elsewhere on the server to end: it holds the horizon below the seeded events)');
    if (Date.now() > deadline) throw new Error('the horizon did not pass the seeded events within 5 minutes');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

/** A connection and an ORM on one database. */
async function connectTo(url: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const orm = await createOrm({ kind: 'postgresql', url });
  let closed = false;
  return { client, orm, close: async () => void (closed || ((closed = true), await orm.close(), await client.end())) };
}

/**
 * Goal 5: the same operations at 100k events and, after growing the same database, at
 * BENCH_GROWTH_EVENTS (10M). The project measured is one of the first size's, so it is the same
 * project of 10,000 events both times: what changes is the table around it. The growth adds
 * typical projects and one project 100 times larger (a tenth of the log; less when scaled down),
 * measured too. After each step, as a live system would have done by then: the relay's watermark
 * stands past the seeded events, the rollup worker has folded them, and `vacuum analyze` has run
 * (autovacuum's work: this server's autovacuum may be off).
 *
 * Before it grows, the database is copied (CREATE DATABASE … TEMPLATE, block for block), and the
 * copy at the first size is measured beside the grown one, one round of operations on each in
 * turn: a change in the machine's load between the two sizes lands on both, not on the ratio.
 */
async function growthBenchmark(url: string) {
  const bigSessions = Math.max(TYPICAL_SESSIONS, Math.round(GROWTH_EVENTS / 10 / EVENTS_PER_SESSION / 10) * 10);
  const typicalProjects = Math.max(0, Math.round((GROWTH_EVENTS - BASE_PROJECTS * TYPICAL_EVENTS - bigSessions * EVENTS_PER_SESSION) / TYPICAL_EVENTS));
  console.log(
    `\n6. Growth: claim, replay, history pages and projectAnalytics with ${(BASE_PROJECTS * TYPICAL_EVENTS).toLocaleString('en')} events in the log, then with ${GROWTH_EVENTS.toLocaleString('en')} (the same database grown; one project of ${TYPICAL_EVENTS.toLocaleString('en')} events measured at both sizes)`,
  );
  const started = performance.now();
  const admin = databaseUrl('postgres', url);
  const copyName = `${new URL(url).pathname.slice(1)}_first_size`;
  let main = await connectTo(url);
  let copy: Awaited<ReturnType<typeof connectTo>> | null = null;
  try {
    await main.client.query('truncate event_outbox, outbox_delivery, analytics_counts_by_hour, analytics_counts_by_day, project cascade');
    await main.client.query('drop table if exists growth_project');

    /** Seeds the groups, then brings the database to where a live system would stand; prints what it took. */
    const grow = async (groups: ProjectGroup[], pendingPerSession = 0) => {
      const { client, orm } = main;
      const [projects, seedMs] = await timed(() => seedProjects(client, url, groups, { pendingPerSession }));
      await settleWatermarks(client);
      await waitForHorizon(client);
      const rollup = createAnalyticsRollupWorker({ orm, logger: silent, options: { intervalMs: 1_000, batchSize: GROWTH_FOLD_BATCH } });
      const [folded, foldMs] = await timed(() => rollup.catchUp());
      const [, vacuumMs] = await timed(() => client.query('vacuum analyze'));
      const size = await logSize(client);
      console.log(
        `  ${size.events.toLocaleString('en')} events: seeded ${projects.length} projects in ${fmt(seedMs / 1000, 1)} s, rollup worker folded ${folded.toLocaleString('en')} events in ${fmt(foldMs / 1000, 1)} s (batches of ${GROWTH_FOLD_BATCH.toLocaleString('en')}), vacuum analyze ${fmt(vacuumMs / 1000, 1)} s`,
      );
      console.log(`  bytes on disk per event: ${describeSize(size)}`);
      return { projects, size };
    };

    const base = await grow([{ first: 1, last: BASE_PROJECTS, sessions: TYPICAL_SESSIONS }], PENDING_PER_SESSION);
    const measured = base.projects[0]!;
    // A template must have no connections while it is copied.
    await main.close();
    await withAdmin((c) => c.query(`create database "${copyName}" template "${new URL(url).pathname.slice(1)}"`), admin);
    main = await connectTo(url);
    copy = await connectTo(databaseUrl(copyName, url));

    const bigN = BASE_PROJECTS + typicalProjects + 1;
    const grown = await grow([
      { first: BASE_PROJECTS + 1, last: BASE_PROJECTS + typicalProjects, sessions: TYPICAL_SESSIONS },
      { first: bigN, last: bigN, sessions: bigSessions },
    ]);
    const big = grown.projects.find((project) => project.n === bigN)!;
    const [small, large, bigSamples] = await sampleOperations([
      await growthOperations(copy.client, copy.orm, measured, true),
      await growthOperations(main.client, main.orm, measured, true),
      await growthOperations(main.client, main.orm, big, false),
    ]);

    const sizeLabel = (events: number) => (events >= 1e6 ? `${fmt(events / 1e6, events % 1e6 ? 1 : 0)}M` : `${events / 1e3}k`);
    const [smallLabel, largeLabel] = [sizeLabel(base.size.events), sizeLabel(grown.size.events)];
    const stats = (samples: number[]) => `p50 ${fmt(percentile(samples, 50)).padStart(6)} p95 ${fmt(percentile(samples, 95)).padStart(6)} ms`;
    console.log(`  ${'operation (100 runs each, both sizes in turn)'.padEnd(52)} ${`at ${smallLabel}`.padEnd(26)} ${`at ${largeLabel}`.padEnd(26)} ratio p50 (p95)  goal`);
    for (const [label, samples] of small!) {
      const after = large!.get(label)!;
      const ratio = (p: number) => fmt(percentile(after, p) / percentile(samples, p));
      console.log(`  ${label.padEnd(52)} ${stats(samples).padEnd(26)} ${stats(after).padEnd(26)} ${ratio(50)} (${ratio(95)})      <= 1.2`);
    }
    console.log(`  a project ${fmt(big.events / measured.events, 0)}× larger (${big.events.toLocaleString('en')} events, ${big.sessions.toLocaleString('en')} sessions) at ${largeLabel}, against the ${measured.events.toLocaleString('en')}-event project at ${largeLabel}:`);
    for (const [label, samples] of bigSamples!) {
      console.log(`  ${label.padEnd(52)} ${stats(samples).padEnd(26)} ${fmt(percentile(samples, 50) / percentile(large!.get(label)!, 50))}× p50`);
    }
    console.log(`  growth section took ${fmt((performance.now() - started) / 60_000, 1)} min`);
  } finally {
    await copy?.close();
    await main.close();
    await withAdmin((c) => c.query(`drop database if exists "${copyName}" with (force)`), admin);
  }
}

// BENCH_ONLY=drain,latency,claim,writes,trickle,growth runs some of the sections (all by default).
const only = process.env.BENCH_ONLY?.split(',');
const wanted = (section: string) => !only || only.includes(section);
/** The bench's own cluster on the first of its ports that starts (a busy ephemeral port can refuse the bind). */
async function startServers() {
  for (const port of [55450, 55451, 55452, 55453]) {
    try {
      return await benchServers('chat_outbox_bench_relay', port, SERVER_URL);
    } catch (error) {
      console.error(`own cluster on :${port} did not start (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`);
    }
  }
  throw new Error('no own cluster could start; BENCH_CLUSTER=off measures the machine server only');
}
// An interrupted run (Ctrl-C, a timeout) still drops its own cluster: the exit handler does that.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
const servers = await startServers();
try {
  for (const server of servers.servers) {
    const database = await createBenchDatabase('chat_outbox_bench_relay', server.url);
    try {
      console.log(`\nbench:relay on ${server.label} (${process.version})`);
      if (wanted('drain')) await drainBenchmark(database.url);
      if (wanted('latency')) await latencyBenchmark(database.url);
      if (wanted('claim')) await claimBenchmark(database.url);
      if (wanted('writes')) await writeThroughput(database.url);
      if (wanted('trickle')) await trickleBenchmark(database.url);
      if (wanted('growth')) await growthBenchmark(database.url);
    } finally {
      await database.drop();
    }
  }
} finally {
  await servers.stop();
}
