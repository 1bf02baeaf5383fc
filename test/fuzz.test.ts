import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAppWithClient, type TestApp } from './support/app.ts';
import { createProjectFixture, SEND_MESSAGE, SWITCH_AGENT } from './support/fixtures.ts';

/**
 * A bounded, seeded fuzz of the HTTP edge: malformed documents, deep nesting, alias bombs, huge
 * strings and ids, wrong variable types, oversized bodies, every content type. Whatever arrives,
 * the server answers without a 5xx or an unmasked error, changes no row, keeps answering a good
 * query, and its memory stays bounded. The seed is printed on failure: FUZZ_SEED reruns it.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20261201);
const BURSTS = 12;
const PER_BURST = 25;
/** Growth of this process's RSS (server and client share it) allowed over the whole run. */
const RSS_GROWTH_BOUND_BYTES = 300 * 1024 * 1024;

let t: TestApp;
let db: pg.Client;
let fixture: Awaited<ReturnType<typeof createProjectFixture>>;
let intruderToken: string;

beforeAll(async () => {
  ({ t, db } = await startTestAppWithClient());
  fixture = await createProjectFixture(t, 'alice');
  // Mutations come from a user who is no member of the project, so even a well-formed one must be refused.
  intruderToken = await t.token('mallory');
});
afterAll(async () => {
  await t?.stop();
});

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  const pick = <T,>(items: readonly T[]): T => items[int(0, items.length - 1)]!;
  return { next, int, pick };
}

type Rng = ReturnType<typeof random>;
interface FuzzRequest {
  kind: string;
  method: 'GET' | 'POST';
  contentType?: string;
  body?: string;
  query?: string;
  token: string | null;
  csrfHeader?: boolean;
}

const PUNCTUATION = ['{', '}', '(', ')', '[', ']', ':', '$', '@', '...', '!', '=', '"', '#', '\\', '\u0000', '\uffff', 'query', 'mutation', 'subscription', 'fragment', 'on'];

/** Any character but a lone surrogate half, which no URL or UTF-8 body can carry. */
function anyCharacter(rng: Rng): string {
  const code = rng.int(0, 0xffff);
  return code >= 0xd800 && code <= 0xdfff ? '\ufffd' : String.fromCharCode(code);
}

function junkDocument(rng: Rng): string {
  return Array.from({ length: rng.int(1, 400) }, () => (rng.next() < 0.7 ? rng.pick(PUNCTUATION) : anyCharacter(rng))).join(rng.pick(['', ' ', '\n']));
}

function hugeString(rng: Rng): string {
  return rng.pick(['x', 'é', '😀', '\u0000', '"', '\\']).repeat(rng.int(1_000, 300_000));
}

function wrongValue(rng: Rng): unknown {
  return rng.pick<unknown>([42, -1, 1e308, true, null, [], [1, 2], {}, { nested: { deep: [1] } }, '', hugeString(rng)]);
}

const operationBuilders: Record<string, (rng: Rng) => { query: string; variables?: unknown }> = {
  malformed: (rng) => ({ query: junkDocument(rng) }),
  truncated: (rng) => ({ query: SEND_MESSAGE.slice(0, rng.int(1, SEND_MESSAGE.length - 1)), variables: { sessionId: fixture.sessionId, body: 'hi' } }),
  deepSelections: (rng) => {
    const depth = rng.int(50, 8_000);
    return { query: `{${'viewer{'.repeat(depth)}userId${'}'.repeat(depth + 1)}` };
  },
  deepList: (rng) => {
    const depth = rng.int(50, 8_000);
    return { query: `{ viewer(x: ${'['.repeat(depth)}1${']'.repeat(depth)}) { userId } }` };
  },
  aliasBomb: (rng) => {
    const count = rng.int(10, 3_000);
    return { query: `{ ${Array.from({ length: count }, (_, i) => `a${i}: viewer { userId }`).join(' ')} }` };
  },
  mutationBomb: (rng) => {
    const count = rng.int(2, 1_500);
    return { query: `mutation($s: ID!) { ${Array.from({ length: count }, (_, i) => `m${i}: sendMessage(input: { sessionId: $s, body: "x" }) { eventId }`).join(' ')} }`, variables: { s: fixture.sessionId } };
  },
  hugeBody: (rng) => ({ query: SEND_MESSAGE, variables: { sessionId: fixture.sessionId, body: hugeString(rng) } }),
  hugeId: (rng) => ({ query: SEND_MESSAGE, variables: { sessionId: hugeString(rng), body: 'hi' } }),
  wrongTypes: (rng) => ({ query: rng.pick([SEND_MESSAGE, SWITCH_AGENT]), variables: { sessionId: wrongValue(rng), body: wrongValue(rng), projectId: wrongValue(rng), agentId: wrongValue(rng) } }),
  wrongVariablesShape: (rng) => ({ query: SEND_MESSAGE, variables: rng.pick<unknown>(['not an object', 7, [1, 2], null, true]) }),
  expensive: (rng) => ({
    query: `query($id: ID!) { project(id: $id) { sessions(first: ${rng.int(0, 100)}) { nodes { messages(first: ${rng.int(0, 100)}) { nodes { id body } } } } } }`,
    variables: { id: fixture.projectId },
  }),
  foreignMutation: () => ({ query: SWITCH_AGENT, variables: { projectId: fixture.projectId, agentId: fixture.agentIds[1] } }),
};

const CONTENT_TYPES = [
  'application/json',
  'application/graphql',
  'application/graphql-response+json',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=fuzz',
  'text/plain',
  'application/xml',
  'application/json; charset=latin1',
  '',
];

function buildRequest(rng: Rng): FuzzRequest {
  const kind = rng.pick(Object.keys(operationBuilders));
  const operation = operationBuilders[kind]!(rng);
  const token = rng.next() < 0.8 ? intruderToken : rng.pick([null, 'garbage', `${intruderToken}x`]);
  if (rng.next() < 0.2) {
    const variables = rng.next() < 0.5 ? JSON.stringify(operation.variables ?? {}) : junkDocument(rng);
    return { kind: `${kind} via GET`, method: 'GET', query: `query=${encodeURIComponent(operation.query)}&variables=${encodeURIComponent(variables)}`, token, csrfHeader: rng.next() < 0.5 };
  }
  const contentType = rng.pick(CONTENT_TYPES);
  const json = rng.next() < 0.9 ? JSON.stringify(operation) : JSON.stringify(operation).slice(0, rng.int(0, 50));
  const body =
    contentType === 'application/graphql'
      ? operation.query
      : contentType === 'application/x-www-form-urlencoded'
        ? `query=${encodeURIComponent(operation.query)}&variables=${encodeURIComponent(JSON.stringify(operation.variables ?? {}))}`
        : contentType.startsWith('multipart/')
          ? `--fuzz\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${json}\r\n--fuzz--\r\n`
          : json;
  return { kind: `${kind} as ${contentType || 'no content type'}`, method: 'POST', contentType, body, token };
}

async function send(request: FuzzRequest): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { accept: 'application/graphql-response+json, application/json' };
  if (request.token) headers.authorization = `Bearer ${request.token}`;
  // Half the GETs carry the CSRF header a real client sends, so they reach the parsers too.
  if (request.method === 'GET' && request.csrfHeader) headers['x-graphql-yoga-csrf'] = '1';
  if (request.contentType) headers['content-type'] = request.contentType;
  const url = request.method === 'GET' ? `${t.app.graphqlUrl}?${request.query}` : t.app.graphqlUrl;
  const response = await fetch(url, { method: request.method, headers, body: request.body });
  return { status: response.status, text: await response.text() };
}

async function rowCounts() {
  const result = await db.query(`
    select (select count(*) from project)::int as projects, (select count(*) from project_member)::int as members,
           (select count(*) from chat_session)::int as sessions, (select count(*) from message)::int as messages,
           (select count(*) from agent)::int as agents, (select count(*) from event_outbox)::int as events,
           (select string_agg(active_agent_id::text, ',') from worker_space) as active_agents`);
  return result.rows[0];
}

describe(`seeded fuzz of the HTTP edge (seed ${SEED})`, () => {
  it(`${BURSTS} bursts of ${PER_BURST} hostile requests: no 5xx, no unmasked error, no row changed, still serving`, { timeout: 240_000 }, async () => {
    const rng = random(SEED);
    const rowsBefore = await rowCounts();
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 20);
    const kinds = new Set<string>();
    try {
      for (let burst = 0; burst < BURSTS; burst++) {
        const requests = Array.from({ length: PER_BURST }, () => buildRequest(rng));
        const answers = await Promise.all(requests.map((request) => send(request)));
        answers.forEach((answer, i) => {
          const request = requests[i]!;
          kinds.add(request.kind.split(' ')[0]!);
          const where = `seed ${SEED}, burst ${burst}, request ${i}: ${request.kind} -> ${answer.status} ${answer.text.slice(0, 200)}`;
          expect(answer.status, where).toBeLessThan(500);
          expect(answer.text, where).not.toMatch(/INTERNAL_SERVER_ERROR|Unexpected error|at .*\.(ts|js):\d+|stack|select |insert /i);
          if (answer.text) {
            const parsed = JSON.parse(answer.text) as { errors?: { extensions?: { code?: string } }[] };
            // Every error says what kind of mistake it was.
            for (const error of parsed.errors ?? []) expect(error.extensions?.code, where).toBeTruthy();
          }
        });
        const healthy = await t.gql<{ viewer: { userId: string } }>('{ viewer { userId } }', {}, { as: 'alice' });
        expect(healthy.data?.viewer.userId, `after burst ${burst}`).toBe('alice');
      }
    } finally {
      clearInterval(sampler);
    }
    expect(await rowCounts()).toEqual(rowsBefore);
    expect(rssPeak - rssBefore).toBeLessThan(RSS_GROWTH_BOUND_BYTES);
    // The seed reached every kind of hostile input at least once.
    expect(kinds.size).toBe(Object.keys(operationBuilders).length);
  });
});
