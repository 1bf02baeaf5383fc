import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { recordAgentMessage, sendMessage } from '../src/domain/chat/chat.service.ts';
import { forkEm } from '../src/platform/db/orm.ts';
import { errorCode, startTestAppWithClient, type TestApp } from './support/app.ts';
import { whileInsertsFail } from './support/database.ts';
import { createProjectFixture, SEND_MESSAGE, SWITCH_AGENT } from './support/fixtures.ts';

let t: TestApp;
let db: pg.Client;

beforeAll(async () => {
  // What the write path alone leaves in the database, before any publisher touches it.
  ({ t, db } = await startTestAppWithClient({ OUTBOX_PUBLISHER_ENABLED: 'false' }));
});
afterAll(() => t?.stop());

const count = async (table: string, where = 'true', params: unknown[] = []) =>
  Number((await db.query(`select count(*) from ${table} where ${where}`, params)).rows[0].count);

describe('sendMessage', () => {
  it('commits the message and exactly one pending message_created event that names it', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'alice');
    const result = await t.gql(SEND_MESSAGE, { sessionId, body: 'hello agents' }, { as: 'alice' });
    expect(result.errors).toBeUndefined();
    const sent = result.data.sendMessage;

    const messages = await db.query('select * from message where session_id = $1', [sessionId]);
    expect(messages.rows).toHaveLength(1);
    expect(messages.rows[0]).toMatchObject({ id: sent.message.id, body: 'hello agents', author_user_id: 'alice', role: 'user' });

    const events = await db.query('select e.*, s.status, s.attempts, s.published_at from event_outbox e join outbox_event_status s using (id) where e.aggregate_id = $1', [sessionId]);
    expect(events.rows).toHaveLength(1);
    expect(events.rows[0]).toMatchObject({
      id: sent.eventId,
      event_type: 'message_created',
      aggregate_type: 'chat_session',
      project_id: projectId,
      session_id: sessionId,
      user_id: 'alice',
      sequence: 1,
      status: 'pending',
      attempts: 0,
      published_at: null,
    });
    expect(events.rows[0].payload).toMatchObject({ messageId: sent.message.id, sessionId, body: 'hello agents', authorUserId: 'alice' });
    expect(sent.sequence).toBe(1);
  });

  it('stores no message when the event insert fails, and the client gets a masked error', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const result = await whileInsertsFail(db, 'event_outbox', () => t.gql(SEND_MESSAGE, { sessionId, body: 'lost?' }, { as: 'alice' }));
    expect(errorCode(result)).toBe('INTERNAL_SERVER_ERROR');
    expect(JSON.stringify(result.errors)).not.toMatch(/injected|event_outbox|insert|stack/i);
    expect(await count('message', 'session_id = $1', [sessionId])).toBe(0);
    expect(await count('event_outbox', 'aggregate_id = $1', [sessionId])).toBe(0);
    // The sequence increment rolled back too: the next event is still number 1.
    const next = await t.gql(SEND_MESSAGE, { sessionId, body: 'second try' }, { as: 'alice' });
    expect(next.data.sendMessage.sequence).toBe(1);
  });

  it('stores no event when the message insert fails', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    const result = await whileInsertsFail(db, 'message', () => t.gql(SEND_MESSAGE, { sessionId, body: 'lost?' }, { as: 'alice' }));
    expect(errorCode(result)).toBe('INTERNAL_SERVER_ERROR');
    expect(await count('message', 'session_id = $1', [sessionId])).toBe(0);
    expect(await count('event_outbox', 'aggregate_id = $1', [sessionId])).toBe(0);
  });

  it('numbers 50 concurrent messages to one session 1..50 with no gap or duplicate', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice', ['bob']);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => t.gql(SEND_MESSAGE, { sessionId, body: `m${i}` }, { as: i % 2 ? 'bob' : 'alice' })),
    );
    for (const result of results) expect(result.errors).toBeUndefined();
    const { rows } = await db.query('select sequence from event_outbox where aggregate_id = $1 order by sequence', [sessionId]);
    expect(rows.map((row) => row.sequence)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(results.map((r) => r.data.sendMessage.sequence).sort((a: number, b: number) => a - b)).toEqual(rows.map((r) => r.sequence));
    expect(await count('message', 'session_id = $1', [sessionId])).toBe(50);
  });
});

describe('event timestamps', () => {
  it('make an event due by the database clock, so an API host whose clock runs ahead cannot delay it', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 3_600_000); // this host is an hour fast
    try {
      const sent = await sendMessage(forkEm(t.app.orm), 'alice', { sessionId, body: 'from the future' });
      const { rows } = await db.query('select next_retry_at <= now() as due from outbox_event_status where id = $1', [sent.event.id]);
      expect(rows[0]).toEqual({ due: true });
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('switchAgent', () => {
  it('updates the worker space and records agent_switched with from and to', async () => {
    const { projectId, agentIds } = await createProjectFixture(t, 'alice');
    const first = await t.gql(SWITCH_AGENT, { projectId, agentId: agentIds[0] }, { as: 'alice' });
    const second = await t.gql(SWITCH_AGENT, { projectId, agentId: agentIds[1] }, { as: 'alice' });
    expect(first.errors).toBeUndefined();
    expect(second.data.switchAgent).toMatchObject({ switched: true, sequence: 2, workerSpace: { activeAgent: { id: agentIds[1], name: 'Coder' } } });

    const space = await db.query('select * from worker_space where project_id = $1 and user_id = $2', [projectId, 'alice']);
    expect(space.rows[0].active_agent_id).toBe(agentIds[1]);
    const events = await db.query('select e.*, s.status from event_outbox e join outbox_event_status s using (id) where e.aggregate_id = $1 order by e.sequence', [space.rows[0].id]);
    expect(events.rows.map((e) => [e.event_type, e.sequence, e.payload.fromAgentId, e.payload.toAgentId])).toEqual([
      ['agent_switched', 1, null, agentIds[0]],
      ['agent_switched', 2, agentIds[0], agentIds[1]],
    ]);
    expect(events.rows[1]).toMatchObject({ id: second.data.switchAgent.eventId, project_id: projectId, user_id: 'alice', session_id: null, status: 'pending' });
  });

  it('is a no-op without an event when the agent is already active', async () => {
    const { projectId, agentIds } = await createProjectFixture(t, 'alice');
    await t.gql(SWITCH_AGENT, { projectId, agentId: agentIds[0] }, { as: 'alice' });
    const before = await count('event_outbox', 'project_id = $1', [projectId]);
    const again = await t.gql(SWITCH_AGENT, { projectId, agentId: agentIds[0] }, { as: 'alice' });
    expect(again.data.switchAgent).toMatchObject({ switched: false, eventId: null, sequence: null });
    expect(await count('event_outbox', 'project_id = $1', [projectId])).toBe(before);
  });

  it('keeps the old agent when the event insert fails', async () => {
    const { projectId, agentIds } = await createProjectFixture(t, 'alice');
    await t.gql(SWITCH_AGENT, { projectId, agentId: agentIds[0] }, { as: 'alice' });
    const result = await whileInsertsFail(db, 'event_outbox', () => t.gql(SWITCH_AGENT, { projectId, agentId: agentIds[1] }, { as: 'alice' }));
    expect(errorCode(result)).toBe('INTERNAL_SERVER_ERROR');
    const space = await db.query('select active_agent_id, event_sequence from worker_space where project_id = $1 and user_id = $2', [projectId, 'alice']);
    expect(space.rows[0]).toEqual({ active_agent_id: agentIds[0], event_sequence: 1 });
    expect(await count('event_outbox', 'project_id = $1 and event_type = $2', [projectId, 'agent_switched'])).toBe(1);
  });

  it('records no event when the worker space update fails', async () => {
    const { projectId, agentIds } = await createProjectFixture(t, 'alice');
    await db.query(`
      create function fail_worker_space_update() returns trigger language plpgsql as $$
      begin if new.active_agent_id is distinct from old.active_agent_id then raise exception 'injected'; end if; return new; end $$`);
    await db.query('create trigger fail_worker_space_update before update on worker_space for each row execute function fail_worker_space_update()');
    try {
      expect(errorCode(await t.gql(SWITCH_AGENT, { projectId, agentId: agentIds[0] }, { as: 'alice' }))).toBe('INTERNAL_SERVER_ERROR');
    } finally {
      await db.query('drop trigger fail_worker_space_update on worker_space');
      await db.query('drop function fail_worker_space_update()');
    }
    expect(await count('event_outbox', 'project_id = $1', [projectId])).toBe(0);
    const space = await db.query('select active_agent_id, event_sequence from worker_space where project_id = $1 and user_id = $2', [projectId, 'alice']);
    expect(space.rows[0]).toEqual({ active_agent_id: null, event_sequence: 0 });
  });

  it('gives concurrent switches a consistent chain of from → to', async () => {
    const { projectId, agentIds } = await createProjectFixture(t, 'alice');
    await Promise.all(Array.from({ length: 10 }, (_, i) => t.gql(SWITCH_AGENT, { projectId, agentId: agentIds[i % 2] }, { as: 'alice' })));
    const { rows } = await db.query(
      `select sequence, payload from event_outbox where project_id = $1 and event_type = 'agent_switched' order by sequence`,
      [projectId],
    );
    expect(rows.map((r) => r.sequence)).toEqual(rows.map((_, i) => i + 1));
    for (let i = 1; i < rows.length; i++) expect(rows[i].payload.fromAgentId).toBe(rows[i - 1].payload.toAgentId);
    for (const row of rows) expect(row.payload.fromAgentId).not.toBe(row.payload.toAgentId);
  });
});

describe('concurrent writers in one project', () => {
  it('number every event gaplessly per session, per worker space and per project, in commit order, with no deadlock between messages, switches and agent replies', async () => {
    const users = ['alice', 'bob', 'carol', 'dave'];
    const { projectId, agentIds, sessionId } = await createProjectFixture(t, 'alice', users.slice(1));
    const second = (await t.gql('mutation($p: ID!) { createChatSession(input: { projectId: $p, title: "Second" }) { id } }', { p: projectId }, { as: 'bob' })).data
      .createChatSession.id as string;
    const sessions = [sessionId, second];
    const seed = await t.gql(SEND_MESSAGE, { sessionId, body: 'answer me' }, { as: 'alice' });

    // What a resuming client reads while the writes go on: whatever has committed must be
    // 1..n with no hole, or a cursor at n would skip an event that commits later.
    let writing = true;
    let snapshots = 0;
    const holes: string[] = [];
    const reader = (async () => {
      while (writing) {
        const { rows } = await db.query('select project_sequence from event_outbox where project_id = $1 order by project_sequence', [projectId]);
        const seen = rows.map((row) => row.project_sequence as number);
        if (seen.some((n, i) => n !== i + 1)) holes.push(seen.join(','));
        snapshots++;
      }
    })();

    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 120; i++) {
      const as = users[i % users.length]!;
      if (i % 5 === 4) writes.push(t.gql(SWITCH_AGENT, { projectId, agentId: agentIds[i % 2] }, { as }));
      else writes.push(t.gql(SEND_MESSAGE, { sessionId: sessions[i % 2], body: `m${i}` }, { as }));
    }
    // An agent's reply goes through the runtime's entry point, in the same project at the same time.
    writes.push(recordAgentMessage(forkEm(t.app.orm), { sessionId, agentId: agentIds[0], body: 'a reply', replyToMessageId: seed.data.sendMessage.message.id }));
    const results = await Promise.all(writes);
    writing = false;
    await reader;

    for (const result of results) expect((result as { errors?: unknown }).errors).toBeUndefined();
    expect(holes).toEqual([]);
    expect(snapshots).toBeGreaterThan(1);
    const { rows } = await db.query('select aggregate_id, sequence, project_sequence from event_outbox where project_id = $1 order by project_sequence', [projectId]);
    // 1 fixture message + 96 messages + 24 switches (some may be no-ops) + 1 reply.
    expect(rows.length).toBeGreaterThanOrEqual(98);
    expect(rows.map((row) => row.project_sequence)).toEqual(rows.map((_, i) => i + 1));
    const byAggregate = new Map<string, number[]>();
    for (const row of rows) byAggregate.set(row.aggregate_id, [...(byAggregate.get(row.aggregate_id) ?? []), row.sequence]);
    // Numbered in commit order: within each aggregate, sequence rises with projectSequence, gaplessly.
    for (const sequences of byAggregate.values()) expect(sequences).toEqual(sequences.map((_, i) => i + 1));
    expect(await count('message', 'project_id = $1', [projectId])).toBe(1 + 96 + 1);
    const numbered = await db.query('select id, event_sequence from project where id = $1', [projectId]);
    expect(numbered.rows[0].event_sequence).toBe(rows.length);
  });
});
