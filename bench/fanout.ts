// npm run bench:fanout — one event to many subscribers: chat-outbox against a bare graphql-yoga +
// graphql-ws + createPubSub server (bench/peers/bare-server.ts), started one after the other by
// this bench, each in a process of its own, with the subscribers in a third process
// (bench/fanout-clients.ts). For each size N, N graphql-ws subscriptions to one project's
// `projectEvents` (one user per subscriber, all members), then 10 messages committed at 2/s over
// HTTP; latency runs from sending the mutation to each subscriber having the event. Prints
// p50/p95/p99, delivered/expected, and server RSS per subscriber: (RSS with N subscribed − RSS
// idle) / N, both read from /proc after a warm-up message reached everyone. Then, for chat-outbox
// only: 10,000 subscribers over 1,000 sessions' `sessionEvents`; two instances behind Redis
// (half the subscribers each); and 1 % of clients that stop reading (their socket is paused) while
// the others' latency is reported. Ends with the goals and whether each is met.
//
// BENCH_FANOUT_SIZES (default 1000,5000,10000), BENCH_FANOUT_EXTRAS=off skips the chat-outbox-only
// runs, BENCH_FANOUT_EXTRA_SIZE (default 10000) sizes them, BENCH_FANOUT_CPU_PROF=<dir> profiles
// each server while the measured messages go out (not while clients connect) and prints each
// profile's top functions by self time,
// BENCH_FANOUT_HEAP_SNAPSHOT=<dir> writes a heap snapshot of each server once everyone is subscribed,
// BENCH_FANOUT_API_SCRIPT=<path to another checkout's src/main.ts> measures that one instead,
// BENCH_FANOUT_PER_MESSAGE=on prints each message's first / median / last arrival, to tell a slow
// message from a slow subscriber,
// BENCH_CLUSTER=off uses the machine's PostgreSQL instead of a cluster of the bench's own.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createTokenService } from '../src/platform/auth/token.ts';
import type { ClientSpec, Command, ConnectReply, Report } from './fanout-clients.ts';
import { BARE_SCHEMA } from './peers/bare-server.ts';
import { startBenchCluster } from './pg-cluster.ts';
import { attachProfiler } from './cpu-profiler.ts';
import { API_SERVER_SCRIPT, BARE_SERVER_SCRIPT, createBenchDatabase, fmt, percentile, rssOf, SERVER_URL, startServerProcess } from './support.ts';

const SIZES = (process.env.BENCH_FANOUT_SIZES ?? '1000,5000,10000').split(',').filter(Boolean).map(Number);
const EXTRA_SIZE = Number(process.env.BENCH_FANOUT_EXTRA_SIZE ?? 10_000);
const EXTRAS = process.env.BENCH_FANOUT_EXTRAS !== 'off';
/** BENCH_FANOUT_PEER=off: chat-outbox only (while developing; the goals then say n/a). */
const PEER = process.env.BENCH_FANOUT_PEER !== 'off';
const CPU_PROF = process.env.BENCH_FANOUT_CPU_PROF ?? '';
const MESSAGES = 10;
const PER_MESSAGE = process.env.BENCH_FANOUT_PER_MESSAGE === 'on';
const INTERVAL_MS = 500;
const SESSIONS_FOR_SESSION_RUN = 1_000;
const ISSUER = 'chat-outbox';
const CLUSTER_PORT = 55461;
/** Another checkout's src/main.ts, to compare before and after a change (default: this one's). */
const API_SCRIPT = process.env.BENCH_FANOUT_API_SCRIPT || API_SERVER_SCRIPT;

const PROJECT_EVENTS = `subscription($projectId: ID!) { projectEvents(projectId: $projectId) {
  eventId projectSequence ... on MessageCreatedEvent { message { id body } } } }`;
const SESSION_EVENTS = `subscription($sessionId: ID!) { sessionEvents(sessionId: $sessionId) {
  eventId sequence ... on MessageCreatedEvent { message { id body } } } }`;
const SEND = 'mutation($s: ID!, $b: String!) { sendMessage(input: { sessionId: $s, body: $b }) { eventId } }';

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mb = (bytes: number) => bytes / 1024 / 1024;

// --- the clients' process ----------------------------------------------------------------------
function startClients() {
  const child: ChildProcess = fork(fileURLToPath(new URL('./fanout-clients.ts', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = new Map<string, (value: any) => void>();
  child.on('message', (message: { reply: string }) => waiting.get(message.reply)?.(message));
  const ask = <T>(command: Command): Promise<T> =>
    new Promise((resolve) => {
      waiting.set(command.cmd, resolve);
      child.send(command);
    });
  return {
    connect: (query: string, clients: ClientSpec[], stallEvery = 0) => ask<ConnectReply>({ cmd: 'connect', query, clients, stallEvery, concurrency: 200 }),
    reset: () => ask<unknown>({ cmd: 'reset' }),
    report: (tags: string[]) => ask<Report>({ cmd: 'report', tags }),
    close: () => ask<unknown>({ cmd: 'close' }),
    stop: () => child.kill(),
  };
}

// --- servers -----------------------------------------------------------------------------------
interface Target {
  name: string;
  /** GraphQL URL of each instance (two for the Redis run). */
  urls: string[];
  pids: number[];
  token: (userId: string) => Promise<string>;
  projectId: string;
  sessionIds: string[];
  stop(): Promise<void>;
}

async function gql(url: string, token: string, query: string, variables: Record<string, unknown>) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: any; errors?: { message: string }[] };
  if (body.errors) throw new Error(`${query.slice(0, 40)}…: ${body.errors[0]?.message}`);
  return body.data;
}

const HEAP_SNAPSHOTS = process.env.BENCH_FANOUT_HEAP_SNAPSHOT ?? '';
let nextInspectPort = 9_400;
/** Inspector port of each server process started with one, by pid (the bench profiles the message phase through it). */
const inspectPorts = new Map<number, { port: number; name: string }>();

/** Starts a server with the profiling flags asked for, and notes its inspector port. */
async function started<T extends { pid: number }>(name: string, start: (nodeArgs: string[]) => Promise<T>): Promise<T> {
  const port = CPU_PROF ? nextInspectPort++ : null;
  const server = await start([
    ...(port ? [`--inspect=127.0.0.1:${port}`] : []),
    ...(HEAP_SNAPSHOTS ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${join(HEAP_SNAPSHOTS, name)}`] : []),
  ]);
  if (port) inspectPorts.set(server.pid, { port, name });
  return server;
}

/** Profiles every server of `target` that has an inspector, until the returned stop is called. */
async function profileMessages(target: Target, run: string): Promise<() => Promise<void>> {
  const profilers: { profiler: Awaited<ReturnType<typeof attachProfiler>>; file: string }[] = [];
  for (const pid of target.pids) {
    const inspect = inspectPorts.get(pid);
    if (!inspect) continue;
    mkdirSync(join(CPU_PROF, inspect.name), { recursive: true });
    const profiler = await attachProfiler(inspect.port);
    await profiler.start();
    profilers.push({ profiler, file: join(CPU_PROF, inspect.name, `messages-${run}.cpuprofile`) });
  }
  return async () => {
    for (const { profiler, file } of profilers) await profiler.stop(file);
  };
}

async function startOurs(serverUrl: string, options: { instances: number; sessions: number; members: number }): Promise<Target> {
  const database = await createBenchDatabase('chat_outbox_bench_fanout', serverUrl);
  const secret = randomBytes(32).toString('hex');
  const tokens = createTokenService({ secret, issuer: ISSUER });
  const env = {
    DATABASE_URL: database.url,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    JWT_SECRET: secret,
    ANALYTICS_ROLLUP_INTERVAL_MS: '0',
    RATE_LIMIT_MUTATIONS_PER_MINUTE: '0',
    RATE_LIMIT_SUBSCRIBES_PER_MINUTE: '0',
    MAX_SUBSCRIPTIONS_PER_USER: '0',
    WS_MAX_CONNECTIONS_PER_USER: '0',
    ...(options.instances > 1 ? { REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' } : {}),
  };
  const servers: Awaited<ReturnType<typeof startServerProcess>>[] = [];
  for (let i = 0; i < options.instances; i++) servers.push(await started(`chat-outbox-${i}`, (args) => startServerProcess(env, API_SCRIPT, args)));
  const owner = await tokens.sign('owner');
  const url = servers[0]!.graphqlUrl;
  const projectId: string = (await gql(url, owner, 'mutation { createProject(input: { name: "Fan-out bench" }) { id } }', {})).createProject.id;
  const sessionIds: string[] = [];
  const pending = Array.from({ length: options.sessions }, (_, i) => i);
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = pending.pop(); i !== undefined; i = pending.pop()) {
        sessionIds.push((await gql(url, owner, 'mutation($p: ID!, $t: String!) { createChatSession(input: { projectId: $p, title: $t }) { id } }', { p: projectId, t: `Session ${i}` })).createChatSession.id);
      }
    }),
  );
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  await admin.query(`insert into project_member (project_id, user_id, role) select $1, 'u' || g, 'member' from generate_series(0, $2::int - 1) g`, [projectId, options.members]);
  await admin.end();
  return {
    name: options.instances > 1 ? `chat-outbox ×${options.instances} + Redis` : 'chat-outbox',
    urls: servers.map((s) => s.graphqlUrl),
    pids: servers.map((s) => s.pid),
    token: (userId) => tokens.sign(userId),
    projectId,
    sessionIds,
    async stop() {
      for (const server of servers) await server.stop();
      await database.drop();
    },
  };
}

async function startBare(serverUrl: string): Promise<Target> {
  const database = await createBenchDatabase('chat_outbox_bench_fanout_bare', serverUrl, { migrate: false });
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  await admin.query(BARE_SCHEMA);
  const projectId = randomUUID();
  const sessionId = randomUUID();
  await admin.query('insert into bare_session (id, project_id) values ($1, $2)', [sessionId, projectId]);
  await admin.end();
  const server = await started('bare', (args) => startServerProcess({ DATABASE_URL: database.url, PORT: '0', HOST: '127.0.0.1' }, BARE_SERVER_SCRIPT, args));
  return {
    name: 'bare yoga + createPubSub',
    urls: [server.graphqlUrl],
    pids: [server.pid],
    token: async () => 'none',
    projectId,
    sessionIds: [sessionId],
    async stop() {
      await server.stop();
      await database.drop();
    },
  };
}

// --- one measured run --------------------------------------------------------------------------
interface RunResult {
  label: string;
  subscribers: number;
  p50: number;
  p95: number;
  p99: number;
  delivered: number;
  expected: number;
  rssPerSubscriberKb: number;
  idleRssMb: number;
  subscribedRssMb: number;
  note: string;
}

let runCounter = 0;

/** chat-outbox's V8 heap from its /metrics (summed over instances); null for the bare server. */
async function heapOf(target: Target) {
  if (!target.name.startsWith('chat-outbox')) return null;
  const sum = { used: 0, total: 0, external: 0 };
  for (const url of target.urls) {
    const text = await (await fetch(url.replace(/\/graphql$/, '/metrics'))).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? 0);
    sum.used += value('nodejs_heap_size_used_bytes');
    sum.total += value('nodejs_heap_size_total_bytes');
    sum.external += value('nodejs_external_memory_bytes');
  }
  return sum;
}

async function measure(
  clients: ReturnType<typeof startClients>,
  target: Target,
  label: string,
  options: { subscribers: number; bySession?: boolean; stallEvery?: number },
): Promise<RunResult> {
  const run = (runCounter++).toString(36) + randomBytes(2).toString('hex');
  const rss = () => target.pids.reduce((sum, pid) => sum + rssOf(pid), 0);
  const idle = rss();
  const idleHeap = await heapOf(target);
  const specs: ClientSpec[] = [];
  for (let i = 0; i < options.subscribers; i++) {
    specs.push({
      url: target.urls[i % target.urls.length]!,
      token: await target.token(`u${i}`),
      variables: options.bySession ? { sessionId: target.sessionIds[i % target.sessionIds.length] } : { projectId: target.projectId },
    });
  }
  const connected = await clients.connect(options.bySession ? SESSION_EVENTS : PROJECT_EVENTS, specs, options.stallEvery ?? 0);
  if (connected.failed) console.log(`  ${connected.failed} connections failed, e.g. ${connected.firstError}`);
  const readers = connected.connected - connected.stalled;
  // Which session each message goes to: with sessionEvents, one of the subscribed sessions each time.
  const sessionFor = (i: number) => target.sessionIds[options.bySession ? (i * 97) % target.sessionIds.length : 0]!;
  const readersOf = (i: number) => {
    if (!options.bySession) return readers;
    const index = (i * 97) % target.sessionIds.length;
    let count = 0;
    for (let c = index; c < connected.connected; c += target.sessionIds.length) if (!(options.stallEvery && c % options.stallEvery === options.stallEvery - 1)) count += 1;
    return count;
  };
  const owner = await target.token('owner');
  const sendTo = target.urls[0]!;

  // Warm-up: until one message reaches every reader (the subscriptions are live, the JIT is warm).
  const warmDeadline = Date.now() + 120_000;
  for (let attempt = 0; ; attempt++) {
    const tag = `fanout-${run}w-${attempt}`;
    await gql(sendTo, owner, SEND, { s: sessionFor(0), b: `${tag} warm-up` });
    await sleep(1_500);
    const got = (await clients.report([tag])).times[tag]!.length;
    if (got >= readersOf(0)) break;
    if (Date.now() > warmDeadline) {
      console.log(`  warm-up reached ${got}/${readersOf(0)} subscribers only`);
      break;
    }
  }
  await sleep(500);
  const subscribed = rss();
  const subscribedHeap = await heapOf(target);
  if (HEAP_SNAPSHOTS) {
    // A heap snapshot of each server with everyone subscribed (it collects garbage first).
    for (const pid of target.pids) process.kill(pid, 'SIGUSR2');
    await sleep(15_000);
  }
  await clients.reset();

  const stopProfiling = CPU_PROF ? await profileMessages(target, run) : null;
  const sent: { tag: string; at: number; expected: number }[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const tag = `fanout-${run}-${i}`;
    const at = now();
    sent.push({ tag, at, expected: readersOf(i) });
    void gql(sendTo, owner, SEND, { s: sessionFor(i), b: `${tag} message ${i}` });
    await sleep(INTERVAL_MS);
  }
  // Let the last one arrive everywhere (or give up after 20 s).
  const expected = sent.reduce((sum, s) => sum + s.expected, 0);
  let report = await clients.report(sent.map((s) => s.tag));
  for (let waited = 0; waited < 20_000; waited += 250) {
    const delivered = Object.values(report.times).reduce((sum, list) => sum + list.length, 0);
    if (delivered >= expected) break;
    await sleep(250);
    report = await clients.report(sent.map((s) => s.tag));
  }
  await stopProfiling?.();
  const latencies = sent.flatMap((s) => report.times[s.tag]!.map((t) => t - s.at));
  if (PER_MESSAGE) {
    for (const [i, s] of sent.entries()) {
      const arrivals = report.times[s.tag]!.map((t) => t - s.at).sort((a, b) => a - b);
      console.log(`    message ${i}: first ${fmt(arrivals[0] ?? NaN, 0)}  p50 ${fmt(percentile(arrivals, 50), 0)}  last ${fmt(arrivals.at(-1) ?? NaN, 0)} ms  (${arrivals.length}/${s.expected})`);
    }
  }
  await clients.close();
  const stalledNote = options.stallEvery
    ? `; ${connected.stalled} stalled clients got ${Object.values(report.stalledReceived).reduce((a, b) => a + b, 0)}/${connected.stalled * MESSAGES} (latency is the others')`
    : '';
  return {
    label,
    subscribers: connected.connected,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    delivered: latencies.length,
    expected,
    idleRssMb: mb(idle),
    subscribedRssMb: mb(subscribed),
    rssPerSubscriberKb: (subscribed - idle) / 1024 / options.subscribers,
    note: `${subscribedHeap && idleHeap ? `V8 heap used +${fmt((subscribedHeap.used - idleHeap.used) / 1024 / options.subscribers, 1)} KB/subscriber, heap total +${fmt((subscribedHeap.total - idleHeap.total) / 1024 / options.subscribers, 1)} KB, external +${fmt((subscribedHeap.external - idleHeap.external) / 1024 / options.subscribers, 1)} KB (from /metrics). ` : ''}${report.ended ? `${report.ended} subscriptions ended with an error, e.g. ${report.endedSample}` : ''}${stalledNote}`,
  };
}

function print(result: RunResult) {
  console.log(
    `  ${result.label.padEnd(44)} ${String(result.subscribers).padStart(6)}  p50 ${fmt(result.p50, 0).padStart(5)}  p95 ${fmt(result.p95, 0).padStart(5)}  p99 ${fmt(result.p99, 0).padStart(5)} ms  ` +
      `delivered ${result.delivered}/${result.expected}  RSS idle ${fmt(result.idleRssMb, 0)} MB → ${fmt(result.subscribedRssMb, 0)} MB: ${fmt(result.rssPerSubscriberKb, 1)} KB/subscriber` +
      (result.note ? `\n    ${result.note}` : ''),
  );
}

/** The top functions of each CPU profile under `dir/name`, by self time. */
function printProfiles(dir: string) {
  for (const name of readdirSync(dir)) {
    for (const file of readdirSync(join(dir, name)).filter((f) => f.endsWith('.cpuprofile'))) {
      const profile = JSON.parse(readFileSync(join(dir, name, file), 'utf8')) as {
        nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
        samples: number[];
        timeDeltas: number[];
      };
      const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
      const self = new Map<string, number>();
      profile.samples.forEach((id, i) => {
        const frame = byNode.get(id)!.callFrame;
        const key = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(src|bench)\//, '$1/')}:${frame.lineNumber + 1}`;
        self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
      });
      const total = [...self.values()].reduce((a, b) => a + b, 0);
      console.log(`\nCPU profile ${name}/${file} (${fmt(total / 1e6, 1)} s sampled), top by self time:`);
      for (const [key, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
        console.log(`  ${fmt((100 * us) / total, 1).padStart(5)} %  ${fmt(us / 1000, 0).padStart(6)} ms  ${key}`);
      }
    }
  }
}

// --- main --------------------------------------------------------------------------------------
const cluster = await startBenchCluster('fanout', CLUSTER_PORT).catch((error) => {
  console.log(`(no cluster of its own: ${error instanceof Error ? error.message.split('\n')[0] : error}; using ${SERVER_URL})`);
  return null;
});
const serverUrl = cluster?.url ?? SERVER_URL;
if (CPU_PROF) mkdirSync(CPU_PROF, { recursive: true });
if (HEAP_SNAPSHOTS) for (const name of ['chat-outbox-0', 'chat-outbox-1', 'bare']) mkdirSync(join(HEAP_SNAPSHOTS, name), { recursive: true });
console.log(`bench:fanout — ${MESSAGES} messages at ${1000 / INTERVAL_MS}/s over HTTP; latency = mutation sent → subscriber has the event.`);
console.log(`PostgreSQL: ${cluster?.label ?? SERVER_URL}; clients in one process of their own; servers one after the other.`);
console.log('RSS per subscriber = (server RSS with N subscribed − server RSS idle) / N, from /proc after a warm-up message reached everyone.\n');

const clients = startClients();
const results = new Map<string, RunResult>();
try {
  const largest = Math.max(...SIZES, EXTRAS ? EXTRA_SIZE : 0);
  for (const size of SIZES) {
    for (const start of [() => startOurs(serverUrl, { instances: 1, sessions: 1, members: largest }), ...(PEER ? [() => startBare(serverUrl)] : [])]) {
      const target = await start();
      try {
        const result = await measure(clients, target, `${target.name}, projectEvents`, { subscribers: size });
        results.set(`${target.name}:${size}`, result);
        print(result);
      } finally {
        await target.stop();
      }
    }
    const ours = results.get(`chat-outbox:${size}`)!;
    const bare = results.get(`bare yoga + createPubSub:${size}`);
    if (bare) console.log(`  → p95 ratio chat-outbox / bare at ${size}: ${fmt(ours.p95 / bare.p95)}\n`);
  }

  if (EXTRAS) {
    console.log('No goal (chat-outbox only):');
    const sessions = await startOurs(serverUrl, { instances: 1, sessions: SESSIONS_FOR_SESSION_RUN, members: EXTRA_SIZE });
    try {
      print(await measure(clients, sessions, `sessionEvents over ${SESSIONS_FOR_SESSION_RUN} sessions`, { subscribers: EXTRA_SIZE, bySession: true }));
    } finally {
      await sessions.stop();
    }
    const redis = await startOurs(serverUrl, { instances: 2, sessions: 1, members: EXTRA_SIZE });
    try {
      print(await measure(clients, redis, `2 instances + Redis, ${EXTRA_SIZE / 2} each`, { subscribers: EXTRA_SIZE }));
    } finally {
      await redis.stop();
    }
    for (const start of [() => startOurs(serverUrl, { instances: 1, sessions: 1, members: EXTRA_SIZE }), () => startBare(serverUrl)]) {
      const target = await start();
      try {
        print(await measure(clients, target, `${target.name}, 1 % of clients stalled`, { subscribers: EXTRA_SIZE, stallEvery: 100 }));
      } finally {
        await target.stop();
      }
    }
  }

  console.log('\nGoals:');
  const goal = (text: string, met: boolean | null) => console.log(`  ${met === null ? 'n/a ' : met ? 'MET ' : 'MISS'}  ${text}`);
  const at = (name: string, size: number) => results.get(`${name}:${size}`);
  const ours10k = at('chat-outbox', 10_000);
  const bare10k = at('bare yoga + createPubSub', 10_000);
  goal(`10,000: every event delivered (${ours10k ? `${ours10k.delivered}/${ours10k.expected}` : 'not run'})`, ours10k ? ours10k.delivered === ours10k.expected : null);
  goal(
    `10,000: p95 ≤ 0.25 × bare p95 (${ours10k && bare10k ? `${fmt(ours10k.p95, 0)} vs ${fmt(0.25 * bare10k.p95, 0)} ms, ratio ${fmt(ours10k.p95 / bare10k.p95)}` : 'not run'})`,
    ours10k && bare10k ? ours10k.p95 <= 0.25 * bare10k.p95 : null,
  );
  goal(`10,000: ≤ 40 KB server RSS per subscriber (${ours10k ? `${fmt(ours10k.rssPerSubscriberKb, 1)} KB` : 'not run'})`, ours10k ? ours10k.rssPerSubscriberKb <= 40 : null);
  const ours1k = at('chat-outbox', 1_000);
  const bare1k = at('bare yoga + createPubSub', 1_000);
  goal(
    `1,000: p95 no worse than bare (${ours1k && bare1k ? `${fmt(ours1k.p95, 0)} vs ${fmt(bare1k.p95, 0)} ms` : 'not run'})`,
    ours1k && bare1k ? ours1k.p95 <= bare1k.p95 : null,
  );
} finally {
  clients.stop();
  await cluster?.stop();
}
if (CPU_PROF) printProfiles(CPU_PROF);
