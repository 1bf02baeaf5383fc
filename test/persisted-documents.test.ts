import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { extractDocuments } from '../scripts/extract-documents.ts';
import { ConfigError, loadConfig } from '../src/platform/config.ts';
import { readTrustedDocuments } from '../src/platform/graphql/persisted-documents.ts';
import { schema } from '../src/schema.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { createProjectFixture } from './support/fixtures.ts';

// Trusted documents: with GRAPHQL_PERSISTED_DOCUMENTS=trusted only the documents a client's code
// holds (extracted by `npm run documents:extract`) run, over HTTP and graphql-ws, still under the
// operation limits. With `automatic`, Apollo's APQ protocol saves clients resending documents.

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const persisted = (hash: string) => ({ persistedQuery: { version: 1, sha256Hash: hash } });

const temp = mkdtempSync(join(tmpdir(), 'trusted-documents-'));
const client = join(temp, 'client');

/** A client's code: a .graphql file, and ts files with gql templates that interpolate a fragment. */
function writeClient(): void {
  mkdirSync(join(client, 'screens'), { recursive: true });
  writeFileSync(join(client, 'fragments.graphql'), 'fragment MessageFields on Message { id body authorUserId }\n');
  writeFileSync(
    join(client, 'screens', 'chat.tsx'),
    `import { gql } from '@apollo/client';
import { MESSAGE_FIELDS } from '../fragments';
export const CHAT_SCREEN = gql\`
  query ChatScreen($sessionId: ID!) {
    chatSession(id: $sessionId) { id title messages(last: 20) { nodes { ...MessageFields } } }
  }
  \${MESSAGE_FIELDS}
\`;
export const SEND = gql\`mutation Send($sessionId: ID!, $body: String!) { sendMessage(input: { sessionId: $sessionId, body: $body }) { eventId } }\`;
export const EVENTS = /* GraphQL */ \`
  subscription Events($sessionId: ID!) { sessionEvents(sessionId: $sessionId) { eventId ... on MessageCreatedEvent { message { ...MessageFields } } } }
\`;
// Too costly for the limits, though valid: persisted documents are limited like any other.
export const EVERYTHING = gql\`query Everything($projectId: ID!) { project(id: $projectId) { sessions(first: 100) { nodes { messages(first: 100) { nodes { id body } } } } } }\`;
`,
  );
}

writeClient();
const list = extractDocuments([client], schema);
const hashOf = (operation: string) => Object.entries(list).find(([, document]) => document.includes(`${operation}(`))![0];
const listFile = join(temp, 'trusted-documents.json');
writeFileSync(listFile, JSON.stringify(list));

let t: TestApp;
let fixture: Awaited<ReturnType<typeof createProjectFixture>>;
const sockets: Client[] = [];

async function post(app: TestApp, body: Record<string, unknown>, as = 'alice') {
  const response = await fetch(app.app.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', authorization: `Bearer ${await app.token(as)}` },
    body: JSON.stringify(body),
  });
  return { status: response.status, ...((await response.json()) as { data?: any; errors?: { message: string; extensions?: Record<string, unknown> }[] }) };
}

async function socket(app: TestApp): Promise<Client> {
  const ws = createClient({
    url: app.app.graphqlUrl.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${await app.token('alice')}` },
    retryAttempts: 0,
    lazy: true,
  });
  sockets.push(ws);
  return ws;
}

/** The first result of one operation over graphql-ws. */
async function overSocket(ws: Client, payload: { query: string; variables?: Record<string, unknown>; extensions?: Record<string, unknown> }) {
  const results = ws.iterate(payload);
  try {
    const { value } = await results.next();
    return value as { data?: any; errors?: { message: string; extensions?: Record<string, unknown> }[] };
  } catch (errors) {
    return { errors: errors as { message: string; extensions?: Record<string, unknown> }[] };
  } finally {
    await results.return?.(undefined);
  }
}

beforeAll(async () => {
  t = await startTestApp({ GRAPHQL_PERSISTED_DOCUMENTS: 'trusted', GRAPHQL_TRUSTED_DOCUMENTS_FILE: listFile });
  // The fixture's own mutations are not on the list: make it on an ordinary server, same database.
  const open = await startTestApp({}, { db: t.db });
  try {
    fixture = await createProjectFixture(open, 'alice');
  } finally {
    await open.app.stop();
  }
});
afterAll(async () => {
  for (const ws of sockets) await ws.dispose();
  await t?.stop();
  rmSync(temp, { recursive: true, force: true });
});

describe('npm run documents:extract', () => {
  it('lists each operation with the fragments it uses, keyed by the sha256 of the document', () => {
    expect(Object.keys(list)).toHaveLength(4);
    for (const [hash, document] of Object.entries(list)) expect(sha256(document)).toBe(hash);
    const chat = list[hashOf('ChatScreen')]!;
    expect(chat).toContain('fragment MessageFields on Message');
    expect(list[hashOf('Send')]).not.toContain('fragment');
    expect(list[hashOf('Events')]).toContain('...MessageFields');
  });

  it('refuses operations the schema refuses, unnamed ones and missing fragments, naming the file', () => {
    const bad = join(temp, 'bad');
    for (const [name, text, message] of [
      ['unknown.graphql', 'query Nope { noSuchField }', /unknown\.graphql: operation Nope does not validate.*noSuchField/],
      ['anonymous.graphql', '{ viewer { userId } }', /anonymous\.graphql: an operation without a name/],
      ['missing.ts', 'gql`query Lost { viewer { ...Gone } }`', /missing\.ts:1: operation Lost uses fragment Gone/],
    ] as const) {
      rmSync(bad, { recursive: true, force: true });
      mkdirSync(bad);
      writeFileSync(join(bad, name), text);
      expect(() => extractDocuments([bad], schema)).toThrow(message);
    }
  });
});

describe('trusted documents over HTTP', () => {
  it('runs a listed document sent by its hash', async () => {
    const result = await post(t, { extensions: persisted(hashOf('ChatScreen')), variables: { sessionId: fixture.sessionId } });
    expect(result.errors).toBeUndefined();
    expect(result.data.chatSession).toMatchObject({ id: fixture.sessionId, title: 'General' });
  });

  it('runs a listed document sent as its exact text', async () => {
    const result = await post(t, { query: list[hashOf('ChatScreen')], variables: { sessionId: fixture.sessionId } });
    expect(result.errors).toBeUndefined();
  });

  it('refuses any other document with 400 PERSISTED_QUERY_ONLY, before it runs', async () => {
    const send = 'mutation { createProject(input: { name: "smuggled" }) { id } }';
    for (const body of [{ query: send }, { query: send, extensions: persisted(sha256(send)) }, { query: `${list[hashOf('ChatScreen')]} ` }, {}]) {
      const result = await post(t, body);
      expect(result.status, JSON.stringify(body)).toBe(400);
      expect(result.errors?.map((error) => error.extensions?.code)).toEqual(['PERSISTED_QUERY_ONLY']);
    }
    // Not even sent with its hash does a document join the list (no APQ registration here).
    const again = await post(t, { extensions: persisted(sha256(send)) });
    expect(again.errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    const projects = await post(t, { extensions: persisted(hashOf('ChatScreen')), variables: { sessionId: fixture.sessionId } });
    expect(projects.errors).toBeUndefined();
  });

  it('answers an unknown hash with 404 PERSISTED_QUERY_NOT_FOUND', async () => {
    const result = await post(t, { extensions: persisted('0'.repeat(64)) });
    expect(result.status).toBe(404);
    expect(result.errors?.map((error) => [error.message, error.extensions?.code])).toEqual([['PersistedQueryNotFound', 'PERSISTED_QUERY_NOT_FOUND']]);
  });

  it('keeps the operation limits: a listed document that costs too much is refused', async () => {
    const result = await post(t, { extensions: persisted(hashOf('Everything')), variables: { projectId: fixture.projectId } });
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'cost' });
  });
});

describe('trusted documents over graphql-ws', () => {
  it('runs a listed subscription sent by its hash (query "") and delivers its events', async () => {
    const ws = await socket(t);
    const events = ws.iterate({ query: '', variables: { sessionId: fixture.sessionId }, extensions: persisted(hashOf('Events')) });
    try {
      const first = events.next();
      // Sent through the list too, until the subscription sees it.
      let delivered: any = null;
      const sending = (async () => {
        while (!delivered) {
          const sent = await post(t, { extensions: persisted(hashOf('Send')), variables: { sessionId: fixture.sessionId, body: 'over the socket' } });
          expect(sent.errors).toBeUndefined();
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      })();
      delivered = (await first).value;
      await sending;
      expect(delivered.errors).toBeUndefined();
      expect(delivered.data.sessionEvents.message.body).toBe('over the socket');
    } finally {
      await events.return?.(undefined);
    }
  });

  it('refuses any other document with PERSISTED_QUERY_ONLY and keeps the socket open', async () => {
    const ws = await socket(t);
    const refused = await overSocket(ws, { query: 'query { viewer { userId } }' });
    expect(refused.errors?.map((error) => error.extensions?.code)).toEqual(['PERSISTED_QUERY_ONLY']);
    const unknown = await overSocket(ws, { query: '', extensions: persisted('f'.repeat(64)) });
    expect(unknown.errors?.map((error) => error.extensions?.code)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
    const listed = await overSocket(ws, { query: '', variables: { sessionId: fixture.sessionId }, extensions: persisted(hashOf('ChatScreen')) });
    expect(listed.errors).toBeUndefined();
    expect(listed.data.chatSession.id).toBe(fixture.sessionId);
    const costly = await overSocket(ws, { query: '', variables: { projectId: fixture.projectId }, extensions: persisted(hashOf('Everything')) });
    expect(costly.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_COMPLEX');
  });
});

describe('automatic persisted queries (GRAPHQL_PERSISTED_DOCUMENTS=automatic)', () => {
  let apq: TestApp;
  beforeAll(async () => {
    apq = await startTestApp({ GRAPHQL_PERSISTED_DOCUMENTS: 'automatic' }, { db: t.db });
  });
  afterAll(async () => {
    await apq?.app.stop();
  });

  it('misses, learns the document sent with its hash, then runs it by hash alone', async () => {
    const query = 'query Viewer { viewer { userId } }';
    const hash = sha256(query);
    const miss = await post(apq, { extensions: persisted(hash) });
    expect(miss.status).toBe(404);
    expect(miss.errors?.map((error) => [error.message, error.extensions?.code])).toEqual([['PersistedQueryNotFound', 'PERSISTED_QUERY_NOT_FOUND']]);
    const register = await post(apq, { query, extensions: persisted(hash) });
    expect(register.data).toEqual({ viewer: { userId: 'alice' } });
    const hit = await post(apq, { extensions: persisted(hash) }, 'bob');
    expect(hit.data).toEqual({ viewer: { userId: 'bob' } });
    // And over graphql-ws, from the same instance's memory.
    const ws = await socket(apq);
    expect((await overSocket(ws, { query: '', extensions: persisted(hash) })).data).toEqual({ viewer: { userId: 'alice' } });
  });

  it('refuses a document sent with a hash that is not its own, and still runs plain documents', async () => {
    const wrong = await post(apq, { query: 'query { viewer { userId } }', extensions: persisted('a'.repeat(64)) });
    expect(wrong.status).toBe(400);
    expect(wrong.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
    expect((await post(apq, { extensions: persisted('a'.repeat(64)) })).errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect((await post(apq, { query: 'query { viewer { userId } }' })).data).toEqual({ viewer: { userId: 'alice' } });
  });
});

describe('settings', () => {
  it('is off by default', () => {
    expect(loadConfig({}).persistedDocuments).toEqual({ mode: 'off', trustedDocumentsFile: null, apqCacheSize: 1_000 });
  });

  it('stops start-up on a trusted mode without a list, or a list whose hashes do not match', () => {
    expect(() => loadConfig({ GRAPHQL_PERSISTED_DOCUMENTS: 'trusted' })).toThrow(/GRAPHQL_TRUSTED_DOCUMENTS_FILE is required/);
    const forged = join(temp, 'forged.json');
    writeFileSync(forged, JSON.stringify({ [sha256('query A { viewer { userId } }')]: 'mutation { createProject(input: { name: "x" }) { id } }' }));
    expect(() => readTrustedDocuments(forged)).toThrow(ConfigError);
    expect(() => readTrustedDocuments(join(temp, 'missing.json'))).toThrow(/GRAPHQL_TRUSTED_DOCUMENTS_FILE/);
  });

  it("reads Apollo's persisted query manifest as well", () => {
    const body = 'query A { viewer { userId } }';
    const file = join(temp, 'apollo.json');
    writeFileSync(file, JSON.stringify({ format: 'apollo-persisted-query-manifest', version: 1, operations: [{ id: sha256(body), name: 'A', type: 'query', body }] }));
    expect([...readTrustedDocuments(file)]).toEqual([[sha256(body), body]]);
  });
});
