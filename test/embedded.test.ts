import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { startApp } from '../src/app.ts';
import { loadConfig } from '../src/platform/config.ts';
import { createLogger } from '../src/platform/logger.ts';
import { OutboxEventSchema } from '../src/outbox/outbox-event.entity.ts';
import { MessageSchema } from '../src/domain/chat/message.entity.ts';
import { forkEm } from '../src/platform/db/orm.ts';
import { echoReplyText } from '../src/agents-runtime/echo.adapter.ts';
import { subscribe } from './support/subscriber.ts';

const scratch = mkdtempSync(join(tmpdir(), 'chat-outbox-embedded-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function gql(url: string, token: string, query: string, variables: Record<string, unknown> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as any;
}

describe('embedded PostgreSQL (PGlite), as `npm start` runs without DATABASE_URL', () => {
  // The demo agent's answer is the next test's subject; here it would race the counts.
  const env = { PGLITE_DATA_DIR: join(scratch, 'nested', 'pglite'), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', AGENT_RUNTIME_ENABLED: 'false' };

  it('the demo agent answers with echo, streamed to a subscriber and committed once, offline', async () => {
    const app = await startApp(loadConfig({ ...env, PGLITE_DATA_DIR: join(scratch, 'demo-agent'), AGENT_RUNTIME_ENABLED: 'true' }), createLogger({ level: 'silent', pretty: false }));
    const token = await app.tokens.sign('demo-alice');
    const projects = await gql(app.graphqlUrl, token, '{ projects { nodes { sessions { nodes { id } } } } }');
    const sessionId = projects.data.projects.nodes[0].sessions.nodes[0].id;
    const watcher = await subscribe(app.graphqlUrl, token, `subscription($s: ID!) { sessionEvents(sessionId: $s, agentActivity: true) {
      type sequence ... on MessageCreatedEvent { message { body role replyToId } } ... on AgentReplyDelta { text } } }`, { s: sessionId });
    try {
      const sent = await gql(app.graphqlUrl, token, 'mutation($s: ID!) { sendMessage(input: { sessionId: $s, body: "hello demo" }) { message { id } } }', { s: sessionId });
      const messageId = sent.data.sendMessage.message.id;
      await watcher.waitFor((s) => s.events.some((e: any) => e.message?.role === 'AGENT'));
      const reply = watcher.events.find((e: any) => e.message?.role === 'AGENT') as any;
      expect(reply.message).toEqual({ body: echoReplyText('Planner', 'hello demo'), role: 'AGENT', replyToId: messageId });
      const deltas = watcher.events.filter((e) => e.type === 'AGENT_REPLY_DELTA') as any[];
      expect(deltas.map((d) => d.text).join('')).toBe(reply.message.body);
      const stored = await forkEm(app.orm).find(MessageSchema, { session: sessionId }, { orderBy: { createdAt: 'asc' } });
      expect(stored.map((m) => m.role)).toEqual(['user', 'agent']);
    } finally {
      await watcher.stop();
      await app.stop();
    }
  });

  it('migrates, seeds the demo project, and commits a message with its event', async () => {
    const app = await startApp(loadConfig(env), createLogger({ level: 'silent', pretty: false }));
    try {
      const token = await app.tokens.sign('demo-alice');
      const projects = await gql(app.graphqlUrl, token, '{ projects { nodes { id name sessions { nodes { id } } agents { nodes { name } } } } }');
      const [project] = projects.data.projects.nodes;
      expect(project.name).toBe('Demo project');
      expect(project.agents.nodes.map((a: { name: string }) => a.name)).toEqual(['Planner', 'Coder']);

      const sessionId = project.sessions.nodes[0].id;
      const sent = await gql(app.graphqlUrl, token, 'mutation($s: ID!) { sendMessage(input: { sessionId: $s, body: "hello from pglite" }) { eventId message { id } } }', { s: sessionId });
      expect(sent.errors).toBeUndefined();

      const em = forkEm(app.orm);
      const messages = await em.find(MessageSchema, { session: sessionId });
      expect(messages.map((m) => m.body)).toEqual(['hello from pglite']);
      const events = await em.find(OutboxEventSchema, { aggregateId: sessionId });
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ id: sent.data.sendMessage.eventId, eventType: 'message_created', sequence: 1 });
      expect(events[0]!.payload).toMatchObject({ messageId: messages[0]!.id });
    } finally {
      await app.stop();
    }

    // A restart keeps the data and does not seed a second demo project.
    const again = await startApp(loadConfig(env), createLogger({ level: 'silent', pretty: false }));
    try {
      const projects = await gql(again.graphqlUrl, await again.tokens.sign('demo-alice'), '{ projects { nodes { name } } }');
      expect(projects.data.projects.nodes).toEqual([{ name: 'Demo project' }]);
    } finally {
      await again.stop();
    }
  });

  it('`npm start` prints GraphiQL and working demo tokens, serves GraphiQL offline, and exits 0 on SIGTERM', async () => {
    const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
    const child = spawn(process.execPath, [main], {
      env: { ...process.env, ...env, PGLITE_DATA_DIR: join(scratch, 'main'), DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 30_000;
      while (!/demo-bob/.test(output) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const url = /GraphiQL: (\S+)/.exec(output)?.[1];
      const bobHeader = /demo-bob \(member\): (\{.*\})/.exec(output)?.[1];
      expect(url, output).toBeDefined();
      const bobToken = JSON.parse(bobHeader!).Authorization.replace('Bearer ', '');
      expect((await gql(url!, bobToken, '{ viewer { userId } }')).data.viewer.userId).toBe('demo-bob');

      const page = await fetch(url!, { headers: { accept: 'text/html' } });
      const html = await page.text();
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      expect(html).toMatch(/graphiql/i);
      // Offline: no script or stylesheet is loaded from another host.
      expect(html).not.toMatch(/<(script|link)[^>]+(src|href)=["']https?:\/\//i);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
