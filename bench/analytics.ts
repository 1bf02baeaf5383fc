// npm run bench:analytics
//
// Seeds a project with 1,000,000 events over 90 days in 2,000 sessions on a database of its own,
// folds them with the real rollup worker, then prints p50/p95 of the analytics queries over HTTP,
// the commit -> visible delay, and how sendMessage latency changes while analytics run in a loop,
// as ratios against a baseline measured in the same run. Drops the database at the end.
//
// BENCH_SCALE=0.1 runs a tenth of the data (for a quick look); the targets are for 1.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createAnalyticsRollupWorker } from '../src/domain/analytics/analytics-rollup.worker.ts';
import { getProjectAnalytics, listProjectEvents, listSessionEvents } from '../src/domain/analytics/analytics.service.ts';
import { forkEm } from '../src/platform/db/orm.ts';
import { startApp, type App } from '../src/app.ts';
import { loadConfig } from '../src/platform/config.ts';
import { createLogger } from '../src/platform/logger.ts';
import { agentSwitched, messageCreated } from '../src/events/domain-event.ts';
import { databaseUrl, quoteIdent, uniqueDatabaseName, withAdminClient } from '../test/support/database.ts';
import { insertEvents, seedMessage, type SeedEvent } from '../test/support/outbox-seed.ts';

const SCALE = Number(process.env.BENCH_SCALE ?? '1');
const MESSAGE_PAIRS = Math.round(475_000 * SCALE); // a user message and an agent reply each
const SWITCHES = Math.round(50_000 * SCALE);
const SESSIONS = 2_000;
const USERS = 50;
const AGENTS = 5;
const DAYS = 90;
const DAY_MS = 86_400_000;

const logger = createLogger({ level: 'silent', pretty: false });
const line = (text = '') => console.log(text);

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(p * sorted.length)) - 1] ?? NaN;
}
const ms = (value: number) => `${value.toFixed(value < 10 ? 2 : 1)} ms`;
const summary = (samples: number[]) => `p50 ${ms(percentile(samples, 0.5))}  p95 ${ms(percentile(samples, 0.95))}  p99 ${ms(percentile(samples, 0.99))}  (n=${samples.length})`;

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const start = performance.now();
  const result = await work();
  return [performance.now() - start, result];
}

// ---------------------------------------------------------------------------------------------

async function seed(client: pg.Client, projectId: string) {
  const start = Date.now() - DAYS * DAY_MS;
  await client.query(`insert into project (id, name) values ($1, 'Bench project')`, [projectId]);
  await client.query(
    `insert into project_member (project_id, user_id, role)
     select $1, 'user-' || lpad(u::text, 2, '0'), case when u = 0 then 'owner' else 'member' end from generate_series(0, $2 - 1) u`,
    [projectId, USERS],
  );
  // Ids made here, so the events below can be built with the event contract's constructors.
  const agentIds = Array.from({ length: AGENTS }, () => crypto.randomUUID());
  const spaceIds = Array.from({ length: USERS }, () => crypto.randomUUID());
  const sessionIds = Array.from({ length: SESSIONS }, () => crypto.randomUUID());
  const indexed = (name: string, column: string) => `create temporary table ${name} as select (ord - 1)::int as ${column}, id from unnest($1::uuid[]) with ordinality as t(id, ord)`;
  await client.query(indexed('bench_agent', 'a'), [agentIds]);
  await client.query(`insert into agent (id, project_id, name) select id, $1, 'Agent ' || a from bench_agent`, [projectId]);
  await client.query(indexed('bench_space', 'u'), [spaceIds]);
  await client.query(
    `insert into worker_space (id, project_id, user_id, event_sequence) select id, $1, 'user-' || lpad(u::text, 2, '0'), 0 from bench_space`,
    [projectId],
  );
  await client.query(indexed('bench_session', 's'), [sessionIds]);
  await client.query(
    `insert into chat_session (id, project_id, title, created_by_user_id, created_at)
     select id, $1, 'Session ' || s, 'user-' || lpad((s % $2)::text, 2, '0'), to_timestamp($3 / 1000.0) from bench_session`,
    [projectId, USERS, start],
  );

  // One transaction per day of events, so they carry 90 different transaction ids, as a live
  // system's would carry many. Pair k is a user message in session k % 2000 and the agent's reply
  // 1 s to 2 min later; switches walk each user's worker space through the agents in turn.
  for (let day = 0; day < DAYS; day++) {
    const pairs = [Math.floor((day * MESSAGE_PAIRS) / DAYS), Math.floor(((day + 1) * MESSAGE_PAIRS) / DAYS)];
    const switches = [Math.floor((day * SWITCHES) / DAYS), Math.floor(((day + 1) * SWITCHES) / DAYS)];
    const user = (u: number) => `user-${String(u).padStart(2, '0')}`;
    const events: SeedEvent[] = [];
    for (let k = pairs[0]!; k < pairs[1]!; k++) {
      const sessionId = sessionIds[k % SESSIONS]!;
      const agentId = agentIds[k % AGENTS]!;
      const asked = start + k * ((DAYS * DAY_MS) / MESSAGE_PAIRS);
      const answered = asked + 1000 + ((k * 7919) % 119000);
      for (const [n, at, authorUserId, extra] of [
        [1, asked, user((k % SESSIONS) % USERS), {}],
        [2, answered, `agent:${agentId}`, { agentId }],
      ] as const) {
        const createdAt = new Date(at);
        const event = messageCreated(projectId, {
          messageId: crypto.randomUUID(),
          sessionId,
          authorUserId,
          role: n === 1 ? 'user' : 'agent',
          ...extra,
          body: 'bench message',
          createdAt: createdAt.toISOString(),
        });
        const sequence = 2 * Math.floor(k / SESSIONS) + n;
        events.push({ event, sequence, projectSequence: 2 * k + n, status: 'published', attempts: 1, createdAt });
      }
    }
    for (let j = switches[0]!; j < switches[1]!; j++) {
      const round = Math.floor(j / USERS);
      const from = round > 0 ? (round - 1) % AGENTS : null;
      const to = round % AGENTS;
      const at = start + j * ((DAYS * DAY_MS) / SWITCHES);
      const event = agentSwitched(projectId, user(j % USERS), {
        workerSpaceId: spaceIds[j % USERS]!,
        fromAgentId: from === null ? null : agentIds[from]!,
        fromAgentName: from === null ? null : `Agent ${from}`,
        toAgentId: agentIds[to]!,
        toAgentName: `Agent ${to}`,
      });
      events.push({ event, sequence: round + 1, projectSequence: 2 * MESSAGE_PAIRS + j + 1, status: 'published', attempts: 1, createdAt: new Date(at) });
    }
    await client.query('begin');
    await insertEvents(client, events);
    await client.query('commit');
  }
  await client.query(
    `update chat_session s set event_sequence = coalesce((select max(sequence) from event_outbox e where e.aggregate_id = s.id), 0) where project_id = $1`,
    [projectId],
  );
  await client.query(`update project set event_sequence = (select max(project_sequence) from event_outbox where project_id = $1) where id = $1`, [projectId]);
  await client.query(
    `update worker_space w set event_sequence = coalesce((select max(sequence) from event_outbox e where e.aggregate_id = w.id), 0),
       active_agent_id = (select (e.payload->>'toAgentId')::uuid from event_outbox e where e.aggregate_id = w.id order by sequence desc limit 1)
     where project_id = $1`,
    [projectId],
  );
  await client.query('vacuum analyze');
  const sessions = (await client.query(`select id from bench_session order by s`)).rows.map((row) => row.id as string);
  return { sessions };
}

/** A small second project where user-00 and user-01 are members, with one session. */
async function seedWatchedProject(client: pg.Client) {
  const projectId = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c';
  const sessionId = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d';
  await client.query(`insert into project (id, name) values ($1, 'Watched')`, [projectId]);
  await client.query(`insert into project_member (project_id, user_id, role) values ($1, 'user-00', 'owner'), ($1, 'user-01', 'member')`, [projectId]);
  await client.query(`insert into chat_session (id, project_id, title, created_by_user_id) values ($1, $2, 'Watched', 'user-00')`, [sessionId, projectId]);
  return { projectId, sessionId };
}

// ---------------------------------------------------------------------------------------------

function graphqlClient(app: App, token: string) {
  return async function gql<T = any>(query: string, variables: Record<string, unknown>): Promise<T> {
    const response = await fetch(app.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: T; errors?: unknown };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data!;
  };
}

const PAGE = `query($p: ID!, $f: ProjectEventsFilter, $o: EventOrder, $first: Int, $after: String) {
  projectEventHistory(projectId: $p, filter: $f, order: $o, first: $first, after: $after) {
    edges { cursor node { eventId type sequence occurredAt userId sessionId ... on MessageCreatedEvent { message { body role } } } }
    pageInfo { hasNextPage endCursor } } }`;
const SESSION_PAGE = `query($p: ID!, $s: ID!, $first: Int, $after: String) {
  sessionEventHistory(projectId: $p, sessionId: $s, first: $first, after: $after) {
    edges { cursor node { eventId sequence occurredAt ... on MessageCreatedEvent { message { body role } } } }
    pageInfo { hasNextPage endCursor } } }`;
const ANALYTICS = `query($p: ID!, $from: DateTime!, $to: DateTime!, $bucket: AnalyticsBucket) {
  projectAnalytics(projectId: $p, from: $from, to: $to, bucket: $bucket) {
    totalEvents activeUsers activeSessions eventsByType { type count }
    topSessions { sessionId messages } agentSwitches { fromAgentId toAgentId switches }
    timeSeries { start total } responseTime { responses medianMs p90Ms } } }`;
const SEND = `mutation($s: ID!, $b: String!) { sendMessage(input: { sessionId: $s, body: $b }) { eventId } }`;

async function sample(count: number, work: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < Math.min(10, count); i++) await work(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push((await timed(work))[0]);
  return samples;
}

async function main() {
  const name = uniqueDatabaseName('chat_outbox_bench');
  await withAdminClient((client) => client.query(`create database ${quoteIdent(name)}`));
  // Interrupted runs drop their database too.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void withAdminClient((admin) => admin.query(`drop database if exists ${quoteIdent(name)} with (force)`)).finally(() => process.exit(130));
    });
  }
  let app: App | null = null;
  const client = new pg.Client({ connectionString: databaseUrl(name) });
  try {
    line(`analytics bench: ${(MESSAGE_PAIRS * 2 + SWITCHES).toLocaleString('en')} events over ${DAYS} days, ${SESSIONS} sessions, ${USERS} users (database ${name})`);
    // How fast this machine is right now, to compare runs on different or busy machines with.
    await client.connect();
    const [calibrationMs] = await timed(() => client.query('select count(*) from generate_series(1, 1000000)'));
    line(`machine: select count(*) from generate_series(1, 1000000) took ${ms(calibrationMs)}`);
    // The background worker is started below, after the timed catch-up.
    // The per-user rate limit would throttle the one bench user's writes, and the agent runtime would
    // turn the million seeded user messages into reply jobs beside the measurement: it measures analytics.
    app = await startApp(loadConfig({ DATABASE_URL: databaseUrl(name), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', ANALYTICS_ROLLUP_INTERVAL_MS: '0', JWT_SECRET: randomBytes(32).toString('hex'), RATE_LIMIT_MUTATIONS_PER_MINUTE: '0', AGENT_RUNTIME_ENABLED: 'false' }), logger);
    const projectId = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
    const [seedMs, { sessions }] = await timed(() => seed(client, projectId));
    const events = Number((await client.query('select count(*) from event_outbox')).rows[0].count);
    line(`seeded ${events.toLocaleString('en')} events in ${(seedMs / 1000).toFixed(1)} s`);

    const rollup = createAnalyticsRollupWorker({ orm: app.orm, logger, options: { intervalMs: 1_000, batchSize: 20_000 } });
    const [foldMs, folded] = await timed(() => rollup.catchUp());
    // As autovacuum would: the fold rewrites running-total rows, leaving dead versions behind.
    await client.query('vacuum analyze analytics_counts_by_hour, analytics_counts_by_day');
    const counts = (await client.query(
      `select (select count(*) from analytics_counts_by_hour) as hours, (select count(*) from analytics_counts_by_day) as days,
              pg_size_pretty(pg_total_relation_size('analytics_counts_by_hour') + pg_total_relation_size('analytics_counts_by_day')) as size,
              pg_size_pretty(pg_total_relation_size('event_outbox')) as outbox`,
    )).rows[0];
    line(`rollup worker folded ${folded.toLocaleString('en')} events in ${(foldMs / 1000).toFixed(1)} s (${Math.round(folded / (foldMs / 1000)).toLocaleString('en')} events/s, batches of 20,000)`);
    line(`  running totals: ${Number(counts.hours).toLocaleString('en')} rows by hour + ${Number(counts.days).toLocaleString('en')} rows by day, ${counts.size} on disk after the fold (event_outbox: ${counts.outbox})`);
    rollup.start();

    const viewer = graphqlClient(app, await app.tokens.sign('user-00'));
    const writer = graphqlClient(app, await app.tokens.sign('user-01'));
    const now = Date.now();
    const iso = (ms: number) => new Date(ms).toISOString();

    // Cursors deep in history, found by walking there once.
    const deepFilter = { userId: 'user-07', types: ['MESSAGE_CREATED'], from: iso(now - 80 * DAY_MS), to: iso(now - 60 * DAY_MS) };
    let deepCursor: string | null = null;
    for (let i = 0; i < 10; i++) {
      const page: any = await viewer(PAGE, { p: projectId, f: deepFilter, first: 100, after: deepCursor });
      if (!page.projectEventHistory.pageInfo.hasNextPage) break;
      deepCursor = page.projectEventHistory.pageInfo.endCursor;
    }
    const session = sessions[123]!;
    const middle: any = await viewer(SESSION_PAGE, { p: projectId, s: session, first: 100 });
    const sessionCursor = middle.sessionEventHistory.edges[Math.floor(middle.sessionEventHistory.edges.length / 2)].cursor;

    const em = () => forkEm(app!.orm);
    const deepFilterArgs = { userId: 'user-07', types: ['message_created' as const], from: new Date(now - 80 * DAY_MS), to: new Date(now - 60 * DAY_MS) };
    const deepServiceCursor = await (async () => {
      let after: string | null = null;
      for (let i = 0; i < 10; i++) {
        const page = await listProjectEvents(em(), 'user-00', { projectId, filter: deepFilterArgs, first: 100, after });
        if (!(await page.hasNextPage())) break;
        after = page.cursorOf(page.items.at(-1)!);
      }
      return after;
    })();
    const sessionServiceCursor = await (async () => {
      const page = await listSessionEvents(em(), 'user-00', { projectId, sessionId: session, first: 100 });
      return page.cursorOf(page.items[Math.floor(page.items.length / 2)]!);
    })();
    const lastDays = (days: number, bucket: 'hour' | 'day') => ({ projectId, from: new Date(Date.now() - days * DAY_MS), to: new Date(), bucket });

    line();
    line('latency, sequential, one client: over HTTP (GraphQL, what a client sees) | in-process service call (no HTTP/GraphQL)');
    const cases: [string, () => Promise<unknown>, () => Promise<unknown>, number, string][] = [
      ['HTTP floor: { viewer { userId } }', () => viewer('{ viewer { userId } }', {}), async () => {}, 200, ''],
      ['projectEventHistory first page (20, newest first)', () => viewer(PAGE, { p: projectId, first: 20 }), () => listProjectEvents(em(), 'user-00', { projectId, first: 20 }), 200, 'pages <= 10 ms'],
      [
        'projectEventHistory filtered, deep (user+type+60-80 days ago, page 11)',
        () => viewer(PAGE, { p: projectId, f: deepFilter, first: 20, after: deepCursor }),
        () => listProjectEvents(em(), 'user-00', { projectId, filter: deepFilterArgs, first: 20, after: deepServiceCursor }),
        200,
        'pages <= 10 ms',
      ],
      [
        'projectEventHistory by session, oldest first',
        () => viewer(PAGE, { p: projectId, f: { sessionId: sessions[7] }, o: 'OLDEST_FIRST', first: 20 }),
        () => listProjectEvents(em(), 'user-00', { projectId, filter: { sessionId: sessions[7]! }, order: 'oldest_first', first: 20 }),
        200,
        'pages <= 10 ms',
      ],
      [
        'sessionEventHistory page (20, from the middle of a session)',
        () => viewer(SESSION_PAGE, { p: projectId, s: session, first: 20, after: sessionCursor }),
        () => listSessionEvents(em(), 'user-00', { projectId, sessionId: session, first: 20, after: sessionServiceCursor }),
        200,
        'pages <= 10 ms',
      ],
      ['projectAnalytics last 30 days, DAY', () => viewer(ANALYTICS, { p: projectId, from: iso(Date.now() - 30 * DAY_MS), to: iso(Date.now()), bucket: 'DAY' }), () => getProjectAnalytics(em(), 'user-00', lastDays(30, 'day')), 100, 'p95 <= 50 ms'],
      ['projectAnalytics last 90 days, DAY', () => viewer(ANALYTICS, { p: projectId, from: iso(Date.now() - 90 * DAY_MS), to: iso(Date.now()), bucket: 'DAY' }), () => getProjectAnalytics(em(), 'user-00', lastDays(90, 'day')), 100, 'p95 <= 50 ms'],
      ['projectAnalytics last 7 days, HOUR', () => viewer(ANALYTICS, { p: projectId, from: iso(Date.now() - 7 * DAY_MS), to: iso(Date.now()), bucket: 'HOUR' }), () => getProjectAnalytics(em(), 'user-00', lastDays(7, 'hour')), 100, ''],
    ];
    for (const [label, overHttp, inProcess, count, target] of cases) {
      // Alternated, so load from elsewhere on the machine lands on both columns alike.
      for (let i = 0; i < 10; i++) await Promise.all([overHttp(), inProcess()]);
      const http: number[] = [];
      const service: number[] = [];
      for (let i = 0; i < count; i++) {
        http.push((await timed(overHttp))[0]);
        service.push((await timed(inProcess))[0]);
      }
      line(`  ${label.padEnd(66)} http p50 ${ms(percentile(http, 0.5))} p95 ${ms(percentile(http, 0.95))} | service p50 ${ms(percentile(service, 0.5))} p95 ${ms(percentile(service, 0.95))}  (n=${count}) ${target}`);
    }
    const ninety: any = await viewer(ANALYTICS, { p: projectId, from: iso(Date.now() - 90 * DAY_MS), to: iso(Date.now()), bucket: 'DAY' });
    const a = ninety.projectAnalytics;
    line(`  (90 days: ${a.totalEvents} events, ${a.activeUsers} users, ${a.activeSessions} sessions, median response ${a.responseTime.medianMs?.toFixed(0)} ms, p90 ${a.responseTime.p90Ms?.toFixed(0)} ms)`);

    // ---- Visibility: commit -> visible to analytics ------------------------------------------
    // The delay is measured from receiving sendMessage's response (the commit is done) to the start
    // of the first read that lists the event, so a read's own latency is not counted: 0 means the
    // first read, started at once, saw it.
    line();
    line('visibility: sendMessage response received -> start of the first read that lists the event (rollup worker running)');
    const delayUntilVisible = async (visible: () => Promise<boolean>) => {
      const committed = performance.now();
      for (let reads = 1; ; reads++) {
        const started = performance.now();
        if (await visible()) return { delay: reads === 1 ? 0 : started - committed, reads };
      }
    };
    const report = (label: string, results: { delay: number; reads: number }[]) => {
      const delays = results.map((result) => result.delay);
      const first = results.filter((result) => result.reads === 1).length;
      line(`  ${label.padEnd(46)} p50 ${ms(percentile(delays, 0.5))}  p99 ${ms(percentile(delays, 0.99))}  max ${ms(Math.max(...delays))}  seen by the first read: ${first}/${results.length}`);
    };
    const listed = (sessionId: string, eventId: string) => async () => {
      const page: any = await viewer(PAGE, { p: projectId, f: { sessionId }, first: 1 });
      return page.projectEventHistory.edges[0]?.node.eventId === eventId;
    };
    const quiet = [];
    for (let i = 0; i < 100; i++) {
      const sent: any = await writer(SEND, { s: sessions[1], b: `visibility ${i}` });
      quiet.push(await delayUntilVisible(listed(sessions[1]!, sent.sendMessage.eventId)));
    }
    report('projectEventHistory, no other writers:', quiet);

    let writing = true;
    const background = Array.from({ length: 4 }, (_, w) =>
      (async () => {
        const own = graphqlClient(app!, await app!.tokens.sign(`user-${String(10 + w).padStart(2, '0')}`));
        for (let i = 0; writing; i++) await own(SEND, { s: sessions[100 + w * 10 + (i % 10)], b: `load ${w}.${i}` });
      })(),
    );
    const busy = [];
    for (let i = 0; i < 200; i++) {
      const sent: any = await writer(SEND, { s: sessions[2], b: `visibility busy ${i}` });
      busy.push(await delayUntilVisible(listed(sessions[2]!, sent.sendMessage.eventId)));
    }
    const busyAnalytics = [];
    // A project of its own, so its total moves only with the event under watch; the horizon is
    // cluster-wide, so the writers in the big project still delay it as they would in production.
    const watched = await seedWatchedProject(client);
    const watchedTotal = async () => {
      const result: any = await viewer(ANALYTICS, { p: watched.projectId, from: iso(Date.now() - DAY_MS), to: iso(Date.now() + DAY_MS), bucket: 'HOUR' });
      return result.projectAnalytics.totalEvents as number;
    };
    for (let i = 0; i < 50; i++) {
      const before = await watchedTotal();
      await writer(SEND, { s: watched.sessionId, b: `analytics visibility ${i}` });
      busyAnalytics.push(await delayUntilVisible(async () => (await watchedTotal()) > before));
    }
    writing = false;
    await Promise.all(background);
    report('projectEventHistory, 4 concurrent writers:', busy);
    report('projectAnalytics, 4 concurrent writers:', busyAnalytics);

    // ---- Interference: sendMessage while analytics run ---------------------------------------
    line();
    line('sendMessage latency while analytics queries run in a loop (2 loops: 90-day projectAnalytics + a projectEventHistory page)');
    const send = (i: number) => writer(SEND, { s: sessions[4 + (i % 50)], b: `latency ${i}` });
    let n = 0;
    const baseline = await sample(300, () => send(n++));
    let loadRunning = true;
    let analyticsQueries = 0;
    const load = Array.from({ length: 2 }, () =>
      (async () => {
        while (loadRunning) {
          await viewer(ANALYTICS, { p: projectId, from: iso(Date.now() - 90 * DAY_MS), to: iso(Date.now()), bucket: 'DAY' });
          await viewer(PAGE, { p: projectId, first: 20 });
          analyticsQueries += 2;
        }
      })(),
    );
    const [loadedMs, loaded] = await timed(() => sample(300, () => send(n++)));
    loadRunning = false;
    await Promise.all(load);
    line(`  baseline:                  ${summary(baseline)}`);
    line(`  with analytics running:    ${summary(loaded)}  (${Math.round(analyticsQueries / (loadedMs / 1000))} analytics queries/s alongside)`);
    line(`  ratio loaded/baseline:     p50 x${(percentile(loaded, 0.5) / percentile(baseline, 0.5)).toFixed(2)}  p95 x${(percentile(loaded, 0.95) / percentile(baseline, 0.95)).toFixed(2)}`);

    // ---- Interference: the relay draining a backlog while analytics run ----------------------
    // 20,000 pending events over 200 sessions of a project of their own; the app's publisher
    // drains them. Measured once alone and once beside the same two analytics loops.
    const drain = async (withLoad: boolean) => {
      const backlogProject = crypto.randomUUID();
      const backlogSessions = Array.from({ length: 200 }, () => crypto.randomUUID());
      const backlog: SeedEvent[] = [];
      for (let sequence = 1; sequence <= 100; sequence++) {
        backlogSessions.forEach((sessionId, i) => {
          const event = seedMessage(backlogProject, sessionId, { authorUserId: 'bench', body: 'backlog' });
          backlog.push({ event, sequence, projectSequence: (sequence - 1) * 200 + i + 1 });
        });
      }
      await insertEvents(client, backlog);
      let running = withLoad;
      const loops = withLoad
        ? Array.from({ length: 2 }, () =>
            (async () => {
              while (running) {
                await viewer(ANALYTICS, { p: projectId, from: iso(Date.now() - 90 * DAY_MS), to: iso(Date.now()), bucket: 'DAY' });
                await viewer(PAGE, { p: projectId, first: 20 });
              }
            })(),
          )
        : [];
      const [drainMs] = await timed(async () => {
        app!.publisher!.nudge();
        while (Number((await client.query(`select count(*) from outbox_event_status where project_id = $1 and status = 'pending'`, [backlogProject])).rows[0].count) > 0) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      });
      running = false;
      await Promise.all(loops);
      return 20_000 / (drainMs / 1000);
    };
    const alone = await drain(false);
    const beside = await drain(true);
    line(`  relay drain rate alone:    ${Math.round(alone).toLocaleString('en')} events/s`);
    line(`  beside analytics:          ${Math.round(beside).toLocaleString('en')} events/s  (ratio x${(beside / alone).toFixed(2)})`);
    await rollup.stop();
  } finally {
    await client.end().catch(() => {});
    await app?.stop();
    await withAdminClient((admin) => admin.query(`drop database if exists ${quoteIdent(name)} with (force)`));
    line(`dropped ${name}`);
  }
}

await main();
