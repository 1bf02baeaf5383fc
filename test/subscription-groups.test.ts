import { executeSubscriptionEvent, parse, validateSubscriptionArgs } from 'graphql';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DomainEvent } from '../src/events/domain-event.ts';
import { schema } from '../src/schema.ts';
import { EVENT_ONLY_FIELD_LIST } from '../src/subscriptions/subscription-groups.ts';
import { startTestAppWithClient, type TestApp } from './support/app.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { scrape } from './support/observability.ts';
import { PROJECT_EVENTS, subscribe, type TestSubscriber } from './support/subscriber.ts';

// Subscriptions that render an event the same way share one execution of it (src/subscriptions/
// subscription-groups.ts). What each subscriber receives must be what it would receive alone.

let t: TestApp;
let db: pg.Client;
const subscribers: TestSubscriber[] = [];

beforeAll(async () => {
  ({ t, db } = await startTestAppWithClient({ SUBSCRIPTION_AUTH_RECHECK_MS: '0' }));
});
afterEach(async () => {
  for (const s of subscribers.splice(0)) await s.stop();
});
afterAll(() => t?.stop());

async function listen(query: string, variables: Record<string, unknown>, user: string) {
  const s = await subscribe(t.app.graphqlUrl, await t.token(user), query, variables);
  subscribers.push(s);
  return s;
}
const send = (sessionId: string, body: string, as = 'alice') => t.gql(SEND_MESSAGE, { sessionId, body }, { as });

/** Reads the session's title: a field from the database, so not the same for every viewer. */
const WITH_SESSION = `subscription($projectId: ID!) { projectEvents(projectId: $projectId) {
  eventId projectSequence ... on MessageCreatedEvent { message { id body session { title } } } } }`;
const BODIES_ONLY = `subscription($projectId: ID!, $after: ID, $afterSequence: Int) {
  projectEvents(projectId: $projectId, after: $after, afterSequence: $afterSequence) { projectSequence ... on MessageCreatedEvent { message { body } } } }`;

const gauge = async (name: string) => (await scrape(t.app.url)).value(name) ?? 0;

describe('subscription groups', () => {
  it('gives subscribers with different selections, variables, scopes and resume points each their own correct result', async () => {
    const p = await createProjectFixture(t, 'alice', ['bob']);
    const q = await createProjectFixture(t, 'carol');
    await send(p.sessionId, 'before anyone subscribed');
    const groupsBefore = await gauge('subscription_groups');

    const alice = await listen(PROJECT_EVENTS, { projectId: p.projectId }, 'alice');
    const bob = await listen(PROJECT_EVENTS, { projectId: p.projectId }, 'bob');
    const aliceBodies = await listen(BODIES_ONLY, { projectId: p.projectId }, 'alice');
    // Resumes from the start: the same group as aliceBodies (the resume point renders nothing),
    // and its own history first.
    const bobFromStart = await listen(BODIES_ONLY, { projectId: p.projectId, afterSequence: 0 }, 'bob');
    const aliceSession = await listen(WITH_SESSION, { projectId: p.projectId }, 'alice');
    const bobSession = await listen(WITH_SESSION, { projectId: p.projectId }, 'bob');
    const carol = await listen(PROJECT_EVENTS, { projectId: q.projectId }, 'carol');
    // PROJECT_EVENTS on p; BODIES_ONLY on p; WITH_SESSION for alice and for bob; PROJECT_EVENTS on q.
    expect((await gauge('subscription_groups')) - groupsBefore).toBe(5);

    await send(p.sessionId, 'one');
    await send(p.sessionId, 'two', 'bob');
    await send(q.sessionId, 'elsewhere', 'carol');
    for (const s of [alice, bob, aliceBodies, aliceSession, bobSession]) await s.waitForCount(2);
    await bobFromStart.waitForCount(3);
    await carol.waitForCount(1);

    for (const s of [alice, bob]) {
      expect(s.events.map((e) => [e.type, e.projectSequence, e.message?.body])).toEqual([
        ['MESSAGE_CREATED', 2, 'one'],
        ['MESSAGE_CREATED', 3, 'two'],
      ]);
    }
    expect(aliceBodies.events).toEqual([
      { projectSequence: 2, message: { body: 'one' } },
      { projectSequence: 3, message: { body: 'two' } },
    ]);
    expect(bobFromStart.events.map((e) => e.message?.body)).toEqual(['before anyone subscribed', 'one', 'two']);
    for (const s of [aliceSession, bobSession]) expect(s.events.map((e: any) => [e.message.body, e.message.session.title])).toEqual([['one', 'General'], ['two', 'General']]);
    expect(carol.events.map((e) => e.message?.body)).toEqual(['elsewhere']);
    for (const s of [alice, bob, aliceBodies, bobFromStart, aliceSession, bobSession, carol]) expect(s.errors).toEqual([]);
  });

  it('renders each event from fresh rows, not from what the subscription read for an earlier one', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'alice');
    const alice = await listen(WITH_SESSION, { projectId }, 'alice');
    await send(sessionId, 'one');
    await alice.waitForCount(1);
    await db.query('update chat_session set title = $2 where id = $1', [sessionId, 'Renamed']);
    await send(sessionId, 'two');
    await alice.waitForCount(2);
    expect(alice.events.map((e: any) => [e.message.body, e.message.session.title])).toEqual([['one', 'General'], ['two', 'Renamed']]);
  });

  it('ends the subscription of a removed member while the others of its group go on receiving', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'alice', ['bob', 'dave']);
    const alice = await listen(PROJECT_EVENTS, { projectId }, 'alice');
    const bob = await listen(PROJECT_EVENTS, { projectId }, 'bob');
    const dave = await listen(PROJECT_EVENTS, { projectId }, 'dave');
    await send(sessionId, 'all three');
    for (const s of [alice, bob, dave]) await s.waitForCount(1);

    await db.query('delete from project_member where project_id = $1 and user_id = $2', [projectId, 'bob']);
    await send(sessionId, 'after removal');
    await send(sessionId, 'and after that');
    await bob.waitFor((s) => s.completed);
    for (const s of [alice, dave]) await s.waitForCount(3);

    expect(bob.errors[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(bob.events.map((e) => e.message?.body)).toEqual(['all three']);
    for (const s of [alice, dave]) {
      expect(s.events.map((e) => e.message?.body)).toEqual(['all three', 'after removal', 'and after that']);
      expect(s.completed).toBe(false);
    }
  });
});

describe('fields rendered from the event alone', () => {
  it('render without the database, the DataLoaders or the viewer', async () => {
    const event: DomainEvent = {
      eventId: '00000000-0000-4000-8000-000000000001',
      type: 'message_created',
      aggregateType: 'chat_session',
      aggregateId: '00000000-0000-4000-8000-000000000002',
      sequence: 1,
      projectSequence: 1,
      projectId: '00000000-0000-4000-8000-000000000003',
      sessionId: '00000000-0000-4000-8000-000000000002',
      userId: 'alice',
      occurredAt: new Date(0).toISOString(),
      payload: { messageId: '00000000-0000-4000-8000-000000000004', sessionId: '00000000-0000-4000-8000-000000000002', authorUserId: 'alice', role: 'user', body: 'hi', createdAt: new Date(0).toISOString() },
    };
    const untouchable = new Proxy({}, {
      get(_target, key) {
        if (key === 'renew') return () => {};
        if (key === 'then') return undefined;
        throw new Error(`the context's ${String(key)} was read`);
      },
    });
    // Every field the groups treat as event-only, selected at once (each under its type; agent
    // activity's fields only come with sessionEvents' transient items, which are never shared).
    const byType = new Map<string, string[]>();
    for (const entry of EVENT_ONLY_FIELD_LIST) {
      const [type, field] = entry.split('.') as [string, string];
      byType.set(type, [...(byType.get(type) ?? []), field]);
    }
    const fields = (type: string) => (byType.get(type) ?? []).filter((f) => !['message', 'from', 'to'].includes(f)).join(' ');
    const document = parse(`subscription { projectEvents(projectId: "${event.projectId}") {
      ${fields('ChatEvent')}
      ... on MessageCreatedEvent { message { ${fields('Message')} } }
      ... on AgentSwitchedEvent { ${fields('AgentSwitchedEvent')} from { ${fields('AgentSnapshot')} } to { ${fields('AgentSnapshot')} } }
    } }`);
    for (const rootValue of [
      event,
      { ...event, type: 'agent_switched', aggregateType: 'worker_space', payload: { workerSpaceId: event.aggregateId, fromAgentId: 'a', fromAgentName: 'A', toAgentId: 'b', toAgentName: 'B' } },
    ]) {
      const validated = validateSubscriptionArgs({ schema, document, rootValue, contextValue: untouchable });
      if (!('schema' in validated)) throw new Error(validated.map((e) => e.message).join('; '));
      const result = await executeSubscriptionEvent(validated);
      expect(result.errors).toBeUndefined();
    }
    expect(EVENT_ONLY_FIELD_LIST).toContain('Message.body');
  });
});
