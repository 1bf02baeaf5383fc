import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BODY_LENGTH } from '../src/domain/chat/chat.service.ts';
import { errorCode, startTestAppWithClient, type GqlResult, type TestApp } from './support/app.ts';
import { createProjectFixture, SEND_MESSAGE, SWITCH_AGENT } from './support/fixtures.ts';

let t: TestApp;
let db: pg.Client;
let fixture: Awaited<ReturnType<typeof createProjectFixture>>;
let otherProject: Awaited<ReturnType<typeof createProjectFixture>>;

beforeAll(async () => {
  ({ t, db } = await startTestAppWithClient());
  fixture = await createProjectFixture(t, 'alice');
  otherProject = await createProjectFixture(t, 'alice');
});
afterAll(() => t?.stop());

/** Row counts of every table: a rejected request must leave all of them as they were. */
async function snapshot() {
  const tables = ['project', 'project_member', 'chat_session', 'message', 'agent', 'worker_space', 'event_outbox'];
  const counts: Record<string, number> = {};
  for (const table of tables) counts[table] = Number((await db.query(`select count(*) from ${table}`)).rows[0].count);
  const spaces = await db.query('select id, active_agent_id, event_sequence from worker_space order by id');
  const sessions = await db.query('select id, event_sequence from chat_session order by id');
  return { counts, spaces: spaces.rows, sessions: sessions.rows };
}

const NO_SUCH_ID = '01900000-0000-7000-8000-000000000000';

describe('rejected input changes nothing', () => {
  const cases: [string, () => [string, Record<string, unknown>], string, string?][] = [
    ['an empty body', () => [SEND_MESSAGE, { sessionId: fixture.sessionId, body: '' }], 'BAD_USER_INPUT', 'body'],
    ['a blank body', () => [SEND_MESSAGE, { sessionId: fixture.sessionId, body: ' \n\t ' }], 'BAD_USER_INPUT', 'body'],
    ['an over-long body', () => [SEND_MESSAGE, { sessionId: fixture.sessionId, body: 'x'.repeat(MAX_MESSAGE_BODY_LENGTH + 1) }], 'BAD_USER_INPUT', 'body'],
    ['a NUL character', () => [SEND_MESSAGE, { sessionId: fixture.sessionId, body: 'a\u0000b' }], 'BAD_USER_INPUT', 'body'],
    ['a malformed session id', () => [SEND_MESSAGE, { sessionId: 'not-an-id', body: 'hi' }], 'BAD_USER_INPUT', 'sessionId'],
    ['an unknown session id', () => [SEND_MESSAGE, { sessionId: NO_SUCH_ID, body: 'hi' }], 'NOT_FOUND'],
    ['a malformed agent id', () => [SWITCH_AGENT, { projectId: fixture.projectId, agentId: "1' or '1'='1" }], 'BAD_USER_INPUT', 'agentId'],
    ['an unknown agent id', () => [SWITCH_AGENT, { projectId: fixture.projectId, agentId: NO_SUCH_ID }], 'NOT_FOUND'],
    ["another project's agent", () => [SWITCH_AGENT, { projectId: fixture.projectId, agentId: otherProject.agentIds[0] }], 'NOT_FOUND'],
    ['a malformed project id', () => [SWITCH_AGENT, { projectId: '42', agentId: fixture.agentIds[0] }], 'BAD_USER_INPUT', 'projectId'],
    ['a blank project name', () => ['mutation { createProject(input: { name: "  " }) { id } }', {}], 'BAD_USER_INPUT', 'name'],
    ['an over-long session title', () => ['mutation($p: ID!, $t: String!) { createChatSession(input: { projectId: $p, title: $t }) { id } }', { p: fixture.projectId, t: 'x'.repeat(201) }], 'BAD_USER_INPUT', 'title'],
    ['a duplicate agent name', () => ['mutation($p: ID!) { createAgent(input: { projectId: $p, name: "Planner" }) { id } }', { p: fixture.projectId }], 'CONFLICT'],
    ['an existing member', () => ['mutation($p: ID!) { addProjectMember(input: { projectId: $p, userId: "alice" }) { userId } }', { p: fixture.projectId }], 'CONFLICT'],
    ['a wrongly typed variable', () => [SEND_MESSAGE, { sessionId: fixture.sessionId, body: 42 }], 'BAD_USER_INPUT'],
  ];

  it.each(cases)('%s', async (_name, build, code, field) => {
    const before = await snapshot();
    const [query, variables] = build();
    const result = await t.gql(query, variables, { as: 'alice' });
    expect(result.status).toBeLessThan(500);
    expect(errorCode(result)).toBe(code);
    if (field) expect(result.errors?.[0]?.extensions?.field).toBe(field);
    expect(JSON.stringify(result.errors)).not.toMatch(/at .*\.ts:\d+|stack|select |insert /i);
    expect(await snapshot()).toEqual(before);
  });
});

describe('pagination arguments', () => {
  const page = 'query($id: ID!, $first: Int, $after: String) { chatSession(id: $id) { messages(first: $first, after: $after) { nodes { body } pageInfo { hasNextPage endCursor } } } }';

  it.each([[101], [-1], [1000]])('rejects first: %d', async (first) => {
    const result = await t.gql(page, { id: fixture.sessionId, first }, { as: 'alice' });
    expect(result.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'first' } });
  });

  it('rejects a cursor that is not one of ours', async () => {
    const result = await t.gql(page, { id: fixture.sessionId, after: 'bm9wZQ' }, { as: 'alice' });
    expect(result.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'after' } });
  });

  it('walks every message once, in order, page by page', async () => {
    const { sessionId } = await createProjectFixture(t, 'alice');
    for (let i = 0; i < 7; i++) await t.gql(SEND_MESSAGE, { sessionId, body: `m${i}` }, { as: 'alice' });
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const result: GqlResult<any> = await t.gql(page, { id: sessionId, first: 3, after }, { as: "alice" });
      const messages: any = result.data.chatSession.messages;
      seen.push(...messages.nodes.map((m: { body: string }) => m.body));
      if (!messages.pageInfo.hasNextPage) break;
      after = messages.pageInfo.endCursor;
    }
    expect(seen).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
  });
});
