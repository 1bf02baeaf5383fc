/**
 * `npm run bench:agents`: how many replies per second the agent runtime sustains with an
 * OpenAI-compatible server that answers instantly (a local fake over HTTP), and how long a reply
 * takes from the adapter's last chunk to the committed reply arriving at a graphql-ws client
 * (p50/p99), printed against the adapter call alone in the same run.
 *
 * BENCH_AGENT_MESSAGES (default 400) messages over BENCH_AGENT_SESSIONS (default 16) sessions.
 */
import { randomBytes } from 'node:crypto';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startApp } from '../src/app.ts';
import { createOpenAiCompatibleAdapter } from '../src/agents-runtime/openai-compatible.adapter.ts';
import { createAgent } from '../src/domain/agents/agent.service.ts';
import { switchAgent } from '../src/domain/agents/worker-space.service.ts';
import { createChatSession, sendMessage } from '../src/domain/chat/chat.service.ts';
import { createProject } from '../src/domain/projects/project.service.ts';
import { loadConfig } from '../src/platform/config.ts';
import { forkEm } from '../src/platform/db/orm.ts';
import { createLogger } from '../src/platform/logger.ts';
import { startFakeOpenAiServer } from '../test/support/fake-openai-server.ts';
import { createBenchDatabase, fmt, percentile } from './support.ts';

const MESSAGES = Number(process.env.BENCH_AGENT_MESSAGES ?? 400);
const SESSIONS = Number(process.env.BENCH_AGENT_SESSIONS ?? 16);
const CHUNKS = ['The', ' answer', ' is', ' forty', ' two', '.'];
const line = (text: string) => process.stdout.write(`${text}\n`);
const ms = (value: number) => `${fmt(value, 1)} ms`;

const fake = await startFakeOpenAiServer([{ chunks: CHUNKS }]);
const database = await createBenchDatabase('chat_outbox_bench_agents');
const logger = createLogger({ level: 'silent', pretty: false });
const app = await startApp(
  loadConfig({
    DATABASE_URL: database.url,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    JWT_SECRET: randomBytes(32).toString('hex'),
    SEED_DEMO: 'false',
    AGENT_OPENAI_BASE_URL: fake.baseUrl,
    AGENT_RUNTIME_CONCURRENCY: String(Math.min(SESSIONS, 32)),
    RATE_LIMIT_MUTATIONS_PER_MINUTE: '0',
  }),
  logger,
);
const client = createClient({ url: app.graphqlUrl.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${await app.tokens.sign('bench-owner')}` }, lazy: false });
try {
  line(`agents bench: ${MESSAGES} messages over ${SESSIONS} sessions, fake OpenAI-compatible server answering ${CHUNKS.length} chunks at once`);

  // The adapter call alone, against the same server: the floor of any reply.
  const adapter = createOpenAiCompatibleAdapter({ baseUrl: fake.baseUrl, apiKey: null });
  const agentView = { id: 'bench', name: 'Bench', kind: 'openai-compatible' as const, settings: { model: 'bench-model' } };
  const adapterMs: number[] = [];
  for (let i = 0; i < Math.min(MESSAGES, 200); i++) {
    const started = performance.now();
    for await (const _ of adapter.reply({ agent: agentView, messages: [{ role: 'user', content: `warm ${i}` }], signal: new AbortController().signal }));
    adapterMs.push(performance.now() - started);
  }

  const em = () => forkEm(app.orm);
  const project = await createProject(em(), 'bench-owner', { name: 'Agents bench' });
  const agent = await createAgent(em(), 'bench-owner', { projectId: project.id, name: 'GPT', kind: 'openai-compatible', settings: { model: 'bench-model' } });
  await switchAgent(em(), 'bench-owner', { projectId: project.id, agentId: agent.id });
  const sessions: string[] = [];
  for (let i = 0; i < SESSIONS; i++) sessions.push((await createChatSession(em(), 'bench-owner', { projectId: project.id, title: `s${i}` })).id);

  // One graphql-ws subscription per session; note when each committed reply arrives.
  const replyArrivedAt = new Map<string, number>();
  let remaining = MESSAGES;
  let allDone!: () => void;
  const done = new Promise<void>((resolve) => (allDone = resolve));
  const disposers = sessions.map((sessionId) =>
    client.subscribe<{ sessionEvents: { message?: { role: string; replyToId: string | null } } }>(
      { query: 'subscription($s: ID!) { sessionEvents(sessionId: $s) { ... on MessageCreatedEvent { message { role replyToId } } } }', variables: { s: sessionId } },
      {
        next: ({ data }) => {
          const message = data?.sessionEvents.message;
          if (message?.role !== 'AGENT' || !message.replyToId) return;
          replyArrivedAt.set(message.replyToId, performance.now());
          if (--remaining === 0) allDone();
        },
        error: (error) => line(`subscription error: ${String(error)}`),
        complete: () => {},
      },
    ),
  );
  await new Promise((resolve) => setTimeout(resolve, 500));

  const bodyOf = new Map<string, string>();
  const started = performance.now();
  await Promise.all(
    sessions.map(async (sessionId, s) => {
      for (let i = s; i < MESSAGES; i += SESSIONS) {
        const body = `message ${i} of the bench`;
        const sent = await sendMessage(em(), 'bench-owner', { sessionId, body });
        bodyOf.set(sent.message.id, body);
      }
    }),
  );
  await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error(`${remaining} replies still missing after 120 s`)), 120_000))]);
  const elapsedS = (performance.now() - started) / 1000;
  for (const dispose of disposers) dispose();

  const lastChunkToClient = [...replyArrivedAt].map(([messageId, at]) => at - fake.finished.get(bodyOf.get(messageId)!)!).filter(Number.isFinite);
  line(`replies: ${MESSAGES} in ${fmt(elapsedS, 2)} s = ${fmt(MESSAGES / elapsedS, 1)} replies/s (every reply committed once, sent over ${SESSIONS} sessions)`);
  line(`adapter call alone:                   p50 ${ms(percentile(adapterMs, 50))}, p99 ${ms(percentile(adapterMs, 99))} (${adapterMs.length} calls)`);
  line(`last chunk -> committed reply at ws:  p50 ${ms(percentile(lastChunkToClient, 50))}, p99 ${ms(percentile(lastChunkToClient, 99))} (${lastChunkToClient.length} replies)`);
  line(`ratio (p50 commit path / p50 adapter call): ${fmt(percentile(lastChunkToClient, 50) / percentile(adapterMs, 50), 2)}`);
} finally {
  await client.dispose();
  await app.stop();
  await fake.close();
  await database.drop();
}
