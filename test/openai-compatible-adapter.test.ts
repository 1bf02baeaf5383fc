import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentAdapterError } from '../src/agents-runtime/agent-adapter.ts';
import type { AgentRuntime } from '../src/agents-runtime/agent-runtime.ts';
import { createOpenAiCompatibleAdapter } from '../src/agents-runtime/openai-compatible.adapter.ts';
import { agentFixture, say, testRuntime } from './support/agents.ts';
import { useTestDatabase } from './support/app.ts';
import { startFakeOpenAiServer } from './support/fake-openai-server.ts';
import { until } from './support/until.ts';

const KEY = 'sk-test-key-that-must-never-leak';
const agent = { id: 'a', name: 'GPT', kind: 'openai-compatible' as const, settings: { model: 'fake-model', temperature: 0.5, maxTokens: 64 } };
const collect = async (iterable: AsyncIterable<string>) => {
  const out: string[] = [];
  for await (const piece of iterable) out.push(piece);
  return out;
};

describe('openai-compatible adapter against a local SSE server', () => {
  let fake: Awaited<ReturnType<typeof startFakeOpenAiServer>>;
  beforeAll(async () => {
    fake = await startFakeOpenAiServer();
  });
  afterAll(() => fake.close());

  it('streams the chunks, sending the model, settings, conversation and key', async () => {
    fake.script([{ chunks: ['Hel', 'lo', ' there'], delayMs: 5 }]);
    const adapter = createOpenAiCompatibleAdapter({ baseUrl: fake.baseUrl, apiKey: KEY });
    const pieces = await collect(adapter.reply({ agent, messages: [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'hi' }], signal: new AbortController().signal }));
    expect(pieces).toEqual(['Hel', 'lo', ' there']);
    const request = fake.requests.at(-1)!;
    expect(request.authorization).toBe(`Bearer ${KEY}`);
    expect(request.body).toMatchObject({ model: 'fake-model', stream: true, temperature: 0.5, max_tokens: 64, messages: [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'hi' }] });
  });

  it('tells transient failures (5xx, 429, a stream cut short, no server) from permanent ones (4xx), never naming the key', async () => {
    const adapter = createOpenAiCompatibleAdapter({ baseUrl: fake.baseUrl, apiKey: KEY });
    const failure = async () => {
      try {
        await collect(adapter.reply({ agent, messages: [{ role: 'user', content: 'x' }], signal: new AbortController().signal }));
      } catch (error) {
        return error as AgentAdapterError;
      }
      throw new Error('expected a failure');
    };
    for (const [script, transient] of [
      [{ status: 503 }, true],
      [{ status: 429 }, true],
      [{ status: 401 }, false],
      [{ status: 404 }, false],
      [{ chunks: ['a', 'b', 'c'], disconnectAfter: 2 }, true],
    ] as const) {
      fake.script([script]);
      const error = await failure();
      expect(error).toBeInstanceOf(AgentAdapterError);
      expect(error.transient, JSON.stringify(script)).toBe(transient);
      expect(error.message).not.toContain(KEY);
    }
    const nowhere = createOpenAiCompatibleAdapter({ baseUrl: 'http://127.0.0.1:9/v1', apiKey: KEY });
    const error = await collect(nowhere.reply({ agent, messages: [{ role: 'user', content: 'x' }], signal: new AbortController().signal })).catch((e) => e);
    expect(error).toMatchObject({ transient: true });
  });
});

describe('the runtime with an openai-compatible agent', () => {
  const dbh = useTestDatabase();
  let fake: Awaited<ReturnType<typeof startFakeOpenAiServer>>;
  let runtime: AgentRuntime | null = null;
  beforeAll(async () => {
    fake = await startFakeOpenAiServer();
  });
  afterEach(async () => {
    await runtime?.stop();
    runtime = null;
  });
  afterAll(() => fake.close());

  async function openAiAgent(owner: string) {
    const f = await agentFixture(dbh.orm, owner, 'GPT');
    await dbh.client.query(`update agent set kind = 'openai-compatible', settings = '{"model": "fake-model"}' where id = $1`, [f.agentId]);
    return f;
  }
  const answers = async (messageId: string) =>
    (await dbh.client.query('select role, body from message where reply_to_id = $1', [messageId])).rows as { role: string; body: string }[];

  it('a disconnect mid-stream and a 500 are retried from scratch; one reply commits, with the whole text', async () => {
    const f = await openAiAgent('quinn');
    fake.script([{ chunks: ['Par', 'tial'], disconnectAfter: 1 }, { status: 500 }, { chunks: ['Com', 'plete', ' answer'] }]);
    const before = fake.requests.length;
    runtime = testRuntime(dbh.orm, { adapters: { 'openai-compatible': createOpenAiCompatibleAdapter({ baseUrl: fake.baseUrl, apiKey: null }) }, runtime: { maxAttempts: 3 } });
    runtime.start();
    const sent = await say(dbh.orm, f.owner, f.sessionId, 'question');
    await until(async () => (await answers(sent.message.id)).length === 1);
    expect(await answers(sent.message.id)).toEqual([{ role: 'agent', body: 'Complete answer' }]);
    expect(fake.requests.length - before).toBe(3);
  });

  it('a server that keeps failing ends in the system notice after the last attempt', async () => {
    const f = await openAiAgent('rita');
    fake.script([{ status: 503 }]);
    runtime = testRuntime(dbh.orm, { adapters: { 'openai-compatible': createOpenAiCompatibleAdapter({ baseUrl: fake.baseUrl, apiKey: null }) }, runtime: { maxAttempts: 2 } });
    runtime.start();
    const sent = await say(dbh.orm, f.owner, f.sessionId, 'question');
    await until(async () => (await answers(sent.message.id)).length === 1);
    expect(await answers(sent.message.id)).toEqual([{ role: 'system', body: 'GPT could not answer this message. Send it again to retry.' }]);
  });

  it('a reply slower than the reply timeout is abandoned and retried', async () => {
    const f = await openAiAgent('sam');
    fake.script([{ chunks: ['slow', 'slow', 'slow'], delayMs: 400 }, { chunks: ['quick'] }]);
    runtime = testRuntime(dbh.orm, { adapters: { 'openai-compatible': createOpenAiCompatibleAdapter({ baseUrl: fake.baseUrl, apiKey: null }) }, runtime: { replyTimeoutMs: 300 } });
    runtime.start();
    const sent = await say(dbh.orm, f.owner, f.sessionId, 'question');
    await until(async () => (await answers(sent.message.id)).length === 1);
    expect(await answers(sent.message.id)).toEqual([{ role: 'agent', body: 'quick' }]);
  });
});
