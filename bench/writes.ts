// npm run bench:writes — sendMessage throughput over HTTP, 16 concurrent clients sending back to
// back, against the server process (`node src/main.ts`, publisher on as in production, agent
// runtime off, rate limit raised), in two shapes:
//   (a) 16 sessions in 16 projects, (b) 16 sessions in one project;
// and two baselines measured in the same run:
//   (1) a bare graphql-yoga + pg server (one row inserted, published in-process, no outbox);
//   (2) the write path's own statement run directly over pg with 16 connections: the database's
//       ceiling for this work.
// It runs on a PostgreSQL cluster it starts itself with production settings (autovacuum on,
// defaults otherwise), then on the machine's server (BENCH_DATABASE_URL / TEST_DATABASE_URL or
// 127.0.0.1:5432) for comparison. Prints msg/s, p50/p99, CPU per message (the server process and
// PostgreSQL, read from /proc) and the goals, met or not:
//   (a) >= 1.0 x bare;  (b) >= 0.8 x (a);  (a) >= 0.5 x SQL ceiling.
// BENCH_SECONDS (default 10) and BENCH_WARMUP_SECONDS (default 2) per measurement;
// BENCH_TARGETS=cluster,machine picks the servers; BENCH_CPU_PROF=<dir> writes a CPU profile of
// the server process (node --cpu-prof) per target; BENCH_ONLY=server,bare,sql picks the measurements;
// BENCH_SERVER_ENTRY=/abs/path/src/main.ts measures another checkout's server (an older version, for
// a before/after on the same machine; the schema must match).
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler } from 'kysely';
import pg from 'pg';
import { createTokenService } from '../src/platform/auth/token.ts';
import { createChatSession } from '../src/domain/chat/chat.service.ts';
import { messageWithEventStatement } from '../src/domain/chat/message.repository.ts';
import { createProject } from '../src/domain/projects/project.service.ts';
import { messageCreatedInSession } from '../src/events/domain-event.ts';
import { newEventRow } from '../src/outbox/outbox.writer.ts';
import { loadConfig } from '../src/platform/config.ts';
import type { Database } from '../src/platform/db/database.ts';
import { newId } from '../src/platform/db/ids.ts';
import { createOrm, forkEm } from '../src/platform/db/orm.ts';
import { BARE_SCHEMA } from './peers/bare-server.ts';
import { startBenchCluster } from './pg-cluster.ts';
import { API_SERVER_SCRIPT, BARE_SERVER_SCRIPT, cpuMsOf, createBenchDatabase, fmt, percentile, postgresCpuMs, SERVER_URL, startServerProcess } from './support.ts';

const CLIENTS = 16;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
const USER = 'bench';
/** The bench's own PostgreSQL cluster listens here (BENCH_CLUSTER_PORT). */
const CLUSTER_PORT = Number(process.env.BENCH_CLUSTER_PORT ?? 55441);
const only = process.env.BENCH_ONLY?.split(',');
const profileArgs = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
const wanted = (part: 'server' | 'bare' | 'sql') => !only || only.includes(part);

interface Result {
  rate: number;
  p50: number;
  p99: number;
  errors: number;
  /** CPU ms per message over the measured seconds: the server process's (when there is one) and all of PostgreSQL's. */
  serverCpuMs?: number;
  postgresCpuMs: number;
}

/**
 * `CLIENTS` loops, each sending back to back for the warm-up and then `SECONDS`; only what
 * completes after the warm-up counts. Client `i` writes with `send(i, n)`. With `serverPid`, the
 * CPU that process used in the measured seconds is reported per message, beside PostgreSQL's:
 * throughput swings with the shared machine's load, CPU per message much less.
 */
async function load(send: (client: number, n: number) => Promise<boolean>, serverPid?: number): Promise<Result> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const measureFrom = started + WARMUP_SECONDS * 1000;
  const until = measureFrom + SECONDS * 1000;
  const cpuNow = () => ({ server: serverPid ? cpuMsOf(serverPid) : 0, postgres: postgresCpuMs() });
  const cpu: { from?: ReturnType<typeof cpuNow>; to?: ReturnType<typeof cpuNow> } = {};
  const sampleFrom = setTimeout(() => (cpu.from = cpuNow()), measureFrom - performance.now());
  const sampleTo = setTimeout(() => (cpu.to = cpuNow()), until - performance.now());
  let firstError: unknown;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, client) => {
      for (let n = 0; performance.now() < until; n++) {
        const at = performance.now();
        let ok = false;
        try {
          ok = await send(client, n);
        } catch (error) {
          firstError ??= error;
        }
        const done = performance.now();
        if (at < measureFrom || done > until) continue;
        if (ok) latencies.push(done - at);
        else errors++;
      }
    }),
  );
  if (firstError) console.log(`    first error: ${firstError instanceof Error ? firstError.message : String(firstError)}`);
  clearTimeout(sampleFrom);
  clearTimeout(sampleTo);
  cpu.to ??= cpuNow();
  const from = cpu.from ?? cpu.to;
  const perMessage = (ms: number) => (latencies.length ? ms / latencies.length : Number.NaN);
  return {
    rate: latencies.length / SECONDS,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
    ...(serverPid ? { serverCpuMs: perMessage(cpu.to.server - from.server) } : {}),
    postgresCpuMs: perMessage(cpu.to.postgres - from.postgres),
  };
}

const line = (label: string, result: Result) =>
  console.log(
    `  ${label.padEnd(52)} ${fmt(result.rate, 0).padStart(6)} msg/s   p50 ${fmt(result.p50).padStart(7)} ms   p99 ${fmt(result.p99).padStart(7)} ms` +
      `   CPU/msg ${result.serverCpuMs === undefined ? '' : `server ${fmt(result.serverCpuMs)} ms, `}PostgreSQL ${fmt(result.postgresCpuMs)} ms${result.errors ? `   errors ${result.errors}` : ''}`,
  );

/** POSTs GraphQL operations over one keep-alive agent; resolves to the parsed body. */
function graphqlClient(url: string, token: string) {
  const target = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  return {
    post(query: string, variables: Record<string, unknown>): Promise<{ data?: Record<string, unknown> | null; errors?: unknown[] }> {
      const body = JSON.stringify({ query, variables });
      return new Promise((resolve, reject) => {
        const request = http.request(
          {
            agent,
            host: target.hostname,
            port: target.port,
            path: target.pathname,
            method: 'POST',
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${token}` },
          },
          (response) => {
            let text = '';
            response.setEncoding('utf8');
            response.on('data', (chunk: string) => (text += chunk));
            response.on('end', () => {
              try {
                resolve(JSON.parse(text));
              } catch {
                reject(new Error(`HTTP ${response.statusCode}: ${text.slice(0, 200)}`));
              }
            });
          },
        );
        request.on('error', reject);
        request.end(body);
      });
    },
    close: () => agent.destroy(),
  };
}

/** The same document to both servers (the bare one has no `sequence`). */
const SEND_MESSAGE = `mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { eventId message { id createdAt } } }`;

/** A migrated database of its own on the server at `adminUrl`, with an ORM to seed it; `drop` removes both. */
async function createDatabase(adminUrl: string) {
  const database = await createBenchDatabase('chat_outbox_bench_writes', adminUrl);
  const orm = await createOrm({ kind: 'postgresql', url: database.url });
  return {
    url: database.url,
    orm,
    async drop() {
      await orm.close(true);
      await database.drop();
    },
  };
}

/**
 * What the server's connections do while it runs, sampled from pg_stat_activity every 20 ms:
 * `report` prints, since the last report, the average number of them active and how many of
 * those waited on a row lock (`Lock:transactionid`/`tuple`), the queue the project row made.
 */
async function sampleWaits(url: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const database = new URL(url).pathname.slice(1);
  let samples = 0;
  let active = 0;
  let locked = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const { rows } = await client.query<{ active: string; locked: string }>(
        `select count(*) filter (where state = 'active') as active,
                count(*) filter (where wait_event_type = 'Lock' and wait_event in ('transactionid', 'tuple')) as locked
         from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`,
        [database],
      );
      samples++;
      active += Number(rows[0]!.active);
      locked += Number(rows[0]!.locked);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    report() {
      console.log(`      server connections: ${fmt(active / samples, 1)} active on average, ${fmt(locked / samples, 1)} of them waiting on a row lock`);
      samples = active = locked = 0;
    },
    async stop() {
      running = false;
      await loop;
      await client.end();
    },
  };
}

/** Client `i` sends to `sessions[i]`, one message after another. */
const send = (client: ReturnType<typeof graphqlClient>, sessions: string[]) => async (i: number, n: number) => {
  const response = await client.post(SEND_MESSAGE, { input: { sessionId: sessions[i]!, body: `m${n}` } });
  if (response.errors || !response.data) throw new Error(JSON.stringify(response.errors).slice(0, 300));
  return true;
};

interface Shapes {
  /** (a): one session in each of 16 projects. */
  spread: string[];
  /** (b): 16 sessions of one project. */
  oneProject: string[];
}

async function seed(orm: Awaited<ReturnType<typeof createOrm>>): Promise<Shapes> {
  const spread: string[] = [];
  for (let p = 0; p < CLIENTS; p++) {
    const project = await createProject(forkEm(orm), USER, { name: `spread ${p}` });
    spread.push((await createChatSession(forkEm(orm), USER, { projectId: project.id, title: 'bench' })).id);
  }
  const project = await createProject(forkEm(orm), USER, { name: 'one project' });
  const oneProject: string[] = [];
  for (let i = 0; i < CLIENTS; i++) oneProject.push((await createChatSession(forkEm(orm), USER, { projectId: project.id, title: `s${i}` })).id);
  return { spread, oneProject };
}

/** The write path's statement, as the server sends it (same text, fresh values, a named prepared statement), on connections of its own. */
async function sqlCeiling(url: string, sessions: string[]): Promise<Result> {
  const pool = new pg.Pool({ connectionString: url, max: CLIENTS, options: '-c jit=off' });
  pool.on('error', () => {}); // an idle connection ended by the database's drop
  // Only compiles the statement: it runs on the pool directly, with no query builder in the loop.
  const builder = new Kysely<Database>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => new PostgresIntrospector(db),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
  });
  try {
    return await load(async (client, n) => {
      const sessionId = sessions[client]!;
      const message = { id: newId(), sessionId, authorUserId: USER, role: 'user' as const, body: `sql ${n}`, replyToId: null, createdAt: new Date() };
      const event = messageCreatedInSession({ messageId: message.id, sessionId, authorUserId: USER, role: 'user', body: message.body, createdAt: message.createdAt.toISOString() });
      const compiled = messageWithEventStatement(builder, message, USER, newEventRow(event)).compile();
      const { rows } = await pool.query({ name: 'send_message', text: compiled.sql, values: [...compiled.parameters] });
      return rows.length === 1;
    });
  } finally {
    await pool.end();
  }
}

interface TargetResult {
  label: string;
  spread?: Result;
  oneProject?: Result;
  bare?: Result;
  sqlSpread?: Result;
  sqlOneProject?: Result;
}

async function measureTarget(label: string, adminUrl: string): Promise<TargetResult> {
  console.log(`\n${label}: ${new URL(adminUrl).host}, ${SECONDS} s per measurement after ${WARMUP_SECONDS} s of warm-up, ${CLIENTS} clients`);
  const database = await createDatabase(adminUrl);
  const result: TargetResult = { label };
  try {
    const shapes = await seed(database.orm);
    const jwtSecret = randomBytes(32).toString('hex');
    const token = await createTokenService({ secret: jwtSecret, issuer: loadConfig({ JWT_SECRET: jwtSecret }).auth.issuer }).sign(USER);

    if (wanted('server')) {
      const server = await startServerProcess(
        {
          DATABASE_URL: database.url,
          PORT: '0',
          HOST: '127.0.0.1',
          JWT_SECRET: jwtSecret,
          NODE_ENV: 'production',
          // As in production, except: no agent answers the bench's messages, and one user may send this many.
          AGENT_RUNTIME_ENABLED: 'false',
          RATE_LIMIT_MUTATIONS_PER_MINUTE: '1000000',
        },
        process.env.BENCH_SERVER_ENTRY || API_SERVER_SCRIPT,
        profileArgs,
      );
      const client = graphqlClient(server.graphqlUrl, token);
      try {
        const waits = await sampleWaits(database.url);
        line('(a) chat-outbox, 16 sessions in 16 projects', (result.spread = await load(send(client, shapes.spread), server.pid)));
        waits.report();
        line('(b) chat-outbox, 16 sessions in one project', (result.oneProject = await load(send(client, shapes.oneProject), server.pid)));
        waits.report();
        await waits.stop();
      } finally {
        client.close();
        await server.stop();
      }
    }

    if (wanted('bare')) {
      // Its own sessions, in 16 projects; its own process, like the server's.
      const admin = new pg.Client({ connectionString: database.url });
      await admin.connect();
      await admin.query(BARE_SCHEMA);
      const bareSessions = shapes.spread.map(() => newId());
      for (const id of bareSessions) await admin.query('insert into bare_session (id, project_id) values ($1, $2)', [id, newId()]);
      await admin.end();
      const bare = await startServerProcess({ DATABASE_URL: database.url, PORT: '0', HOST: '127.0.0.1' }, BARE_SERVER_SCRIPT, profileArgs);
      const client = graphqlClient(bare.graphqlUrl, token);
      try {
        line('(1) bare graphql-yoga + pg server, 16 projects', (result.bare = await load(send(client, bareSessions), bare.pid)));
      } finally {
        client.close();
        await bare.stop();
      }
    }

    if (wanted('sql')) {
      line('(2) the statement over pg, 16 projects (ceiling)', (result.sqlSpread = await sqlCeiling(database.url, shapes.spread)));
      line('    the statement over pg, one project', (result.sqlOneProject = await sqlCeiling(database.url, shapes.oneProject)));
    }
    printGoals(result);
  } finally {
    await database.drop();
  }
  return result;
}

function printGoals(result: TargetResult) {
  const goal = (name: string, value: number | undefined, target: number) =>
    value === undefined || Number.isNaN(value)
      ? console.log(`  goal ${name.padEnd(30)} not measured`)
      : console.log(`  goal ${name.padEnd(30)} ${fmt(value).padStart(5)} (target >= ${fmt(target, 1)}): ${value >= target ? 'met' : 'NOT MET'}`);
  const ratio = (a?: Result, b?: Result) => (a && b ? a.rate / b.rate : undefined);
  goal('(a) / bare server', ratio(result.spread, result.bare), 1.0);
  goal('(b) / (a)', ratio(result.oneProject, result.spread), 0.8);
  goal('(a) / SQL ceiling', ratio(result.spread, result.sqlSpread), 0.5);
}

console.log(`bench:writes (${process.version})`);
const targets = process.env.BENCH_TARGETS?.split(',') ?? ['cluster', 'machine'];
const results: TargetResult[] = [];
if (targets.includes('cluster')) {
  const cluster = await startBenchCluster('chat_outbox_bench_writes', CLUSTER_PORT);
  if (cluster) {
    try {
      results.push(await measureTarget(cluster.label, cluster.url));
    } finally {
      await cluster.stop();
    }
  }
}
if (targets.includes('machine')) results.push(await measureTarget(`machine server ${new URL(SERVER_URL).host} (CI settings: autovacuum off)`, SERVER_URL));
if (results.length > 1) {
  console.log('\nside by side, msg/s:                                   (a)    (b)   bare  SQL (a)');
  for (const r of results) console.log(`  ${r.label.slice(0, 52).padEnd(52)} ${[r.spread, r.oneProject, r.bare, r.sqlSpread].map((x) => (x ? fmt(x.rate, 0) : '-').padStart(6)).join(' ')}`);
}
