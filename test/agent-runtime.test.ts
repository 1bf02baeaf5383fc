import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentAdapterError, type AgentAdapter } from '../src/agents-runtime/agent-adapter.ts';
import type { AgentRuntime } from '../src/agents-runtime/agent-runtime.ts';
import { echoReplyText } from '../src/agents-runtime/echo.adapter.ts';
import { createMemoryBus } from '../src/bus/event-bus.ts';
import type { AgentActivity } from '../src/events/agent-activity.ts';
import { sendMessage } from '../src/domain/chat/chat.service.ts';
import { createMetrics } from '../src/platform/observability/metrics.ts';
import { createOrm, forkEm } from '../src/platform/db/orm.ts';
import { fillReplyJobs } from '../src/agents-runtime/agent-runtime.sql.ts';
import { dbOf } from '../src/platform/db/database.ts';
import { agentFixture, FAST_RUNTIME, say, testRuntime } from './support/agents.ts';
import { useTestDatabase } from './support/app.ts';
import { until } from './support/until.ts';

const dbh = useTestDatabase();
const running: AgentRuntime[] = [];
const start = (runtime: AgentRuntime) => {
  running.push(runtime);
  runtime.start();
  return runtime;
};
afterEach(async () => {
  await Promise.all(running.splice(0).map((runtime) => runtime.stop()));
});

async function messagesOf(sessionId: string) {
  const { rows } = await dbh.client.query<{ id: string; role: string; body: string; reply_to_id: string | null; author_user_id: string }>(
    'select id, role, body, reply_to_id, author_user_id from message where session_id = $1 order by created_at, id',
    [sessionId],
  );
  return rows;
}
const answersTo = async (sessionId: string, messageId: string) => (await messagesOf(sessionId)).filter((m) => m.reply_to_id === messageId);

/** An adapter that answers `answer` and keeps the messages it was given for each reply. */
function recordingAdapter(answer: string): { adapter: AgentAdapter; seen: { role: string; content: string }[][] } {
  const seen: { role: string; content: string }[][] = [];
  return {
    seen,
    adapter: {
      async *reply({ messages }) {
        seen.push(messages);
        yield answer;
      },
    },
  };
}

/** An adapter whose every reply fails with `message` (`transient`: worth retrying), counting its calls. */
function failingAdapter(message: string, transient: boolean): AgentAdapter & { calls: number } {
  const adapter = {
    calls: 0,
    // eslint-disable-next-line require-yield
    async *reply() {
      adapter.calls += 1;
      throw new AgentAdapterError(message, transient);
    },
  };
  return adapter;
}

describe('agent runtime', () => {
  it('answers a committed user message once, as the active agent, with its message_created event; the reply triggers nothing', async () => {
    const f = await agentFixture(dbh.orm);
    const bus = createMemoryBus();
    const activity: AgentActivity[] = [];
    const stop = await bus.subscribeActivity(f.projectId, (item) => activity.push(item));
    start(testRuntime(dbh.orm, { bus }));
    const sent = await say(dbh.orm, f.owner, f.sessionId, 'hello there agent');
    await until(async () => (await answersTo(f.sessionId, sent.message.id)).length === 1);
    const [reply] = await answersTo(f.sessionId, sent.message.id);
    expect(reply).toMatchObject({ role: 'agent', body: echoReplyText('Echo', 'hello there agent'), author_user_id: `agent:${f.agentId}` });

    const events = await dbh.client.query(`select event_type, payload from event_outbox where session_id = $1 order by sequence`, [f.sessionId]);
    expect(events.rows.map((e) => [e.event_type, e.payload.role, e.payload.replyToMessageId ?? null])).toEqual([
      ['message_created', 'user', null],
      ['message_created', 'agent', sent.message.id],
    ]);
    // Deltas went over the bus, in order, and add up to the committed reply; none was stored.
    expect(activity[0]).toMatchObject({ kind: 'agent_reply_started', replyTo: sent.message.id, agentId: f.agentId });
    const deltas = activity.filter((a) => a.kind === 'agent_reply_delta');
    expect(deltas.length).toBeGreaterThan(3);
    expect(deltas.map((d) => (d.kind === 'agent_reply_delta' ? d.index : -1))).toEqual(deltas.map((_, i) => i));
    expect(deltas.map((d) => (d.kind === 'agent_reply_delta' ? d.text : '')).join('')).toBe(reply!.body);
    stop();

    // The agent's own message asks for no reply: nothing more appears.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await messagesOf(f.sessionId)).toHaveLength(2);
    const jobs = await dbh.client.query('select status, attempts from agent_reply_job where session_id = $1', [f.sessionId]);
    expect(jobs.rows).toEqual([{ status: 'done', attempts: 1 }]);
  });

  it('never answers a rolled-back message, and waits for a transaction still open when it looks', async () => {
    const f = await agentFixture(dbh.orm);
    start(testRuntime(dbh.orm));
    await forkEm(dbh.orm)
      .transactional(async (tx) => {
        await sendMessage(tx, f.owner, { sessionId: f.sessionId, body: 'never committed' });
        throw new Error('roll back');
      })
      .catch(() => {});

    // A message whose transaction stays open across several runtime passes, then commits.
    let commit!: () => void;
    const held = new Promise<void>((resolve) => (commit = resolve));
    const late = forkEm(dbh.orm).transactional(async (tx) => {
      const sent = await sendMessage(tx, f.owner, { sessionId: f.sessionId, body: 'committed late' });
      await tx.flush();
      await held;
      return sent;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await messagesOf(f.sessionId)).toHaveLength(0);
    commit();
    const sent = await late;
    await until(async () => (await answersTo(f.sessionId, sent.message.id)).length === 1);
    const bodies = (await messagesOf(f.sessionId)).map((m) => m.body);
    expect(bodies).toEqual(['committed late', echoReplyText('Echo', 'committed late')]);
  });

  it('leaves an EXTERNAL agent to its own runtime, also for jobs filled before the agent became external', async () => {
    const f = await agentFixture(dbh.orm);
    // A job filled while the agent was still echo...
    const early = await say(dbh.orm, f.owner, f.sessionId, 'before the switch');
    await until(async () => {
      await forkEm(dbh.orm).transactional((tx) => fillReplyJobs(dbOf(tx), 100));
      return (await dbh.client.query('select 1 from agent_reply_job where reply_to_message_id = $1', [early.message.id])).rowCount === 1;
    });
    // ...then the agent is made external, and another message comes.
    await dbh.client.query(`update agent set kind = 'external' where id = $1`, [f.agentId]);
    const late = await say(dbh.orm, f.owner, f.sessionId, 'after the switch');
    start(testRuntime(dbh.orm));
    await until(async () => (await dbh.client.query(`select status from agent_reply_job where reply_to_message_id = $1`, [early.message.id])).rows[0]?.status === 'done');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await messagesOf(f.sessionId)).map((m) => m.role)).toEqual(['user', 'user']);
    expect((await dbh.client.query('select 1 from agent_reply_job where reply_to_message_id = $1', [late.message.id])).rowCount).toBe(0);
  });

  it('gives a user with no active agent no reply', async () => {
    const f = await agentFixture(dbh.orm);
    await dbh.client.query('update worker_space set active_agent_id = null where project_id = $1', [f.projectId]);
    start(testRuntime(dbh.orm));
    await say(dbh.orm, f.owner, f.sessionId, 'anyone?');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await messagesOf(f.sessionId)).toHaveLength(1);
  });

  it('two runtimes on one database answer every message exactly once', async () => {
    const f = await agentFixture(dbh.orm);
    const second = await createOrm({ kind: 'postgresql', url: dbh.db.url });
    try {
      start(testRuntime(dbh.orm));
      start(testRuntime(second));
      const sessions = [f.sessionId];
      const sent = [];
      for (let i = 0; i < 6; i++) sent.push(await say(dbh.orm, f.owner, sessions[0]!, `message ${i}`));
      await until(async () => (await messagesOf(f.sessionId)).length === 12);
      for (const s of sent) expect(await answersTo(f.sessionId, s.message.id)).toHaveLength(1);
      // Replies come in the order of the messages they answer.
      const roles = (await messagesOf(f.sessionId)).filter((m) => m.role === 'agent').map((m) => m.reply_to_id);
      expect(roles).toEqual(sent.map((s) => s.message.id));
    } finally {
      await Promise.all(running.splice(0).map((runtime) => runtime.stop()));
      await second.close(true);
    }
  });

  it('a message filled into jobs twice, or answered by someone else first, still gets one reply', async () => {
    const f = await agentFixture(dbh.orm);
    const sent = await say(dbh.orm, f.owner, f.sessionId, 'once only');
    // Replay the whole log into jobs again (a watermark that went back): the job key absorbs it.
    await dbh.client.query(`update agent_runtime_state set transaction_id = '0'`);
    start(testRuntime(dbh.orm));
    await until(async () => (await answersTo(f.sessionId, sent.message.id)).length === 1);
    await dbh.client.query(`update agent_runtime_state set transaction_id = '0'`);
    await dbh.client.query(`update agent_reply_job set status = 'pending' where reply_to_message_id = $1`, [sent.message.id]);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await answersTo(f.sessionId, sent.message.id)).toHaveLength(1);
    const job = await dbh.client.query('select status from agent_reply_job where reply_to_message_id = $1', [sent.message.id]);
    expect(job.rows[0].status).toBe('done');
  });

  it('retries transient adapter errors with backoff, then posts a system notice and counts it', async () => {
    const f = await agentFixture(dbh.orm, 'alice', 'Flaky');
    const failing = failingAdapter('model server answered 503', true);
    const metrics = createMetrics();
    start(testRuntime(dbh.orm, { adapters: { echo: failing }, metrics }));
    const sent = await say(dbh.orm, f.owner, f.sessionId, 'please fail');
    await until(async () => (await answersTo(f.sessionId, sent.message.id)).length === 1);
    const [notice] = await answersTo(f.sessionId, sent.message.id);
    expect(notice).toMatchObject({ role: 'system', body: 'Flaky could not answer this message. Send it again to retry.' });
    expect(failing.calls).toBe(FAST_RUNTIME.maxAttempts);
    const job = await dbh.client.query('select status, attempts, last_error from agent_reply_job where reply_to_message_id = $1', [sent.message.id]);
    expect(job.rows[0]).toEqual({ status: 'failed', attempts: 3, last_error: 'model server answered 503' });
    const event = await dbh.client.query(`select payload from event_outbox where session_id = $1 and payload->>'role' = 'system'`, [f.sessionId]);
    expect(event.rows[0].payload.replyToMessageId).toBe(sent.message.id);
    const counted = (await metrics.registry.getSingleMetric('agent_replies_total')!.get()).values;
    expect(Object.fromEntries(counted.map((v) => [v.labels.outcome, v.value]))).toEqual({ retried: 2, failed: 1 });
  });

  it('a permanent adapter error is not retried', async () => {
    const f = await agentFixture(dbh.orm, 'alice', 'Broken');
    const broken = failingAdapter('unknown model', false);
    start(testRuntime(dbh.orm, { adapters: { echo: broken } }));
    const sent = await say(dbh.orm, f.owner, f.sessionId, 'x');
    await until(async () => (await answersTo(f.sessionId, sent.message.id)).length === 1);
    expect(broken.calls).toBe(1);
  });

  it("a slow agent in one session does not delay another session's reply", async () => {
    const slow = await agentFixture(dbh.orm, 'carol', 'Slow');
    const fast = await agentFixture(dbh.orm, 'dave', 'Fast');
    await dbh.client.query(`update agent set settings = '{"wordDelayMs": 400}' where id = $1`, [slow.agentId]);
    await dbh.client.query(`update agent set settings = '{"wordDelayMs": 0}' where id = $1`, [fast.agentId]);
    start(testRuntime(dbh.orm));
    const slowSent = await say(dbh.orm, slow.owner, slow.sessionId, 'take your time');
    await new Promise((resolve) => setTimeout(resolve, 150));
    const fastSent = await say(dbh.orm, fast.owner, fast.sessionId, 'quick one');
    await until(async () => (await answersTo(fast.sessionId, fastSent.message.id)).length === 1);
    expect(await answersTo(slow.sessionId, slowSent.message.id)).toHaveLength(0);
    await until(async () => (await answersTo(slow.sessionId, slowSent.message.id)).length === 1);
  });

  it('a reply in flight when the user switches agent completes as the agent it was asked of', async () => {
    const f = await agentFixture(dbh.orm, 'erin', 'First');
    await dbh.client.query(`update agent set settings = '{"wordDelayMs": 100}' where id = $1`, [f.agentId]);
    const other = await dbh.client.query(`insert into agent (id, project_id, name) values (gen_random_uuid(), $1, 'Second') returning id`, [f.projectId]);
    start(testRuntime(dbh.orm));
    const sent = await say(dbh.orm, f.owner, f.sessionId, 'who answers');
    await until(async () => (await dbh.client.query(`select 1 from agent_reply_job where claim_token is not null`)).rowCount === 1);
    await dbh.client.query('update worker_space set active_agent_id = $1 where project_id = $2', [other.rows[0].id, f.projectId]);
    await until(async () => (await answersTo(f.sessionId, sent.message.id)).length === 1);
    expect((await answersTo(f.sessionId, sent.message.id))[0]!.author_user_id).toBe(`agent:${f.agentId}`);
  });

  it('a runtime killed with SIGKILL mid-reply: the reply is retried from scratch after the lease and committed once', async () => {
    const f = await agentFixture(dbh.orm, 'frank', 'Survivor');
    await dbh.client.query(`update agent set settings = '{"wordDelayMs": 300}' where id = $1`, [f.agentId]);
    const leaseMs = 800;
    const child = spawn(process.execPath, [fileURLToPath(new URL('./support/agent-runtime-child.ts', import.meta.url))], {
      env: { ...process.env, CHILD_DATABASE_URL: dbh.db.url, CHILD_OPTIONS: JSON.stringify({ ...FAST_RUNTIME, leaseMs }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const sent = await say(dbh.orm, f.owner, f.sessionId, 'one two three four five');
    await until(async () => (await dbh.client.query('select 1 from agent_reply_job where claim_token is not null and attempts = 1')).rowCount === 1);
    await new Promise((resolve) => setTimeout(resolve, 400)); // mid-stream: some words are out
    child.kill('SIGKILL');
    await exited;
    expect(await answersTo(f.sessionId, sent.message.id)).toHaveLength(0);

    await dbh.client.query(`update agent set settings = '{"wordDelayMs": 0}' where id = $1`, [f.agentId]);
    start(testRuntime(dbh.orm, { runtime: { leaseMs } }));
    await until(async () => (await answersTo(f.sessionId, sent.message.id)).length === 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await answersTo(f.sessionId, sent.message.id)).toHaveLength(1);
    const job = await dbh.client.query('select status, attempts from agent_reply_job where reply_to_message_id = $1', [sent.message.id]);
    expect(job.rows[0]).toEqual({ status: 'done', attempts: 2 });
  });

  it('gives the agent its instructions and the recent messages within the budget, oldest first', async () => {
    const f = await agentFixture(dbh.orm, 'gina', 'Context');
    await dbh.client.query(`update agent set settings = '{"instructions": "Be brief."}' where id = $1`, [f.agentId]);
    const { adapter: recorder, seen } = recordingAdapter('ok');
    start(testRuntime(dbh.orm, { adapters: { echo: recorder }, runtime: { contextMessages: 3, contextMaxChars: 1_000 } }));
    await dbh.client.query(`update agent set settings = '{"instructions": "Be brief."}' where id = $1`, [f.agentId]);
    for (const body of ['first', 'second', 'third']) {
      const sent = await say(dbh.orm, f.owner, f.sessionId, body);
      await until(async () => (await answersTo(f.sessionId, sent.message.id)).length === 1);
    }
    // The newest three messages; 'first' and its reply fell out.
    expect(seen[2]).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'second' },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: 'third' },
    ]);
  });

  it('leaves the oldest messages out past the character budget, never the one it answers', async () => {
    const f = await agentFixture(dbh.orm, 'hana', 'Budget');
    const { adapter: recorder, seen } = recordingAdapter('k');
    start(testRuntime(dbh.orm, { adapters: { echo: recorder }, runtime: { contextMessages: 50, contextMaxChars: 100 } }));
    const long = 'x'.repeat(60);
    for (const body of [long, long]) {
      const sent = await say(dbh.orm, f.owner, f.sessionId, body);
      await until(async () => (await answersTo(f.sessionId, sent.message.id)).length === 1);
    }
    // 60 + 1 + 60 > 100: the first message falls out, its reply and the answered one stay.
    expect(seen[1]).toEqual([{ role: 'assistant', content: 'k' }, { role: 'user', content: long }]);
    const huge = 'y'.repeat(500);
    const sent = await say(dbh.orm, f.owner, f.sessionId, huge);
    await until(async () => (await answersTo(f.sessionId, sent.message.id)).length === 1);
    expect(seen[2]).toEqual([{ role: 'user', content: huge }]);
  });
});
