import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, type TestApp } from './support/app.ts';
import { connect } from './support/database.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';

// Relay refetches any object by `node(id:)`: the ids are the objects' own UUIDs, and what a viewer
// may not see through the type's own query is NOT_FOUND here too.

const NODE = `
  query($id: ID!) {
    node(id: $id) {
      __typename id
      ... on Project { name }
      ... on ChatSession { title }
      ... on Message { body }
      ... on Agent { name }
      ... on WorkerSpace { userId }
    }
  }`;

const NODES = `query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }`;

let t: TestApp;
let ids: { project: string; session: string; message: string; agent: string; aliceSpace: string; bobSpace: string };

beforeAll(async () => {
  t = await startTestApp();
  const fixture = await createProjectFixture(t, 'alice', ['bob']);
  const sent = await t.gql<any>(SEND_MESSAGE, { sessionId: fixture.sessionId, body: 'hello' }, { as: 'alice' });
  const space = (as: string) => t.gql<any>('query($p: ID!) { workerSpace(projectId: $p) { id } }', { p: fixture.projectId }, { as });
  ids = {
    project: fixture.projectId,
    session: fixture.sessionId,
    message: sent.data.sendMessage.message.id,
    agent: fixture.agentIds[0],
    aliceSpace: (await space('alice')).data.workerSpace.id,
    bobSpace: (await space('bob')).data.workerSpace.id,
  };
});
afterAll(async () => {
  await t?.stop();
});

describe('node(id:)', () => {
  it('refetches each type by the id clients already have', async () => {
    const expected = [
      [ids.project, 'Project', { name: 'Project of alice' }],
      [ids.session, 'ChatSession', { title: 'General' }],
      [ids.message, 'Message', { body: 'hello' }],
      [ids.agent, 'Agent', { name: 'Planner' }],
      [ids.aliceSpace, 'WorkerSpace', { userId: 'alice' }],
    ] as const;
    for (const [id, typename, fields] of expected) {
      const result = await t.gql<any>(NODE, { id }, { as: 'alice' });
      expect(result.errors).toBeUndefined();
      expect(result.data.node).toEqual({ __typename: typename, id, ...fields });
    }
  });

  it('is NOT_FOUND for what the viewer may not see, as for an id that exists nowhere', async () => {
    for (const id of [ids.project, ids.session, ids.message, ids.agent, ids.aliceSpace]) {
      const result = await t.gql<any>(NODE, { id }, { as: 'mallory' });
      expect(errorCode(result), id).toBe('NOT_FOUND');
      expect(result.data?.node ?? null).toBeNull();
    }
    // A member sees the project, but only their own worker space, as with workerSpace(projectId).
    expect(errorCode(await t.gql(NODE, { id: ids.aliceSpace }, { as: 'bob' }))).toBe('NOT_FOUND');
    expect((await t.gql<any>(NODE, { id: ids.bobSpace }, { as: 'bob' })).data.node.__typename).toBe('WorkerSpace');
    expect(errorCode(await t.gql(NODE, { id: crypto.randomUUID() }, { as: 'alice' }))).toBe('NOT_FOUND');
  });

  it('answers a malformed id with BAD_USER_INPUT and no token with UNAUTHENTICATED', async () => {
    const malformed = await t.gql<any>(NODE, { id: 'UHJvamVjdDox' }, { as: 'alice' });
    expect(malformed.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'id' });
    expect(malformed.status).toBeLessThan(500);
    expect(errorCode(await t.gql(NODE, { id: ids.project }))).toBe('UNAUTHENTICATED');
  });

  it('sees a membership that ends', async () => {
    const other = await createProjectFixture(t, 'carol', ['dave']);
    expect((await t.gql<any>(NODE, { id: other.sessionId }, { as: 'dave' })).data.node.__typename).toBe('ChatSession');
    // No mutation removes a member; take the row away as an owner's tool would.
    const db = await connect(t.db.url);
    try {
      await db.query('delete from project_member where project_id = $1 and user_id = $2', [other.projectId, 'dave']);
    } finally {
      await db.end();
    }
    expect(errorCode(await t.gql(NODE, { id: other.sessionId }, { as: 'dave' }))).toBe('NOT_FOUND');
  });
});

describe('nodes(ids:)', () => {
  it('returns the objects in the order asked, null with a NOT_FOUND error where the viewer may not look', async () => {
    const unknown = crypto.randomUUID();
    const result = await t.gql<any>(NODES, { ids: [ids.message, unknown, ids.project, ids.bobSpace, ids.message] }, { as: 'alice' });
    expect(result.data.nodes).toEqual([
      { __typename: 'Message', id: ids.message },
      null,
      { __typename: 'Project', id: ids.project },
      null,
      { __typename: 'Message', id: ids.message },
    ]);
    expect(result.errors?.map((error) => [error.extensions?.code, error.path])).toEqual([
      ['NOT_FOUND', ['nodes', 1]],
      ['NOT_FOUND', ['nodes', 3]],
    ]);
  });

  it('costs its selection once per id asked for', async () => {
    const deep = 'sessions(first: 100) { nodes { id title } }';
    const query = `query($ids: [ID!]!) { nodes(ids: $ids) { ... on Project { ${deep} } } }`;
    expect((await t.gql<any>(query, { ids: [ids.project] }, { as: 'alice' })).errors).toBeUndefined();
    const costly = await t.gql<any>(query, { ids: Array.from({ length: 60 }, () => ids.project) }, { as: 'alice' });
    expect(costly.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'cost' });
  });

  it('refuses more than 100 ids and malformed ids as BAD_USER_INPUT', async () => {
    const tooMany = await t.gql<any>(NODES, { ids: Array.from({ length: 101 }, () => ids.project) }, { as: 'alice' });
    expect(tooMany.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'ids' });
    const malformed = await t.gql<any>(NODES, { ids: [ids.project, 'nope'] }, { as: 'alice' });
    expect(malformed.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'ids' });
  });
});
