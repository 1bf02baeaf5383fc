import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { switchAgent } from '../src/domain/agents/worker-space.service.ts';
import { recordAgentMessage, sendMessage } from '../src/domain/chat/chat.service.ts';
import { cursorCodec, cursorKeys, queryScope } from '../src/platform/db/pagination.ts';
import { forkEm } from '../src/platform/db/orm.ts';
import { errorCode, startTestAppWithClient, type TestApp } from './support/app.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { eventPage, eventually, openTransaction, storedEvents, walk, type StoredEvent } from './support/analytics.ts';

let t: TestApp;
let db: pg.Client;

beforeAll(async () => {
  ({ t, db } = await startTestAppWithClient({ LOG_LEVEL: process.env.DEBUG_LOG_LEVEL ?? 'silent' }));
});
afterAll(() => t?.stop());

const em = () => forkEm(t.app.orm);
const ids = (events: { eventId: string }[]) => events.map((event) => event.eventId);
const storedIds = (events: StoredEvent[]) => events.map((event) => event.id);
const GQL_TYPE = { message_created: 'MESSAGE_CREATED', agent_switched: 'AGENT_SWITCHED' } as const;

async function createSession(projectId: string, owner: string, title: string): Promise<string> {
  const result = await t.gql('mutation($p: ID!, $t: String!) { createChatSession(input: { projectId: $p, title: $t }) { id } }', { p: projectId, t: title }, { as: owner });
  return result.data.createChatSession.id;
}

/** Waits until a fresh walk lists exactly what is stored, then returns what is stored (oldest first). */
async function settled(projectId: string, as: string): Promise<StoredEvent[]> {
  return eventually(async () => {
    const stored = await storedEvents(db, projectId);
    const listed = await walk(t, as, 'projectEventHistory', { projectId, order: 'OLDEST_FIRST', first: 100 });
    expect(ids(listed)).toEqual(storedIds(stored));
    return stored;
  });
}

describe('projectEventHistory filters', () => {
  let projectId: string;
  let sessions: [string, string];
  let stored: StoredEvent[];

  beforeAll(async () => {
    const fixture = await createProjectFixture(t, 'alice', ['bob']);
    projectId = fixture.projectId;
    sessions = [fixture.sessionId, await createSession(projectId, 'alice', 'Second')];
    const [planner, coder] = fixture.agentIds;
    const agent = (index: number) => (index % 2 ? coder : planner);
    // Users and agents in both sessions, and agent switches by both users, interleaved.
    for (let round = 0; round < 4; round++) {
      for (const [index, sessionId] of sessions.entries()) {
        await sendMessage(em(), index ? 'bob' : 'alice', { sessionId, body: `question ${round}` });
        await recordAgentMessage(em(), { sessionId, agentId: agent(round), body: `answer ${round}` });
      }
      await switchAgent(em(), round % 2 ? 'bob' : 'alice', { projectId, agentId: agent(round) });
      await switchAgent(em(), round % 2 ? 'bob' : 'alice', { projectId, agentId: agent(round + 1) });
    }
    stored = await settled(projectId, 'alice');
    expect(stored).toHaveLength(4 * (4 + 2));
  });

  // Expected lists come from the stored rows, filtered and sorted here, not by the code under test.
  const expectFilter = async (filter: Record<string, unknown>, keep: (event: StoredEvent) => boolean) => {
    const expected = stored.filter(keep);
    expect(expected.length).toBeGreaterThan(0);
    const oldestFirst = await walk(t, 'bob', 'projectEventHistory', { projectId, filter, order: 'OLDEST_FIRST', first: 3 });
    expect(ids(oldestFirst)).toEqual(storedIds(expected));
    const newestFirst = await walk(t, 'bob', 'projectEventHistory', { projectId, filter, first: 4 });
    expect(ids(newestFirst)).toEqual(storedIds(expected).reverse());
  };

  it('lists every event once, newest first by default, with the fields of the stored row', async () => {
    const listed = await walk(t, 'bob', 'projectEventHistory', { projectId, first: 5 });
    expect(ids(listed)).toEqual(storedIds(stored).reverse());
    const byId = new Map(stored.map((row) => [row.id, row]));
    for (const node of listed) {
      const row = byId.get(node.eventId)!;
      expect(node).toEqual({
        eventId: row.id,
        type: GQL_TYPE[row.event_type as keyof typeof GQL_TYPE],
        sequence: row.sequence,
        occurredAt: row.created_at.toISOString(),
        projectId,
        sessionId: row.session_id,
        userId: row.user_id,
      });
    }
  });

  it('filters by each event type and by both', async () => {
    await expectFilter({ types: ['MESSAGE_CREATED'] }, (event) => event.event_type === 'message_created');
    await expectFilter({ types: ['AGENT_SWITCHED'] }, (event) => event.event_type === 'agent_switched');
    await expectFilter({ types: ['AGENT_SWITCHED', 'MESSAGE_CREATED', 'AGENT_SWITCHED'] }, () => true);
  });

  it('filters by session, by user and by time range', async () => {
    await expectFilter({ sessionId: sessions[1] }, (event) => event.session_id === sessions[1]);
    await expectFilter({ userId: 'bob' }, (event) => event.user_id === 'bob');
    const from = stored[5]!.created_at;
    const to = stored[17]!.created_at;
    expect(from.getTime()).toBeLessThan(to.getTime());
    await expectFilter({ from: from.toISOString() }, (event) => event.created_at >= from);
    await expectFilter({ to: to.toISOString() }, (event) => event.created_at < to);
    await expectFilter({ from: from.toISOString(), to: to.toISOString() }, (event) => event.created_at >= from && event.created_at < to);
  });

  it('combines filters', async () => {
    const from = stored[3]!.created_at;
    expect(from).toBeInstanceOf(Date);
    await expectFilter(
      { sessionId: sessions[0], types: ['MESSAGE_CREATED'], from: from.toISOString() },
      (event) => event.session_id === sessions[0] && event.created_at >= from,
    );
    await expectFilter({ userId: 'alice', types: ['AGENT_SWITCHED'] }, (event) => event.user_id === 'alice' && event.event_type === 'agent_switched');
    // Agent messages carry the agent as their author, so a user filter does not list them.
    await expectFilter({ userId: 'bob', sessionId: sessions[1] }, (event) => event.user_id === 'bob' && event.session_id === sessions[1]);
    const none = await eventPage(t, 'bob', 'projectEventHistory', { projectId, filter: { userId: 'bob', sessionId: sessions[0] } });
    expect(none.edges).toEqual([]);
    expect(none.pageInfo).toEqual({ hasNextPage: false, endCursor: null });
  });

  it('lists a session in sequence order with sessionEventHistory', async () => {
    const listed = await walk(t, 'bob', 'sessionEventHistory', { projectId, sessionId: sessions[0], first: 3 });
    const expected = stored.filter((event) => event.session_id === sessions[0]).sort((a, b) => a.sequence - b.sequence);
    expect(listed.map((event) => event.sequence)).toEqual(expected.map((_, index) => index + 1));
    expect(ids(listed)).toEqual(storedIds(expected));
    expect(listed.map((event) => event.message!.role)).toEqual(expected.map((event) => (event.payload.role === 'agent' ? 'AGENT' : 'USER')));
  });
});

describe('pagination while events are being written', () => {
  for (const order of ['OLDEST_FIRST', 'NEWEST_FIRST'] as const) {
    it(`${order}: a walk lists the events committed before it, each once, even when an event in flight commits during it`, async () => {
      const fixture = await createProjectFixture(t, 'alice', ['bob']);
      const { projectId } = fixture;
      const busySession = await createSession(projectId, 'bob', 'Busy');
      for (let i = 0; i < 12; i++) await t.gql(SEND_MESSAGE, { sessionId: busySession, body: `before ${i}` }, { as: i % 2 ? 'bob' : 'alice' });
      const before = await settled(projectId, 'alice');

      // An event gets its timestamp now, but its transaction commits only once the walk has begun.
      // (Within one project, later writes queue behind it on the project row — outbox.writer.ts —
      // so nothing can overtake it here; the walk must still not pick it up halfway.)
      const late = await openTransaction(t.app.orm, (tx) => sendMessage(tx, 'alice', { sessionId: fixture.sessionId, body: 'late' }));

      const written: Promise<unknown>[] = [];
      const listed = await walk(t, 'alice', 'projectEventHistory', { projectId, order, first: 2 }, async (pageIndex) => {
        if (pageIndex === 0) await late.commit();
        // Writers race the walk from here on.
        for (let i = 0; i < 2; i++) written.push(t.gql(SEND_MESSAGE, { sessionId: busySession, body: `during ${pageIndex}.${i}` }, { as: 'bob' }));
        if (pageIndex % 2) written.push(t.gql(SEND_MESSAGE, { sessionId: fixture.sessionId, body: `during ${pageIndex}` }, { as: 'alice' }));
      });
      await Promise.all(written);

      const expected = order === 'OLDEST_FIRST' ? storedIds(before) : storedIds(before).reverse();
      expect(ids(listed)).toEqual(expected);

      // A new walk sees everything, each once, the late event in its place by time, not lost
      // behind a cursor.
      const after = await settled(projectId, 'alice');
      expect(after).toHaveLength(before.length + 1 + written.length);
      const lateIndex = after.findIndex((event) => event.id === late.result.event.id);
      expect(lateIndex).toBe(before.length);
      const fresh = await walk(t, 'bob', 'projectEventHistory', { projectId, order, first: 7 });
      expect(ids(fresh)).toEqual(order === 'OLDEST_FIRST' ? storedIds(after) : storedIds(after).reverse());
    });
  }

  it('sessionEventHistory continued from its endCursor later returns exactly the events committed since', async () => {
    const fixture = await createProjectFixture(t, 'alice', ['bob']);
    const { projectId, sessionId } = fixture;
    const seen: { sequence: number; eventId: string }[] = [];
    let after: string | null = null;
    const drain = async () => {
      for (;;) {
        const page = await eventPage(t, 'bob', 'sessionEventHistory', { projectId, sessionId, first: 4, after });
        seen.push(...page.edges.map((edge) => edge.node));
        after = page.pageInfo.endCursor ?? after;
        if (!page.pageInfo.hasNextPage) return;
      }
    };
    const writers = Array.from({ length: 30 }, (_, i) =>
      i % 3 === 2
        ? recordAgentMessage(em(), { sessionId, agentId: fixture.agentIds[0], body: `reply ${i}` })
        : t.gql(SEND_MESSAGE, { sessionId, body: `m ${i}` }, { as: i % 2 ? 'bob' : 'alice' }),
    );
    const writing = Promise.all(writers);
    while (seen.length < 30) {
      await drain();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await writing;
    await drain();
    expect(seen.map((event) => event.sequence)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const stored = (await storedEvents(db, projectId)).filter((event) => event.session_id === sessionId).sort((a, b) => a.sequence - b.sequence);
    expect(seen.map((event) => event.eventId)).toEqual(storedIds(stored));
  });
});

describe('isolation', () => {
  let a: Awaited<ReturnType<typeof createProjectFixture>>;
  let b: Awaited<ReturnType<typeof createProjectFixture>>;

  beforeAll(async () => {
    // Project A: owner alice, member bob. Project B: owner carol, member alice. Mallory is in neither.
    a = await createProjectFixture(t, 'alice', ['bob']);
    b = await createProjectFixture(t, 'carol', ['alice']);
    for (let i = 0; i < 3; i++) {
      await t.gql(SEND_MESSAGE, { sessionId: a.sessionId, body: `a${i}` }, { as: i % 2 ? 'bob' : 'alice' });
      await t.gql(SEND_MESSAGE, { sessionId: b.sessionId, body: `b${i}` }, { as: i % 2 ? 'alice' : 'carol' });
    }
    await switchAgent(em(), 'carol', { projectId: b.projectId, agentId: b.agentIds[0] });
    await settled(a.projectId, 'alice');
    await settled(b.projectId, 'carol');
  });

  const ANALYTICS = 'query($p: ID!) { projectAnalytics(projectId: $p, from: "2020-01-01T00:00:00Z", to: "2020-12-31T00:00:00Z") { totalEvents } }';

  it('answers NOT_FOUND to someone outside the project, exactly as for a project that does not exist', async () => {
    const missing = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
    for (const [as, projectId, sessionId] of [
      ['mallory', a.projectId, a.sessionId],
      ['bob', b.projectId, b.sessionId],
      ['alice', missing, a.sessionId],
    ] as const) {
      const events = await t.gql('query($p: ID!) { projectEventHistory(projectId: $p) { nodes { eventId } } }', { p: projectId }, { as });
      const session = await t.gql('query($p: ID!, $s: ID!) { sessionEventHistory(projectId: $p, sessionId: $s) { nodes { eventId } } }', { p: projectId, s: sessionId }, { as });
      const analytics = await t.gql(ANALYTICS, { p: projectId }, { as });
      for (const result of [events, session, analytics]) {
        expect(errorCode(result)).toBe('NOT_FOUND');
        expect(result.errors![0]!.message).toBe(`Project ${projectId} was not found`);
        expect(result.data).toBeNull(); // the non-null root field's error nulls the whole response
      }
    }
    const anonymous = await t.gql('query($p: ID!) { projectEventHistory(projectId: $p) { nodes { eventId } } }', { p: a.projectId });
    expect(errorCode(anonymous)).toBe('UNAUTHENTICATED');
  });

  it("shows members every event of their project and none of another's, whatever the filter", async () => {
    const storedA = await storedEvents(db, a.projectId);
    for (const as of ['alice', 'bob']) {
      const listed = await walk(t, as, 'projectEventHistory', { projectId: a.projectId, first: 100 });
      expect(new Set(ids(listed))).toEqual(new Set(storedIds(storedA)));
    }
    // Ids from project B as filters on project A: nothing, not an error that confirms they exist.
    for (const filter of [{ sessionId: b.sessionId }, { userId: 'carol' }, { sessionId: b.sessionId, userId: 'carol', types: ['AGENT_SWITCHED', 'MESSAGE_CREATED'] }]) {
      const page = await eventPage(t, 'alice', 'projectEventHistory', { projectId: a.projectId, filter });
      expect(page.edges).toEqual([]);
    }
    const crossSession = await t.gql('query($p: ID!, $s: ID!) { sessionEventHistory(projectId: $p, sessionId: $s) { nodes { eventId } } }', { p: a.projectId, s: b.sessionId }, { as: 'alice' });
    expect(errorCode(crossSession)).toBe('NOT_FOUND');
  });

  it('refuses a cursor on any query but the one that made it', async () => {
    const first = await eventPage(t, 'alice', 'projectEventHistory', { projectId: a.projectId, first: 1 });
    const cursor = first.pageInfo.endCursor!;
    const reuse = async (field: 'projectEventHistory' | 'sessionEventHistory', variables: Record<string, unknown>) => {
      const query = field === 'projectEventHistory'
        ? 'query($p: ID!, $f: ProjectEventsFilter, $o: EventOrder, $a: String) { projectEventHistory(projectId: $p, filter: $f, order: $o, after: $a) { nodes { eventId } } }'
        : 'query($p: ID!, $s: ID!, $a: String) { sessionEventHistory(projectId: $p, sessionId: $s, after: $a) { nodes { eventId } } }';
      const result = await t.gql(query, { ...variables, a: cursor }, { as: 'alice' });
      expect(errorCode(result)).toBe('BAD_USER_INPUT');
      expect(result.errors![0]!.extensions!.field).toBe('after');
    };
    await reuse('projectEventHistory', { p: b.projectId });
    await reuse('projectEventHistory', { p: a.projectId, o: 'OLDEST_FIRST' });
    await reuse('projectEventHistory', { p: a.projectId, f: { types: ['MESSAGE_CREATED'] } });
    await reuse('projectEventHistory', { p: a.projectId, f: { userId: 'alice' } });
    await reuse('sessionEventHistory', { p: a.projectId, s: a.sessionId });

    const sessionPage = await eventPage(t, 'alice', 'sessionEventHistory', { projectId: a.projectId, sessionId: a.sessionId, first: 1 });
    const wrongSession = await t.gql(
      'query($p: ID!, $s: ID!, $a: String) { sessionEventHistory(projectId: $p, sessionId: $s, after: $a) { nodes { eventId } } }',
      { p: b.projectId, s: b.sessionId, a: sessionPage.pageInfo.endCursor },
      { as: 'alice' },
    );
    expect(errorCode(wrongSession)).toBe('BAD_USER_INPUT');

    // A valid page continued with its own cursor still works.
    const second = await eventPage(t, 'alice', 'projectEventHistory', { projectId: a.projectId, first: 1, after: cursor });
    expect(second.edges).toHaveLength(1);
  });

  it('lists only the queried project even from a hand-made cursor that points at another project’s event', async () => {
    const [eventOfA] = await storedEvents(db, a.projectId);
    const [createdAtKey] = (
      await db.query(`select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as key from event_outbox where id = $1`, [eventOfA!.id])
    ).rows.map((row) => row.key);
    const scope = queryScope('projectEvents', { projectId: b.projectId, types: null, sessionId: null, userId: null, from: null, to: null, order: 'oldest_first' });
    const forged = cursorCodec([cursorKeys.exactInstant, cursorKeys.uuid], { scope, pinned: cursorKeys.transactionId }).encode([createdAtKey, eventOfA!.id], '999999999999');
    const page = await eventPage(t, 'alice', 'projectEventHistory', { projectId: b.projectId, order: 'OLDEST_FIRST', after: forged, first: 100 });
    const storedB = new Set(storedIds(await storedEvents(db, b.projectId)));
    expect(page.edges.length).toBeGreaterThan(0);
    for (const edge of page.edges) {
      expect(edge.node.projectId).toBe(b.projectId);
      expect(storedB.has(edge.node.eventId)).toBe(true);
    }
  });
});

describe('bad input', () => {
  it('rejects bad arguments with BAD_USER_INPUT naming the argument, and changes nothing', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'alice');
    const before = await db.query('select count(*) from event_outbox');
    const cases: [string, Record<string, unknown>, string][] = [
      ['projectEventHistory', { projectId, first: 101 }, 'first'],
      ['projectEventHistory', { projectId, first: -1 }, 'first'],
      ['projectEventHistory', { projectId, after: 'not-a-cursor' }, 'after'],
      ['projectEventHistory', { projectId, after: Buffer.from('{"s":"x","p":[1],"x":null}').toString('base64url') }, 'after'],
      ['projectEventHistory', { projectId: 'nope' }, 'projectId'],
      ['projectEventHistory', { projectId, filter: { types: [] } }, 'filter.types'],
      ['projectEventHistory', { projectId, filter: { sessionId: 'nope' } }, 'filter.sessionId'],
      ['projectEventHistory', { projectId, filter: { from: '2026-01-02T00:00:00Z', to: '2026-01-01T00:00:00Z' } }, 'filter'],
      ['projectEventHistory', { projectId, filter: { from: '2026-01-01T00:00:00Z', to: '2026-01-01T00:00:00Z' } }, 'filter'],
      ['sessionEventHistory', { projectId, sessionId, first: 1000 }, 'first'],
      ['sessionEventHistory', { projectId, sessionId: 'nope' }, 'sessionId'],
    ];
    for (const [field, variables, argument] of cases) {
      const query = field === 'projectEventHistory'
        ? 'query($projectId: ID!, $filter: ProjectEventsFilter, $first: Int, $after: String) { projectEventHistory(projectId: $projectId, filter: $filter, first: $first, after: $after) { nodes { eventId } } }'
        : 'query($projectId: ID!, $sessionId: ID!, $first: Int) { sessionEventHistory(projectId: $projectId, sessionId: $sessionId, first: $first) { nodes { eventId } } }';
      const result = await t.gql(query, variables, { as: 'alice' });
      expect(errorCode(result), JSON.stringify(variables)).toBe('BAD_USER_INPUT');
      expect(result.errors![0]!.extensions!.field).toBe(argument);
    }
    const typo = await t.gql('query($p: ID!, $f: ProjectEventsFilter) { projectEventHistory(projectId: $p, filter: $f) { nodes { eventId } } }', { p: projectId, f: { from: 'yesterday' } }, { as: 'alice' });
    expect(errorCode(typo)).toBe('BAD_USER_INPUT');
    expect((await db.query('select count(*) from event_outbox')).rows).toEqual(before.rows);
  });
});

describe('the old query names (deprecated aliases for one release)', () => {
  it('projectEvents and sessionEvents answer what projectEventHistory and sessionEventHistory answer, and continue their cursors', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'alice');
    for (const body of ['one', 'two', 'three']) await t.gql(SEND_MESSAGE, { sessionId, body }, { as: 'alice' });
    const stored = await settled(projectId, 'alice');

    const PROJECT = (field: string) =>
      `query($p: ID!, $first: Int, $after: String) { ${field}(projectId: $p, order: OLDEST_FIRST, first: $first, after: $after) { nodes { eventId } pageInfo { endCursor } } }`;
    const SESSION = (field: string) =>
      `query($p: ID!, $s: ID!, $first: Int, $after: String) { ${field}(projectId: $p, sessionId: $s, first: $first, after: $after) { nodes { eventId } pageInfo { endCursor } } }`;
    const run = async (query: string, field: string, variables: Record<string, unknown>) => {
      const result = await t.gql(query, variables, { as: 'alice' });
      expect(result.errors, field).toBeUndefined();
      return result.data[field] as { nodes: { eventId: string }[]; pageInfo: { endCursor: string } };
    };
    const everyId = storedIds(stored);
    for (const [old, current, query, variables] of [
      ['projectEvents', 'projectEventHistory', PROJECT, { p: projectId }],
      ['sessionEvents', 'sessionEventHistory', SESSION, { p: projectId, s: sessionId }],
    ] as const) {
      const viaOld = await run(query(old), old, { ...variables, first: 100 });
      expect(ids(viaOld.nodes)).toEqual(everyId);
      expect(ids(viaOld.nodes)).toEqual(ids((await run(query(current), current, { ...variables, first: 100 })).nodes));
      // A cursor of one name continues under the other: a client can switch in the middle of a walk.
      const firstPage = await run(query(old), old, { ...variables, first: 1 });
      const rest = await run(query(current), current, { ...variables, first: 100, after: firstPage.pageInfo.endCursor });
      expect([...ids(firstPage.nodes), ...ids(rest.nodes)]).toEqual(everyId);
    }
  });

  it('are marked deprecated in the schema, naming their replacement', async () => {
    const result = await t.gql('{ __type(name: "Query") { fields(includeDeprecated: true) { name isDeprecated deprecationReason } } }', {}, { as: 'alice' });
    const fields = new Map((result.data.__type.fields as { name: string; isDeprecated: boolean; deprecationReason: string | null }[]).map((field) => [field.name, field]));
    expect(fields.get('projectEvents')).toMatchObject({ isDeprecated: true, deprecationReason: expect.stringContaining('`projectEventHistory`') });
    expect(fields.get('sessionEvents')).toMatchObject({ isDeprecated: true, deprecationReason: expect.stringContaining('`sessionEventHistory`') });
    expect(fields.get('projectEventHistory')).toMatchObject({ isDeprecated: false });
    expect(fields.get('sessionEventHistory')).toMatchObject({ isDeprecated: false });
  });
});
