import { getNamedType, isObjectType, type GraphQLField } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schema } from '../src/schema.ts';
import { startTestApp, type GqlResult, type TestApp } from './support/app.ts';
import { eventually } from './support/analytics.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';

// Every paginated field of the schema, found by walking it, so a connection added later is covered
// without touching this file: a forged or malformed `after` or `before` is the client's mistake, answered with
// BAD_USER_INPUT (or, where the forged value is still a valid position, with a page), never with an
// INTERNAL_SERVER_ERROR from PostgreSQL.

let t: TestApp;
let fixture: Awaited<ReturnType<typeof createProjectFixture>>;

/** How to reach an object of each type that has connection fields, and values for required arguments. */
const PARENTS: Record<string, (selection: string) => string> = {
  Query: (selection) => selection,
  Project: (selection) => `project(id: $projectId) { ${selection} }`,
  ChatSession: (selection) => `chatSession(id: $sessionId) { ${selection} }`,
};
const argumentValue = (name: string) => (name === 'projectId' || name === 'sessionId' ? `$${name}` : undefined);

/** Which way a query reads: the page size and cursor arguments, and the cursor it returns to continue with. */
const DIRECTIONS = [
  { size: 'first', cursor: 'after', next: 'endCursor' },
  { size: 'last', cursor: 'before', next: 'startCursor' },
] as const;
type Direction = (typeof DIRECTIONS)[number];

interface ConnectionField {
  name: string;
  parent: string;
  direction: Direction;
  query: string;
}

function connectionFields(): ConnectionField[] {
  const found: ConnectionField[] = [];
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields()) as GraphQLField<unknown, unknown>[]) {
      if (!getNamedType(field.type).name.endsWith('Connection') || !field.args.some((arg) => arg.name === 'after')) continue;
      if (!field.args.some((arg) => arg.name === 'before')) throw new Error(`${type.name}.${field.name} cannot be read backward: it has no \`before\``);
      const reach = PARENTS[type.name];
      if (!reach) throw new Error(`${type.name}.${field.name} is a connection on a type this test cannot reach: add ${type.name} to PARENTS`);
      const args = field.args
        .filter((arg) => !['first', 'after', 'last', 'before'].includes(arg.name) && (arg.type.toString().endsWith('!') || argumentValue(arg.name)))
        .map((arg) => {
          const value = argumentValue(arg.name);
          if (!value) throw new Error(`${type.name}.${field.name} has a required argument ${arg.name} this test has no value for`);
          return `${arg.name}: ${value}`;
        });
      for (const direction of DIRECTIONS) {
        const selection = `${field.name}(${[...args, `${direction.size}: 1`, `${direction.cursor}: $cursor`].join(', ')}) { pageInfo { ${direction.next} } }`;
        const body = reach(selection);
        // GraphQL refuses variables an operation does not use: declare only those it does.
        const variables = ['$projectId: ID!', '$sessionId: ID!', '$cursor: String'].filter((declaration) => body.includes(`${declaration.split(':')[0]})`) || body.includes(`${declaration.split(':')[0]},`));
        const query = `query(${variables.join(', ')}) { ${body} }`;
        found.push({ name: `${type.name}.${field.name} (${direction.cursor})`, parent: type.name, direction, query });
      }
    }
  }
  return found;
}

const FIELDS = connectionFields();

async function page(field: ConnectionField, cursor: string | null): Promise<GqlResult<any>> {
  return t.gql(field.query, { projectId: fixture.projectId, sessionId: fixture.sessionId, cursor }, { as: 'alice' });
}

/** The cursor a page gives to continue the same way: its endCursor forward, its startCursor backward. */
const nextCursorOf = (field: ConnectionField, result: GqlResult<any>): string | null => {
  const name = field.name.split('.')[1]!.split(' ')[0]!;
  const parent = field.parent === 'Query' ? result.data : result.data?.[field.parent === 'Project' ? 'project' : 'chatSession'];
  return parent?.[name]?.pageInfo?.[field.direction.next] ?? null;
};

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T/;

/** Cursors no list ever wrote: bad base64, and JSON of every wrong shape. */
const MALFORMED = ['!!!', 'bm9wZQ', '====', b64('{}'), b64('[]'), b64('null'), b64('"x"'), b64('[1,2,3]'), b64('{"s":1,"p":"x"}'), b64('not json')];

/**
 * Forged values for one position value of a real cursor: those that must be refused, given what
 * the real value is, and others that may also be a valid position (a page is then fine too).
 */
function forgeries(real: unknown): { refused: unknown[]; anything: unknown[] } {
  const wrongType = typeof real === 'number' ? ['1', null, true, {}, []] : [1, null, true, {}, []];
  if (typeof real === 'number') return { refused: [...wrongType, -1, 1.5, 1e20, 2_147_483_648, Number.MAX_SAFE_INTEGER + 2], anything: [0, 2_147_483_647] };
  if (typeof real === 'string' && UUID.test(real)) return { refused: [...wrongType, 'not-a-uuid', "1' or '1'='1", '', `${real}x`], anything: [real.toUpperCase()] };
  if (typeof real === 'string' && TIMESTAMP.test(real)) {
    const exact = real.length === '2026-01-01T00:00:00.000000Z'.length;
    const at = (text: string) => (exact ? text.replace(/\.(\d{3})Z$/, '.$1000Z') : text);
    return {
      refused: [...wrongType, 'yesterday', at('9999-99-99T99:99:99.999Z'), '+275760-09-13T00:00:00.000Z', at('2026-02-30T10:00:00.000Z'), at('0000-01-01T00:00:00.000Z'), '2026-01-01'],
      anything: [at('1970-01-01T00:00:00.000Z'), at('9999-12-31T23:59:59.999Z')],
    };
  }
  return { refused: wrongType, anything: ['', 'a\u0000b', 'x'.repeat(1_000), 'not-a-uuid'] };
}

/** Every cursor that can be made from a real one by changing one thing. */
function forgedFrom(cursor: string): { cursor: string; mustRefuse: boolean; what: string }[] {
  const json = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  const out: { cursor: string; mustRefuse: boolean; what: string }[] = [];
  const position: unknown[] = Array.isArray(json) ? json : json.p;
  const rebuild = (p: unknown[], changes: Record<string, unknown> = {}) => b64(Array.isArray(json) ? p : { ...json, p, ...changes });
  position.forEach((real, i) => {
    const { refused, anything } = forgeries(real);
    for (const value of refused) out.push({ cursor: rebuild(position.map((v, j) => (j === i ? value : v))), mustRefuse: true, what: `position[${i}] = ${JSON.stringify(value)}` });
    for (const value of anything) out.push({ cursor: rebuild(position.map((v, j) => (j === i ? value : v))), mustRefuse: false, what: `position[${i}] = ${JSON.stringify(value)}` });
  });
  out.push({ cursor: rebuild(position.slice(1)), mustRefuse: true, what: 'a position too short' });
  out.push({ cursor: rebuild([...position, position[0]]), mustRefuse: true, what: 'a position too long' });
  if (!Array.isArray(json)) {
    out.push({ cursor: b64({ ...json, s: 'another-query' }), mustRefuse: true, what: 'another query' });
    for (const x of json.x === null ? ['1', 5] : [null, 'abc', -1, '1'.repeat(30), '18446744073709551616']) {
      out.push({ cursor: b64({ ...json, x }), mustRefuse: true, what: `pinned = ${JSON.stringify(x)}` });
    }
    out.push({ cursor: b64(position), mustRefuse: true, what: 'the position without its query' });
  } else {
    out.push({ cursor: b64({ s: 'x', p: position, x: null }), mustRefuse: true, what: 'a scoped cursor for an unscoped list' });
  }
  return out;
}

beforeAll(async () => {
  t = await startTestApp();
  fixture = await createProjectFixture(t, 'alice', ['bob']);
  await t.gql(SEND_MESSAGE, { sessionId: fixture.sessionId, body: 'one' }, { as: 'alice' });
  await t.gql(SEND_MESSAGE, { sessionId: fixture.sessionId, body: 'two' }, { as: 'alice' });
});
afterAll(async () => {
  await t?.stop();
});

describe('every paginated field', () => {
  it('is found in the schema', () => {
    const names = ['ChatSession.messages', 'Project.members', 'Project.sessions', 'Project.agents', 'Query.projects'];
    expect(FIELDS.map((field) => field.name)).toEqual(expect.arrayContaining(names.flatMap((name) => [`${name} (after)`, `${name} (before)`])));
  });

  it.each(FIELDS.map((field) => [field.name, field] as const))('%s answers a malformed or forged cursor with BAD_USER_INPUT, never a server error', async (_name, field) => {
    // A real cursor to forge from (events become listable once older transactions have finished).
    const real = await eventually(async () => {
      const cursor = nextCursorOf(field, await page(field, null));
      if (!cursor) throw new Error(`${field.name} returned no cursor`);
      return cursor;
    });
    expect((await page(field, real)).errors).toBeUndefined();

    const cases = [...MALFORMED.map((cursor) => ({ cursor, mustRefuse: true, what: `malformed ${cursor}` })), ...forgedFrom(real)];
    for (const forged of cases) {
      const result = await page(field, forged.cursor);
      const context = `${field.name} ${forged.what}: ${JSON.stringify(result.errors ?? result.data)}`;
      expect(result.status, context).toBeLessThan(500);
      if (result.errors || forged.mustRefuse) {
        expect(result.errors?.map((error) => [error.extensions?.code, error.extensions?.field]), context).toEqual([['BAD_USER_INPUT', field.direction.cursor]]);
      }
    }
  });
});
