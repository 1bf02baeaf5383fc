import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoReplyText } from '../src/agents-runtime/echo.adapter.ts';
import { startTestAppWithClient, type TestApp } from './support/app.ts';
import { createProjectFixture, SEND_MESSAGE, SWITCH_AGENT } from './support/fixtures.ts';
import { subscribe, SESSION_EVENTS } from './support/subscriber.ts';
import type pg from 'pg';

const WITH_ACTIVITY = `
  subscription($sessionId: ID!) {
    sessionEvents(sessionId: $sessionId, agentActivity: true) {
      eventId type sequence projectSequence
      ... on MessageCreatedEvent { message { id body role replyToId } }
      ... on AgentReplyStarted { replyTo agentId }
      ... on AgentReplyDelta { replyTo agentId index text }
    }
  }`;

describe('agents answering through the API', () => {
  let t: TestApp;
  let db: pg.Client;
  beforeAll(async () => {
    ({ t, db } = await startTestAppWithClient({ AGENT_RUNTIME_ENABLED: 'true', AGENT_RUNTIME_POLL_INTERVAL_MS: '50' }));
  });
  afterAll(() => t.stop());

  it('streams the reply to a subscriber as transient deltas, then delivers the committed reply; deltas are never stored', async () => {
    const f = await createProjectFixture(t, 'olga');
    await t.gql(SWITCH_AGENT, { projectId: f.projectId, agentId: f.agentIds[0] }, { as: 'olga' });
    const watcher = await subscribe(t.app.graphqlUrl, await t.token('olga'), WITH_ACTIVITY, { sessionId: f.sessionId });
    const plain = await subscribe(t.app.graphqlUrl, await t.token('olga'), SESSION_EVENTS, { sessionId: f.sessionId });
    try {
      const sent = await t.gql(SEND_MESSAGE, { sessionId: f.sessionId, body: 'tell me something' }, { as: 'olga' });
      const userMessageId = sent.data.sendMessage.message.id;
      const isReply = (e: any) => e.type === 'MESSAGE_CREATED' && e.message.role === 'AGENT';
      await watcher.waitFor((s) => s.events.some(isReply));
      const events = watcher.events as any[];
      const started = events.findIndex((e) => e.type === 'AGENT_REPLY_STARTED');
      const reply = events.find(isReply);
      expect(events[0]).toMatchObject({ type: 'MESSAGE_CREATED', sequence: 1 });
      expect(started).toBeGreaterThan(0);
      expect(events[started]).toMatchObject({ replyTo: userMessageId, agentId: f.agentIds[0], sequence: 1 });
      const deltas = events.filter((e) => e.type === 'AGENT_REPLY_DELTA');
      expect(deltas.map((d) => d.text).join('')).toBe(reply.message.body);
      expect(deltas.every((d) => d.replyTo === userMessageId && d.sequence === 1)).toBe(true);
      expect(reply).toMatchObject({ sequence: 2, message: { body: echoReplyText('Planner', 'tell me something'), replyToId: userMessageId } });
      // Activity items have ids of their own, and borrow the last committed position.
      expect(new Set(events.map((e) => e.eventId)).size).toBe(events.length);

      // A subscriber that did not ask for activity sees exactly the committed events.
      await plain.waitForCount(2);
      expect(plain.events.map((e) => [e.type, e.sequence])).toEqual([['MESSAGE_CREATED', 1], ['MESSAGE_CREATED', 2]]);

      const stored = await db.query(`select event_type, count(*)::int as n from event_outbox where session_id = $1 group by event_type`, [f.sessionId]);
      expect(stored.rows).toEqual([{ event_type: 'message_created', n: 2 }]);
    } finally {
      await watcher.stop();
      await plain.stop();
    }
  });

  it('the reply is readable in the message history with the message it answers', async () => {
    const f = await createProjectFixture(t, 'pia');
    await t.gql(SWITCH_AGENT, { projectId: f.projectId, agentId: f.agentIds[1] }, { as: 'pia' });
    const sent = await t.gql(SEND_MESSAGE, { sessionId: f.sessionId, body: 'history please' }, { as: 'pia' });
    const read = () =>
      t.gql(`query($id: ID!) { chatSession(id: $id) { messages(first: 10) { edges { node { body role replyToId } } } } }`, { id: f.sessionId }, { as: 'pia' });
    let nodes: any[] = [];
    for (let i = 0; i < 100 && nodes.length < 2; i++) {
      nodes = (await read()).data?.chatSession.messages.edges.map((e: any) => e.node) ?? [];
      if (nodes.length < 2) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(nodes).toContainEqual({ body: echoReplyText('Coder', 'history please'), role: 'AGENT', replyToId: sent.data.sendMessage.message.id });
  });
});
