// npm run bench:limits — what the operation limits cost, and what they still allow. Prints:
//  1. p50/p99 of an ordinary chat-screen query against a server with the default limits and one
//     with every limit raised out of reach (the checks still run, they never refuse), requests
//     interleaved between the two so machine noise falls on both;
//  2. the most expensive requests the default limits still accept: the time each takes and the
//     server's peak RSS while it runs, beside the same server answering the ordinary query.
// Both servers are `node src/main.ts` in processes of their own, on one scratch database.
// BENCH_LIMITS_ROUNDS scales part 1 (default 20 rounds of 100 requests per server).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createTokenService } from '../src/platform/auth/token.ts';
import { createBenchDatabase, fmt, percentile } from './support.ts';

const ROUNDS = Number(process.env.BENCH_LIMITS_ROUNDS ?? 20);
const PER_ROUND = 100;
const SECRET = 'bench-limits-secret-0123456789abcdef0123456789';
const ISSUER = 'chat-outbox';
const SESSIONS = 10;
const MESSAGES_PER_SESSION = 100;
const BODY = 'lorem ipsum dolor sit amet '.repeat(74).slice(0, 2_000);

/** Every limit out of reach: the same code path, no refusal. */
const UNLIMITED = {
  GRAPHQL_MAX_DEPTH: '1000',
  GRAPHQL_MAX_ALIASES: '10000',
  GRAPHQL_MAX_TOKENS: '1000000',
  GRAPHQL_MAX_DIRECTIVES: '10000',
  GRAPHQL_MAX_COST: '100000000',
  GRAPHQL_MAX_MUTATION_FIELDS: '1000',
  HTTP_MAX_BODY_BYTES: '104857600',
  OPERATION_TIMEOUT_MS: '0',
};

interface Server {
  name: string;
  url: string;
  process: ChildProcess;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

async function startServer(name: string, databaseUrl: string, env: Record<string, string>): Promise<Server> {
  const port = await freePort();
  const child = spawn(process.execPath, [fileURLToPath(new URL('../src/main.ts', import.meta.url))], {
    env: {
      ...process.env,
      ...env,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      JWT_SECRET: SECRET,
      JWT_ISSUER: ISSUER,
      LOG_LEVEL: 'warn',
      OUTBOX_PUBLISHER_ENABLED: 'false',
      ANALYTICS_ROLLUP_INTERVAL_MS: '0',
      RATE_LIMIT_MUTATIONS_PER_MINUTE: '0',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    const ready = await fetch(`${url}/health/ready`).then((r) => r.ok, () => false);
    if (ready) return { name, url, process: child };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`${name} did not become ready`);
}

/** Peak and current RSS of a process; the peak can be reset (`clear_refs` 5) between measurements. */
function memoryOf(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN);
  return { peakMb: kb('VmHWM') / 1024, rssMb: kb('VmRSS') / 1024 };
}

function resetPeak(pid: number) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // Without the right to reset it, the peak since start is still an upper bound.
  }
}

async function gql(server: Server, token: string, query: string, variables: Record<string, unknown> = {}) {
  const response = await fetch(`${server.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  return { status: response.status, bytes: text.length, body: JSON.parse(text) as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] } };
}

async function seed(server: Server, token: string) {
  const project = await gql(server, token, 'mutation { createProject(input: { name: "Limits bench" }) { id } }');
  const projectId: string = project.body.data.createProject.id;
  const sessionIds: string[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const session = await gql(server, token, 'mutation($p: ID!, $t: String!) { createChatSession(input: { projectId: $p, title: $t }) { id } }', { p: projectId, t: `Session ${i}` });
    sessionIds.push(session.body.data.createChatSession.id);
  }
  const send = 'mutation($s: ID!, $b: String!) { sendMessage(input: { sessionId: $s, body: $b }) { eventId } }';
  const work = sessionIds.flatMap((sessionId) => Array.from({ length: MESSAGES_PER_SESSION }, (_, i) => ({ sessionId, body: `${i} ${BODY}` })));
  const workers = Array.from({ length: 16 }, async () => {
    for (let next = work.pop(); next; next = work.pop()) {
      const result = await gql(server, token, send, { s: next.sessionId, b: next.body });
      if (result.body.errors) throw new Error(`seeding failed: ${result.body.errors[0]?.message}`);
    }
  });
  await Promise.all(workers);
  return { projectId, sessionIds };
}

const CHAT_SCREEN = `query($id: ID!) {
  chatSession(id: $id) { id title lastEventSequence
    messages(first: 20) { nodes { id body role authorUserId createdAt } pageInfo { hasNextPage endCursor } } } }`;

/** Requests near every default limit at once, each accepted (checked before it is timed). */
function worstRequests(projectId: string, sessionIds: string[]) {
  const sixteenPages = sessionIds
    .concat(sessionIds)
    .slice(0, 16)
    .map((id, i) => `s${i}: chatSession(id: "${id}") { messages(first: 100) { nodes { id body role authorUserId createdAt } } }`)
    .join('\n');
  return [
    { name: '16 aliases × 100 messages of 2 KB (1,600 rows)', query: `query { ${sixteenPages} }`, variables: {} },
    {
      name: '2 aliases × sessions(100) × messages(15) (300 rows)',
      query: `query($p: ID!) { a: project(id: $p) { sessions(first: 100) { nodes { messages(first: 15) { nodes { id body } } } } }
                               b: project(id: $p) { sessions(first: 100) { nodes { messages(first: 15) { nodes { id body } } } } } }`,
      variables: { p: projectId },
    },
    {
      name: '12 levels, project ↔ sessions(5)',
      query: `query($p: ID!) { project(id: $p) { sessions(first: 5) { nodes { project { sessions(first: 5) { nodes { project { sessions(first: 5) { nodes { messages(first: 10) { nodes { id body } } } } } } } } } } } }`,
      variables: { p: projectId },
    },
  ];
}

async function main() {
  const db = await createBenchDatabase('chat_outbox_bench_limits');
  const tokens = createTokenService({ secret: SECRET, issuer: ISSUER });
  const token = await tokens.sign('bench-owner', { expiresIn: '2h' });
  const servers: Server[] = [];
  try {
    const limited = await startServer('default limits', db.url, {});
    servers.push(limited);
    const unlimited = await startServer('limits out of reach', db.url, UNLIMITED);
    servers.push(unlimited);
    const { projectId, sessionIds } = await seed(limited, token);
    console.log(`seeded ${SESSIONS} sessions × ${MESSAGES_PER_SESSION} messages of ${BODY.length} characters through the API`);

    // 1. The price of the checks on an ordinary query.
    const times = new Map<Server, number[]>([[limited, []], [unlimited, []]]);
    for (const server of servers) for (let i = 0; i < 50; i++) await gql(server, token, CHAT_SCREEN, { id: sessionIds[i % SESSIONS] });
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? [limited, unlimited] : [unlimited, limited];
      for (const server of order) {
        for (let i = 0; i < PER_ROUND; i++) {
          const started = performance.now();
          const result = await gql(server, token, CHAT_SCREEN, { id: sessionIds[i % SESSIONS] });
          times.get(server)!.push(performance.now() - started);
          if (result.body.errors) throw new Error(`ordinary query failed: ${result.body.errors[0]?.message}`);
        }
      }
    }
    const p50 = (s: Server) => percentile(times.get(s)!, 50);
    console.log(`\n1. ordinary chat-screen query (20 messages), ${ROUNDS * PER_ROUND} requests per server, interleaved`);
    for (const server of servers) console.log(`   ${server.name.padEnd(22)} p50 ${fmt(p50(server))} ms   p99 ${fmt(percentile(times.get(server)!, 99))} ms`);
    console.log(`   limits cost: p50 ${fmt((p50(limited) / p50(unlimited) - 1) * 100, 1)} % (goal ≤ 5 %)`);

    // 2. The worst the defaults still accept.
    console.log('\n2. the most expensive requests the default limits accept (server: default limits)');
    const pid = limited.process.pid!;
    resetPeak(pid);
    const ordinary = await gql(limited, token, CHAT_SCREEN, { id: sessionIds[0] });
    console.log(`   ordinary query for scale: ${ordinary.bytes.toLocaleString('en')} bytes, server RSS ${fmt(memoryOf(pid).rssMb, 0)} MB`);
    for (const request of worstRequests(projectId, sessionIds)) {
      resetPeak(pid);
      const before = memoryOf(pid);
      const started = performance.now();
      const result = await gql(limited, token, request.query, request.variables);
      const ms = performance.now() - started;
      if (result.status !== 200 || result.body.errors) {
        console.log(`   ${request.name}: refused (${result.body.errors?.[0]?.extensions?.code}: ${result.body.errors?.[0]?.message})`);
        continue;
      }
      const after = memoryOf(pid);
      console.log(
        `   ${request.name}: ${fmt(ms, 0)} ms, ${(result.bytes / 1e6).toFixed(1)} MB answered, server peak RSS ${fmt(after.peakMb, 0)} MB (${fmt(before.rssMb, 0)} MB before)`,
      );
    }
    const sixteen = worstRequests(projectId, sessionIds)[0]!;
    const parallel = 8;
    resetPeak(pid);
    const started = performance.now();
    await Promise.all(Array.from({ length: parallel }, () => gql(limited, token, sixteen.query)));
    console.log(`   ${parallel} of the first at once: ${fmt(performance.now() - started, 0)} ms, server peak RSS ${fmt(memoryOf(pid).peakMb, 0)} MB`);
  } finally {
    for (const server of servers) server.process.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await db.drop();
  }
}

await main();
