import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, type TestApp } from './support/app.ts';
import { createProjectFixture, SEND_MESSAGE, SWITCH_AGENT } from './support/fixtures.ts';

let t: TestApp;
let fixture: Awaited<ReturnType<typeof createProjectFixture>>;

beforeAll(async () => {
  t = await startTestApp();
  fixture = await createProjectFixture(t, 'owner-1', ['member-1']);
  await t.gql(SEND_MESSAGE, { sessionId: fixture.sessionId, body: 'secret plans' }, { as: 'owner-1' });
});
afterAll(() => t?.stop());

describe('a user who is not a member', () => {
  const outsider = { as: 'outsider' };

  it('gets NOT_FOUND for the project, its sessions, messages and worker space', async () => {
    const reads = [
      ['query($id: ID!) { project(id: $id) { id name } }', { id: fixture.projectId }],
      ['query($id: ID!) { chatSession(id: $id) { id messages { nodes { body } } } }', { id: fixture.sessionId }],
      ['query($id: ID!) { workerSpace(projectId: $id) { id } }', { id: fixture.projectId }],
    ] as const;
    for (const [query, variables] of reads) {
      const result = await t.gql(query, variables, outsider);
      expect(errorCode(result), query).toBe('NOT_FOUND');
      expect(JSON.stringify(result)).not.toContain('secret plans');
    }
  });

  it('cannot tell a project it may not see from one that does not exist', async () => {
    const hidden = await t.gql('query($id: ID!) { project(id: $id) { id } }', { id: fixture.projectId }, outsider);
    const missing = await t.gql('query($id: ID!) { project(id: $id) { id } }', { id: '01900000-0000-7000-8000-000000000000' }, outsider);
    expect(hidden.errors?.[0]?.extensions?.code).toBe(missing.errors?.[0]?.extensions?.code);
    expect(hidden.errors?.[0]?.message.replace(fixture.projectId, 'X')).toBe(missing.errors?.[0]?.message.replace('01900000-0000-7000-8000-000000000000', 'X'));
  });

  it('does not see the project in its list', async () => {
    const result = await t.gql('{ projects { nodes { id } } }', {}, outsider);
    expect(result.data.projects.nodes).toEqual([]);
  });

  it('cannot write to the project, and nothing is stored', async () => {
    const writes = [
      [SEND_MESSAGE, { sessionId: fixture.sessionId, body: 'let me in' }],
      [SWITCH_AGENT, { projectId: fixture.projectId, agentId: fixture.agentIds[0] }],
      ['mutation($p: ID!) { createChatSession(input: { projectId: $p, title: "x" }) { id } }', { p: fixture.projectId }],
      ['mutation($p: ID!) { addProjectMember(input: { projectId: $p, userId: "outsider" }) { userId } }', { p: fixture.projectId }],
      ['mutation($p: ID!) { createAgent(input: { projectId: $p, name: "Spy" }) { id } }', { p: fixture.projectId }],
    ] as const;
    for (const [query, variables] of writes) expect(errorCode(await t.gql(query, variables, outsider)), query).toBe('NOT_FOUND');

    const owner = await t.gql(
      'query($id: ID!) { project(id: $id) { members { nodes { userId } } sessions { nodes { id messages { nodes { body } } } } agents { nodes { name } } } }',
      { id: fixture.projectId },
      { as: 'owner-1' },
    );
    expect(owner.data.project.members.nodes.map((m: { userId: string }) => m.userId).sort()).toEqual(['member-1', 'owner-1']);
    expect(owner.data.project.sessions.nodes).toHaveLength(1);
    expect(owner.data.project.sessions.nodes[0].messages.nodes.map((m: { body: string }) => m.body)).toEqual(['secret plans']);
    expect(owner.data.project.agents.nodes.map((a: { name: string }) => a.name)).toEqual(['Planner', 'Coder']);
  });
});

describe('roles', () => {
  it('lets members chat and switch agents but not manage the project', async () => {
    const member = { as: 'member-1' };
    expect((await t.gql(SEND_MESSAGE, { sessionId: fixture.sessionId, body: 'hi' }, member)).errors).toBeUndefined();
    expect((await t.gql(SWITCH_AGENT, { projectId: fixture.projectId, agentId: fixture.agentIds[1] }, member)).errors).toBeUndefined();
    const add = await t.gql('mutation($p: ID!) { addProjectMember(input: { projectId: $p, userId: "x" }) { userId } }', { p: fixture.projectId }, member);
    expect(errorCode(add)).toBe('FORBIDDEN');
    const agent = await t.gql('mutation($p: ID!) { createAgent(input: { projectId: $p, name: "X" }) { id } }', { p: fixture.projectId }, member);
    expect(errorCode(agent)).toBe('FORBIDDEN');
  });

  it("keeps each member's worker space to themselves", async () => {
    const mine = await t.gql('query($p: ID!) { workerSpace(projectId: $p) { userId activeAgent { id } } }', { p: fixture.projectId }, { as: 'member-1' });
    const owners = await t.gql('query($p: ID!) { workerSpace(projectId: $p) { userId activeAgent { id } } }', { p: fixture.projectId }, { as: 'owner-1' });
    expect(mine.data.workerSpace).toEqual({ userId: 'member-1', activeAgent: { id: fixture.agentIds[1] } });
    expect(owners.data.workerSpace.userId).toBe('owner-1');
    expect(owners.data.workerSpace.activeAgent).toBeNull();
  });
});

describe('authentication', () => {
  const query = '{ viewer { userId } }';
  const post = (authorization?: string) =>
    fetch(t.app.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
      body: JSON.stringify({ query }),
    }).then((r) => r.json() as Promise<any>);

  it('knows the viewer from a valid token', async () => {
    expect((await post(`Bearer ${await t.token('someone')}`)).data.viewer.userId).toBe('someone');
  });

  it.each([
    ['no token', undefined],
    ['not a bearer header', 'Basic abc'],
    ['garbage', 'Bearer not.a.jwt'],
    ['a token signed with another secret', 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwiaXNzIjoiY2hhdC1vdXRib3gifQ.2Jt0bq1Ym7s0D7mGmXqY1mB0f3cO8q3xWvY9yq8cQ1A'],
  ])('rejects %s with UNAUTHENTICATED', async (_name, header) => {
    const result = await post(header);
    expect(result.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect(result.data).toBeNull();
  });

  it('rejects an expired token', async () => {
    const expired = await t.app.tokens.sign('someone', { expiresIn: '-1m' });
    const result = await post(`Bearer ${expired}`);
    expect(result.errors[0]).toMatchObject({ message: 'The token has expired', extensions: { code: 'UNAUTHENTICATED' } });
  });
});
