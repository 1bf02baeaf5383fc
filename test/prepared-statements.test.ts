import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listProjectEvents, listSessionEvents } from '../src/domain/analytics/analytics.service.ts';
import { createChatSession, sendMessage } from '../src/domain/chat/chat.service.ts';
import { createProject, requireMembership } from '../src/domain/projects/project.service.ts';
import { createOrm, forkEm, type Orm } from '../src/platform/db/orm.ts';
import { createTestDatabase, type TestDatabase } from './support/app.ts';
import { recordPoolQueries } from './support/pool-spy.ts';
import { until } from './support/until.ts';

// sendMessage's statement, history pages and membership checks run as named prepared statements (DB_PREPARED_STATEMENTS):
// PostgreSQL parses and plans them once per connection. Behind a pooler that cannot keep them the
// setting turns them off; inside a transaction they run on the transaction's own connection.

let db: TestDatabase;
const orms: Orm[] = [];
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  for (const orm of orms) await orm.close(true);
  await db?.drop();
});

/** An ORM whose pool records the name of every named statement it is asked to run. */
async function recordingOrm(preparedStatements: boolean) {
  const orm = await createOrm({ kind: 'postgresql', url: db.url, preparedStatements });
  orms.push(orm);
  const { recorded: names } = await recordPoolQueries(orm, (query) => query.name ?? null);
  return { orm, names };
}

/** Every read the test makes, with what it returned. */
async function readAll(orm: Orm, projectId: string, sessionId: string) {
  const project = await listProjectEvents(forkEm(orm), 'alice', { projectId, first: 2 });
  const after = project.cursorOf(project.items[0]!);
  const next = await listProjectEvents(forkEm(orm), 'alice', { projectId, first: 2, after });
  const session = await listSessionEvents(forkEm(orm), 'alice', { projectId, sessionId, first: 2 });
  const role = await requireMembership(forkEm(orm), 'alice', projectId);
  return [project.items, next.items, session.items, role];
}

describe('prepared statements', () => {
  let projectId: string;
  let sessionId: string;
  beforeAll(async () => {
    const orm = await createOrm({ kind: 'postgresql', url: db.url });
    orms.push(orm);
    projectId = (await createProject(forkEm(orm), 'alice', { name: 'Prepared' })).id;
    sessionId = (await createChatSession(forkEm(orm), 'alice', { projectId, title: 'Talk' })).id;
    for (const body of ['one', 'two', 'three']) await sendMessage(forkEm(orm), 'alice', { sessionId, body });
    // Project pages list what committed below the oldest running transaction (of the whole server).
    await until(async () => (await listProjectEvents(forkEm(orm), 'alice', { projectId, first: 3 })).items.length === 3, 60_000);
  }, 70_000);

  it('runs history pages and membership checks as named statements, with the same answers as without', async () => {
    const prepared = await recordingOrm(true);
    const plain = await recordingOrm(false);
    const answers = await readAll(prepared.orm, projectId, sessionId);
    // Twice: the second run reuses the statements the first prepared.
    expect(await readAll(prepared.orm, projectId, sessionId)).toEqual(answers);
    expect(await readAll(plain.orm, projectId, sessionId)).toEqual(answers);
    expect(answers[0]).toHaveLength(2);
    // Per run, eight statements of five texts: four membership checks, a first project page, a page
    // after a cursor, the session's project check and the session page.
    expect(new Set(prepared.names).size).toBe(5);
    expect(prepared.names).toHaveLength(2 * 8);
    expect(plain.names).toEqual([]);
  });

  it("runs sendMessage's statement, which stands alone, as a named statement", async () => {
    const prepared = await recordingOrm(true);
    const plain = await recordingOrm(false);
    const first = await sendMessage(forkEm(prepared.orm), 'alice', { sessionId, body: 'prepared' });
    await sendMessage(forkEm(prepared.orm), 'alice', { sessionId, body: 'prepared again' });
    const unprepared = await sendMessage(forkEm(plain.orm), 'alice', { sessionId, body: 'plain' });
    expect(unprepared.event.sequence).toBe(first.event.sequence + 2);
    expect(prepared.names).toHaveLength(2);
    expect(new Set(prepared.names).size).toBe(1);
    expect(plain.names).toEqual([]);
  });

  it('does not prepare inside a transaction, where the statement must run on its connection', async () => {
    const { orm, names } = await recordingOrm(true);
    const before = names.length;
    await forkEm(orm).transactional(async (tx) => {
      await requireMembership(tx, 'alice', projectId);
      await listSessionEvents(tx, 'alice', { projectId, sessionId, first: 2 });
    });
    expect(names.length).toBe(before);
  });
});
