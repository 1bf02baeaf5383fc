import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestAppWithClient, type GqlResult, type TestApp } from './support/app.ts';
import { createProjectFixture, SEND_MESSAGE, SWITCH_AGENT } from './support/fixtures.ts';
import { subscribe } from './support/subscriber.ts';
import type pg from 'pg';

const CREATE_CREDENTIAL = `
  mutation($agentId: ID!) { createAgentCredential(input: { agentId: $agentId }) { secret credential { id createdAt lastUsedAt revokedAt } } }`;
const REVOKE_CREDENTIAL = `mutation($id: ID!) { revokeAgentCredential(input: { credentialId: $id }) { id revokedAt } }`;
const POST_REPLY = `
  mutation($replyTo: ID!, $body: String!) { postAgentReply(input: { replyTo: $replyTo, body: $body }) { messageId eventId sequence } }`;
const POST_DELTA = `
  mutation($replyTo: ID!, $index: Int!, $text: String!) { postAgentReplyDelta(input: { replyTo: $replyTo, index: $index, text: $text }) { replyTo index } }`;
const INBOX = `
  subscription($after: ID) { agentInbox(after: $after) { eventId projectSequence messageId sessionId authorUserId body } }`;
const WITH_ACTIVITY = `
  subscription($sessionId: ID!) {
    sessionEvents(sessionId: $sessionId, agentActivity: true) {
      eventId type sequence
      ... on MessageCreatedEvent { message { id body role replyToId } }
      ... on AgentReplyDelta { replyTo agentId index text }
    }
  }`;

describe('external agent runtimes with agent credentials', () => {
  let t: TestApp;
  let db: pg.Client;
  beforeAll(async () => {
    // The in-process runtime runs too: it must leave external agents alone. Credentials are
    // re-checked on every event so a revoked one ends an open inbox at the next message.
    ({ t, db } = await startTestAppWithClient({ AGENT_RUNTIME_ENABLED: 'true', AGENT_RUNTIME_POLL_INTERVAL_MS: '50', SUBSCRIPTION_AUTH_RECHECK_MS: '0' }));
  });
  afterAll(() => t.stop());

  /** One operation over HTTP with `Authorization: Bearer <secret>`. */
  async function asAgent<T = any>(secret: string, query: string, variables: Record<string, unknown> = {}): Promise<GqlResult<T>> {
    const response = await fetch(t.app.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${secret}` },
      body: JSON.stringify({ query, variables }),
    });
    return { status: response.status, ...((await response.json()) as object) };
  }

  /** A project of `owner` whose first agent is EXTERNAL and active for the owner, with a credential for it. */
  async function externalAgent(owner: string) {
    const f = await createProjectFixture(t, owner, [`${owner}-member`]);
    const agentId = f.agentIds[0];
    const updated = await t.gql('mutation($id: ID!) { updateAgent(input: { agentId: $id, kind: EXTERNAL }) { kind } }', { id: agentId }, { as: owner });
    expect(updated.data.updateAgent.kind).toBe('EXTERNAL');
    await t.gql(SWITCH_AGENT, { projectId: f.projectId, agentId }, { as: owner });
    const created = await t.gql(CREATE_CREDENTIAL, { agentId }, { as: owner });
    expect(created.errors).toBeUndefined();
    return { ...f, agentId, secret: created.data.createAgentCredential.secret as string, credentialId: created.data.createAgentCredential.credential.id as string };
  }

  it('shows the secret once and stores only its hash; owners only', async () => {
    const f = await externalAgent('olga');
    expect(f.secret).toMatch(new RegExp(`^agc_${f.credentialId}_[A-Za-z0-9_-]{43}$`));

    const rows = await db.query(`select * from agent_credential where id = $1`, [f.credentialId]);
    expect(rows.rows).toHaveLength(1);
    const stored = JSON.stringify(rows.rows[0], (_key, value) => (value?.type === 'Buffer' ? Buffer.from(value.data).toString('latin1') : value));
    const secretPart = f.secret.split('_').at(-1)!;
    expect(stored).not.toContain(secretPart);
    expect(Buffer.from(rows.rows[0].secret_hash).equals(createHash('sha256').update(f.secret).digest())).toBe(true);

    // Listed without secrets (the type has no such field), to owners only.
    const listed = await t.gql('query($id: ID!) { node(id: $id) { ... on Agent { credentials { id createdAt lastUsedAt revokedAt } } } }', { id: f.agentId }, { as: 'olga' });
    expect(listed.data.node.credentials).toEqual([{ id: f.credentialId, createdAt: expect.any(String), lastUsedAt: null, revokedAt: null }]);
    const asMember = await t.gql('query($id: ID!) { node(id: $id) { ... on Agent { credentials { id } } } }', { id: f.agentId }, { as: 'olga-member' });
    expect(errorCode(asMember)).toBe('FORBIDDEN');
    expect(errorCode(await t.gql(CREATE_CREDENTIAL, { agentId: f.agentId }, { as: 'olga-member' }))).toBe('FORBIDDEN');
    expect(errorCode(await t.gql(CREATE_CREDENTIAL, { agentId: f.agentId }, { as: 'stranger' }))).toBe('NOT_FOUND');
    expect(errorCode(await t.gql(REVOKE_CREDENTIAL, { id: f.credentialId }, { as: 'olga-member' }))).toBe('FORBIDDEN');
    expect(errorCode(await t.gql(REVOKE_CREDENTIAL, { id: f.credentialId }, { as: 'stranger' }))).toBe('NOT_FOUND');
  });

  it('an external runtime receives the message in its inbox, streams deltas and commits one reply; the in-process runtime stays out', async () => {
    const f = await externalAgent('pia');
    const inbox = await subscribe(t.app.graphqlUrl, f.secret, INBOX, {});
    const watcher = await subscribe(t.app.graphqlUrl, await t.token('pia'), WITH_ACTIVITY, { sessionId: f.sessionId });
    try {
      const sent = await t.gql(SEND_MESSAGE, { sessionId: f.sessionId, body: 'hello outside' }, { as: 'pia' });
      const messageId = sent.data.sendMessage.message.id;
      await inbox.waitForCount(1);
      expect(inbox.events[0]).toMatchObject({ eventId: sent.data.sendMessage.eventId, messageId, sessionId: f.sessionId, authorUserId: 'pia', body: 'hello outside' });

      // Long enough for the in-process runtime (polling every 50 ms) to have answered, were it to.
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect((await db.query(`select count(*)::int as n from message where reply_to_id = $1`, [messageId])).rows[0].n).toBe(0);
      expect((await db.query(`select count(*)::int as n from agent_reply_job where reply_to_message_id = $1`, [messageId])).rows[0].n).toBe(0);

      for (const [index, text] of ['Hi', ' there'].entries()) {
        const delta = await asAgent(f.secret, POST_DELTA, { replyTo: messageId, index, text });
        expect(delta.errors).toBeUndefined();
      }
      await watcher.waitFor((s) => s.events.filter((e) => e.type === 'AGENT_REPLY_DELTA').length === 2);
      const reply = await asAgent(f.secret, POST_REPLY, { replyTo: messageId, body: 'Hi there' });
      expect(reply.errors).toBeUndefined();
      const isReply = (e: any) => e.type === 'MESSAGE_CREATED' && e.message.role === 'AGENT';
      await watcher.waitFor((s) => s.events.some(isReply));
      const events = watcher.events as any[];
      expect(events.filter((e) => e.type === 'AGENT_REPLY_DELTA').map((e) => [e.index, e.text, e.agentId, e.replyTo])).toEqual([
        [0, 'Hi', f.agentId, messageId],
        [1, ' there', f.agentId, messageId],
      ]);
      expect(events.find(isReply)).toMatchObject({ eventId: reply.data.postAgentReply.eventId, sequence: 2, message: { id: reply.data.postAgentReply.messageId, body: 'Hi there', replyToId: messageId } });

      // Exactly once: a second reply is refused and nothing of it is stored; deltas after it too.
      const again = await asAgent(f.secret, POST_REPLY, { replyTo: messageId, body: 'again' });
      expect(errorCode(again)).toBe('CONFLICT');
      expect(again.status).toBeLessThan(500);
      expect(errorCode(await asAgent(f.secret, POST_DELTA, { replyTo: messageId, index: 2, text: '!' }))).toBe('CONFLICT');
      const stored = await db.query(`select event_type, payload->>'role' as role from event_outbox where session_id = $1 order by sequence`, [f.sessionId]);
      expect(stored.rows).toEqual([{ event_type: 'message_created', role: 'user' }, { event_type: 'message_created', role: 'agent' }]);
      // Only the user's message reached the inbox: not the agent's own reply.
      expect(inbox.events).toHaveLength(1);
    } finally {
      await inbox.stop();
      await watcher.stop();
    }
  });

  it('replays what was missed after a position, without messages answered meanwhile', async () => {
    const f = await externalAgent('quinn');
    const first = await t.gql(SEND_MESSAGE, { sessionId: f.sessionId, body: 'one' }, { as: 'quinn' });
    const second = await t.gql(SEND_MESSAGE, { sessionId: f.sessionId, body: 'two' }, { as: 'quinn' });
    const third = await t.gql(SEND_MESSAGE, { sessionId: f.sessionId, body: 'three' }, { as: 'quinn' });
    await asAgent(f.secret, POST_REPLY, { replyTo: third.data.sendMessage.message.id, body: 'answered already' });
    // A member whose active agent is another one: not addressed to this agent.
    await t.gql(SEND_MESSAGE, { sessionId: f.sessionId, body: 'not for you' }, { as: 'quinn-member' });

    const inbox = await subscribe(t.app.graphqlUrl, f.secret, INBOX, { after: first.data.sendMessage.eventId });
    try {
      await inbox.waitForCount(1);
      const live = await t.gql(SEND_MESSAGE, { sessionId: f.sessionId, body: 'four' }, { as: 'quinn' });
      await inbox.waitForCount(2);
      expect((inbox.events as any[]).map((e) => e.body)).toEqual(['two', 'four']);
      expect((inbox.events as any[]).map((e) => e.eventId)).toEqual([second.data.sendMessage.eventId, live.data.sendMessage.eventId]);
    } finally {
      await inbox.stop();
    }
  });

  it('a credential acts only as its agent in its project; user tokens cannot speak as an agent', async () => {
    const a = await externalAgent('rita');
    const b = await externalAgent('sam');
    const inB = await t.gql(SEND_MESSAGE, { sessionId: b.sessionId, body: 'for b' }, { as: 'sam' });
    const inA = await t.gql(SEND_MESSAGE, { sessionId: a.sessionId, body: 'for a' }, { as: 'rita' });

    expect(errorCode(await asAgent(a.secret, POST_REPLY, { replyTo: inB.data.sendMessage.message.id, body: 'intruding' }))).toBe('NOT_FOUND');
    expect(errorCode(await asAgent(a.secret, POST_DELTA, { replyTo: inB.data.sendMessage.message.id, index: 0, text: 'x' }))).toBe('NOT_FOUND');
    // Every user field refuses an agent credential, in its own project too.
    for (const [query, variables] of [
      ['query($id: ID!) { project(id: $id) { name } }', { id: a.projectId }],
      ['query($id: ID!) { chatSession(id: $id) { title } }', { id: a.sessionId }],
      ['mutation($s: ID!) { sendMessage(input: { sessionId: $s, body: "as a user" }) { eventId } }', { s: a.sessionId }],
      [CREATE_CREDENTIAL, { agentId: a.agentId }],
    ] as const) {
      expect(errorCode(await asAgent(a.secret, query, variables))).toBe('UNAUTHENTICATED');
    }
    const sessionAsAgent = await subscribe(t.app.graphqlUrl, a.secret, 'subscription($s: ID!) { sessionEvents(sessionId: $s) { eventId } }', { s: a.sessionId });
    try {
      await sessionAsAgent.waitFor((s) => s.errors.length > 0);
      expect(sessionAsAgent.errors[0]!.extensions?.code).toBe('UNAUTHENTICATED');
    } finally {
      await sessionAsAgent.stop();
    }

    // A user token (even the owner's) never reaches the agent fields.
    expect(errorCode(await t.gql(POST_REPLY, { replyTo: inA.data.sendMessage.message.id, body: 'as the owner' }, { as: 'rita' }))).toBe('UNAUTHENTICATED');
    expect(errorCode(await t.gql(POST_DELTA, { replyTo: inA.data.sendMessage.message.id, index: 0, text: 'x' }, { as: 'rita' }))).toBe('UNAUTHENTICATED');
    const inboxAsUser = await subscribe(t.app.graphqlUrl, await t.token('rita'), INBOX, {});
    try {
      await inboxAsUser.waitFor((s) => s.errors.length > 0);
      expect(inboxAsUser.errors[0]!.extensions?.code).toBe('UNAUTHENTICATED');
    } finally {
      await inboxAsUser.stop();
    }
    // A forged secret for a real credential id is refused.
    const forged = `agc_${a.credentialId}_${'A'.repeat(43)}`;
    expect(errorCode(await asAgent(forged, POST_REPLY, { replyTo: inA.data.sendMessage.message.id, body: 'forged' }))).toBe('UNAUTHENTICATED');
    expect((await db.query(`select count(*)::int as n from message where role = 'agent' and project_id = any($1::uuid[])`, [[a.projectId, b.projectId]])).rows[0].n).toBe(0);
  });

  it('revocation ends access over HTTP, for new graphql-ws connections and for an open inbox', async () => {
    const f = await externalAgent('tom');
    const open = await subscribe(t.app.graphqlUrl, f.secret, INBOX, {});
    try {
      const sent = await t.gql(SEND_MESSAGE, { sessionId: f.sessionId, body: 'before' }, { as: 'tom' });
      await open.waitForCount(1);
      const revoked = await t.gql(REVOKE_CREDENTIAL, { id: f.credentialId }, { as: 'tom' });
      expect(revoked.data.revokeAgentCredential.revokedAt).toEqual(expect.any(String));

      expect(errorCode(await asAgent(f.secret, POST_REPLY, { replyTo: sent.data.sendMessage.message.id, body: 'too late' }))).toBe('UNAUTHENTICATED');
      const fresh = await subscribe(t.app.graphqlUrl, f.secret, INBOX, {});
      try {
        await fresh.waitFor((s) => s.errors.length > 0);
        expect(fresh.errors[0]!.extensions?.code).toBe('UNAUTHENTICATED');
      } finally {
        await fresh.stop();
      }
      // The open one ends at the next event instead of delivering it.
      await t.gql(SEND_MESSAGE, { sessionId: f.sessionId, body: 'after' }, { as: 'tom' });
      await open.waitFor((s) => s.errors.length > 0);
      expect(open.errors[0]!.extensions?.code).toBe('UNAUTHENTICATED');
      expect(open.events).toHaveLength(1);
      // Still listed, as revoked.
      const listed = await t.gql('query($id: ID!) { node(id: $id) { ... on Agent { credentials { id revokedAt lastUsedAt } } } }', { id: f.agentId }, { as: 'tom' });
      expect(listed.data.node.credentials).toEqual([{ id: f.credentialId, revokedAt: expect.any(String), lastUsedAt: expect.any(String) }]);
    } finally {
      await open.stop();
    }
  });
});
