import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessageSchema } from '../src/domain/chat/message.entity.ts';
import { cursorCodec, cursorKeys, findPage, keysetOrder, keysetWhere } from '../src/platform/db/pagination.ts';
import { errorCode, startTestAppWithClient, type TestApp } from './support/app.ts';
import { eventually } from './support/analytics.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';

// A chat screen opens on a session's latest messages and scrolls back: `last`/`before` on a
// session of thousands of messages, many of them sharing a timestamp (ties are broken by id).

const MESSAGE_COUNT = 3_000;

const MESSAGES = `
  query($sessionId: ID!, $first: Int, $after: String, $last: Int, $before: String) {
    chatSession(id: $sessionId) {
      messages(first: $first, after: $after, last: $last, before: $before) {
        nodes { id body }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      }
    }
  }`;

interface MessagePage {
  nodes: { id: string; body: string }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
}

let t: TestApp;
let db: pg.Client;
let sessionId: string;
/** Every message id in (created at, id) order, as stored. */
let stored: string[];

async function messages(args: { first?: number; after?: string | null; last?: number; before?: string | null }, as = 'alice') {
  const result = await t.gql<{ chatSession: { messages: MessagePage } }>(MESSAGES, { sessionId, ...args }, { as });
  return { result, page: result.data?.chatSession?.messages };
}

beforeAll(async () => {
  ({ t, db } = await startTestAppWithClient());
  const fixture = await createProjectFixture(t, 'alice', ['bob']);
  sessionId = fixture.sessionId;
  // Seeded in one statement: the write path is tested elsewhere, and 3,000 requests would only
  // slow this file down. Three messages share each millisecond, so ties are ordered by id.
  await db.query(
    `insert into message (id, session_id, project_id, author_user_id, role, body, created_at)
     select gen_random_uuid(), $1, $2, 'alice', 'user', 'message ' || n,
            timestamptz '2026-01-01T00:00:00Z' + ((n / 3) * interval '1 millisecond')
     from generate_series(1, $3::int) as n`,
    [sessionId, fixture.projectId, MESSAGE_COUNT],
  );
  // One more through the API: the newest, as a client would have sent it.
  await t.gql(SEND_MESSAGE, { sessionId, body: 'the latest' }, { as: 'alice' });
  await db.query('analyze message');
  stored = (await db.query<{ id: string }>('select id from message where session_id = $1 order by created_at, id', [sessionId])).rows.map((row) => row.id);
});
afterAll(async () => {
  await t?.stop();
});

describe('reading a long session backward', () => {
  it('opens on the latest messages, oldest of them first', async () => {
    const { page } = await messages({ last: 20 });
    expect(page!.nodes.map((node) => node.id)).toEqual(stored.slice(-20));
    expect(page!.nodes.at(-1)!.body).toBe('the latest');
    expect(page!.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: false });
  });

  it('scrolls back through every message, each once, in order', async () => {
    const seen: string[] = [];
    let before: string | null = null;
    let pages = 0;
    for (;;) {
      const { result, page } = await messages({ last: 100, before });
      expect(result.errors).toBeUndefined();
      seen.unshift(...page!.nodes.map((node) => node.id));
      pages += 1;
      // A page read from a cursor knows the newer messages are there.
      if (before) expect(page!.pageInfo.hasNextPage).toBe(true);
      if (!page!.pageInfo.hasPreviousPage) break;
      before = page!.pageInfo.startCursor;
    }
    expect(pages).toBe(Math.ceil((MESSAGE_COUNT + 1) / 100));
    expect(seen).toEqual(stored);
  });

  it('reads forward and backward from the same cursor without overlap or gap', async () => {
    const middle = await messages({ first: 50 });
    const cursor = middle.page!.pageInfo.endCursor!;
    const newer = await messages({ first: 30, after: cursor });
    const older = await messages({ last: 30, before: newer.page!.pageInfo.startCursor });
    expect(older.page!.nodes.map((node) => node.id)).toEqual(stored.slice(20, 50));
    expect(newer.page!.nodes.map((node) => node.id)).toEqual(stored.slice(50, 80));
    expect(newer.page!.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: true });
    expect(middle.page!.pageInfo).toMatchObject({ hasPreviousPage: false, hasNextPage: true });
  });

  it('says nothing precedes the oldest message and nothing follows the newest', async () => {
    const oldest = await messages({ first: 1 });
    const beforeOldest = await messages({ last: 5, before: oldest.page!.pageInfo.startCursor });
    expect(beforeOldest.page).toMatchObject({ nodes: [], pageInfo: { hasPreviousPage: false, hasNextPage: true, startCursor: null, endCursor: null } });
    const newest = await messages({ last: 1 });
    const afterNewest = await messages({ first: 5, after: newest.page!.pageInfo.endCursor });
    expect(afterNewest.page).toMatchObject({ nodes: [], pageInfo: { hasPreviousPage: true, hasNextPage: false } });
  });

  it('refuses to mix the directions, and bad page sizes, as BAD_USER_INPUT', async () => {
    const mixed = await messages({ first: 10, last: 10 });
    expect(mixed.result.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'last' });
    const crossed = await messages({ after: (await messages({ first: 1 })).page!.pageInfo.endCursor, last: 5 });
    expect(errorCode(crossed.result)).toBe('BAD_USER_INPUT');
    for (const last of [-1, 101]) {
      const result = (await messages({ last })).result;
      expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'last' });
    }
  });

  it('gives non-members NOT_FOUND, whichever way they read', async () => {
    expect(errorCode((await messages({ last: 5 }, 'mallory')).result)).toBe('NOT_FOUND');
  });

  it('reads through the (session, created at, id) index in both directions, seeking to the cursor', async () => {
    const em = t.app.orm.em.fork();
    const middle = stored[1_500]!;
    const row = (await db.query<{ created_at: Date }>('select created_at from message where id = $1', [middle])).rows[0]!;
    const position: [Date, string] = [row.created_at, middle];
    for (const backward of [false, true]) {
      const query = em
        .createQueryBuilder(MessageSchema)
        .select('*')
        .where({ session: sessionId, ...keysetWhere(position, backward) })
        .orderBy(keysetOrder(backward))
        .limit(101)
        .getFormattedQuery();
      const plan = JSON.stringify((await db.query(`explain (format json) ${query}`)).rows[0]['QUERY PLAN']);
      expect(plan, `${backward ? 'backward' : 'forward'}: ${plan}`).toContain('"Index Name":"message_session_id_created_at_idx"');
      expect(plan).toContain(`"Scan Direction":"${backward ? 'Backward' : 'Forward'}"`);
      expect(plan).not.toContain('"Node Type":"Sort"');
      // The seek: the cursor's timestamp bounds the index scan, not only a filter on its rows.
      expect(plan).toMatch(/"Index Cond":"[^"]*created_at/);
    }
  });
});

describe('reading event histories backward', () => {
  const HISTORY = (field: 'sessionEventHistory' | 'projectEventHistory') => `
    query($projectId: ID!, $sessionId: ID!, $first: Int, $after: String, $last: Int, $before: String) {
      ${field}(projectId: $projectId, ${field === 'sessionEventHistory' ? 'sessionId: $sessionId' : 'filter: { sessionId: $sessionId }'}, first: $first, after: $after, last: $last, before: $before) {
        nodes { eventId sequence }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      }
    }`;
  let projectId: string;
  let historySession: string;

  async function history(field: 'sessionEventHistory' | 'projectEventHistory', args: Record<string, unknown>) {
    const result = await t.gql<any>(HISTORY(field), { projectId, sessionId: historySession, ...args }, { as: 'alice' });
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    return result.data[field] as { nodes: { eventId: string; sequence: number }[]; pageInfo: MessagePage['pageInfo'] };
  }

  async function walkBackward(field: 'sessionEventHistory' | 'projectEventHistory', size: number) {
    const seen: number[] = [];
    let before: string | null = null;
    for (;;) {
      const page = await history(field, { last: size, before });
      seen.unshift(...page.nodes.map((node) => node.sequence));
      if (!page.pageInfo.hasPreviousPage) return seen;
      before = page.pageInfo.startCursor;
    }
  }

  beforeAll(async () => {
    const fixture = await createProjectFixture(t, 'alice');
    projectId = fixture.projectId;
    historySession = fixture.sessionId;
    for (let i = 1; i <= 25; i++) await t.gql(SEND_MESSAGE, { sessionId: historySession, body: `event ${i}` }, { as: 'alice' });
  });

  it('sessionEventHistory: the last page is the newest events, and walking back visits each once', async () => {
    const all = Array.from({ length: 25 }, (_, i) => i + 1);
    const latest = await history('sessionEventHistory', { last: 5 });
    expect(latest.nodes.map((node) => node.sequence)).toEqual([21, 22, 23, 24, 25]);
    expect(latest.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: false });
    expect(await walkBackward('sessionEventHistory', 7)).toEqual(all);
  });

  it('projectEventHistory (newest first): backward reads toward the newest, in the same order', async () => {
    // Analytics list an event once every older transaction has finished, cluster-wide.
    const forward = await eventually(async () => {
      const page = await history('projectEventHistory', { first: 100 });
      if (page.nodes.length < 25) throw new Error(`only ${page.nodes.length} events listed yet`);
      return page.nodes.map((node) => node.sequence);
    });
    expect(forward).toEqual(Array.from({ length: 25 }, (_, i) => 25 - i));
    const oldest = await history('projectEventHistory', { last: 3 });
    expect(oldest.nodes.map((node) => node.sequence)).toEqual([3, 2, 1]);
    expect(await walkBackward('projectEventHistory', 4)).toEqual(forward);
  });
});

describe('findPage', () => {
  // The far side of a cursor costs a query; a client paging forward rarely asks for it.
  it('reads the far side of the cursor only when hasPreviousPage (or hasNextPage backward) is asked', async () => {
    const rows = Array.from({ length: 10 }, (_, i) => ({ n: i + 1 }));
    const reads: { backward: boolean; limit: number }[] = [];
    const source = {
      cursor: cursorCodec([cursorKeys.position]),
      keyOf: (row: { n: number }): [number] => [row.n],
      fetch: async ({ from, backward, limit }: { from: [number] | null; backward: boolean; limit: number }) => {
        reads.push({ backward, limit });
        const beyond = rows.filter((row) => from === null || (backward ? row.n < from[0] : row.n > from[0]));
        return (backward ? beyond.reverse() : beyond).slice(0, limit);
      },
    };
    const after = source.cursor.encode([4]);

    const forward = await findPage({ first: 3, after }, source);
    expect(forward.items.map((row) => row.n)).toEqual([5, 6, 7]);
    expect(await forward.hasNextPage()).toBe(true);
    expect(reads).toEqual([{ backward: false, limit: 4 }]);
    expect(await forward.hasPreviousPage()).toBe(true);
    expect(await forward.hasPreviousPage()).toBe(true);
    expect(reads).toEqual([{ backward: false, limit: 4 }, { backward: true, limit: 1 }]);

    reads.length = 0;
    const backward = await findPage({ last: 3, before: source.cursor.encode([2]) }, source);
    expect(backward.items.map((row) => row.n)).toEqual([1]);
    expect(await backward.hasPreviousPage()).toBe(false);
    expect(reads).toHaveLength(1);
    expect(await backward.hasNextPage()).toBe(true);
    expect(reads).toHaveLength(2);

    reads.length = 0;
    const first = await findPage({ first: 20 }, source);
    expect([await first.hasNextPage(), await first.hasPreviousPage()]).toEqual([false, false]);
    expect(reads).toHaveLength(1);
  });
});
