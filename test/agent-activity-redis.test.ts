import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoReplyText } from '../src/agents-runtime/echo.adapter.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { createProjectFixture, SEND_MESSAGE, SWITCH_AGENT } from './support/fixtures.ts';
import { subscribe } from './support/subscriber.ts';

const REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';

describe('agent activity over the Redis bus, across instances', () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    // A runs the agent runtime; the subscriber is connected to B, which runs none.
    a = await startTestApp({ REDIS_URL, AGENT_RUNTIME_ENABLED: 'true', AGENT_RUNTIME_POLL_INTERVAL_MS: '50' });
    b = await startTestApp({ REDIS_URL, OUTBOX_PUBLISHER_ENABLED: 'false' }, { db: a.db });
  });
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
  });

  it('deltas written on one instance reach a subscriber on another, then the committed reply', async () => {
    const f = await createProjectFixture(a, 'uma');
    await a.gql(SWITCH_AGENT, { projectId: f.projectId, agentId: f.agentIds[0] }, { as: 'uma' });
    const watcher = await subscribe(b.app.graphqlUrl, await b.token('uma'), `subscription($s: ID!) { sessionEvents(sessionId: $s, agentActivity: true) {
      type ... on AgentReplyDelta { text } ... on MessageCreatedEvent { message { role body } } } }`, { s: f.sessionId });
    try {
      await a.gql(SEND_MESSAGE, { sessionId: f.sessionId, body: 'across the bus' }, { as: 'uma' });
      await watcher.waitFor((s) => s.events.some((e: any) => e.message?.role === 'AGENT'));
      const deltas = watcher.events.filter((e) => e.type === 'AGENT_REPLY_DELTA') as any[];
      expect(deltas.length).toBeGreaterThan(0);
      expect(deltas.map((d) => d.text).join('')).toBe(echoReplyText('Planner', 'across the bus'));
    } finally {
      await watcher.stop();
    }
  });
});
