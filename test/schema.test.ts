import { readFileSync } from 'node:fs';
import { verifyAgentCredential } from '../src/domain/agents/agent-credential.service.ts';
import { execute, parse, printSchema } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenService } from '../src/platform/auth/token.ts';
import { sendMessage } from '../src/domain/chat/chat.service.ts';
import { createOrm, forkEm, type Orm } from '../src/platform/db/orm.ts';
import { createContextFactory } from '../src/platform/graphql/context.ts';
import { createLogger } from '../src/platform/logger.ts';
import { createMetrics } from '../src/platform/observability/metrics.ts';
import { createEventStreams } from '../src/subscriptions/event-subscription.service.ts';
import { createMemoryBus } from '../src/bus/event-bus.ts';
import { schema } from '../src/schema.ts';
import { createChatSession } from '../src/domain/chat/chat.service.ts';
import { addProjectMember, createProject } from '../src/domain/projects/project.service.ts';
import { createTestDatabase, type TestDatabase } from './support/app.ts';

describe('schema.graphql', () => {
  it('matches the schema built from the code (run `npm run schema:print` if this fails)', () => {
    const committed = readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8');
    expect(committed).toBe(`${printSchema(schema)}\n`);
  });
});

describe('DataLoader batching', () => {
  let db: TestDatabase;
  let orm: Orm;
  let queries: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    orm = await createOrm({ kind: 'postgresql', url: db.url }, { debug: ['query'], logger: (line) => queries.push(line) });
  });
  afterAll(async () => {
    await orm?.close(true);
    await db?.drop();
  });

  async function queriesForSessionWith(messageCount: number) {
    const em = forkEm(orm);
    const project = await createProject(em, 'alice', { name: 'p' });
    for (const user of ['bob', 'carol']) await addProjectMember(em, 'alice', { projectId: project.id, userId: user });
    const session = await createChatSession(em, 'alice', { projectId: project.id, title: 's' });
    const authors = ['alice', 'bob', 'carol'];
    for (let i = 0; i < messageCount; i++) await sendMessage(forkEm(orm), authors[i % 3]!, { sessionId: session.id, body: `m${i}` });

    const tokens = createTokenService({ secret: 'x'.repeat(32), issuer: 'test' });
    const events = createEventStreams({ orm, bus: createMemoryBus(), options: { bufferSize: 10, authRecheckMs: 0, keepAliveMs: 0, writeTimeoutMs: 0 } });
    const contextValue = await createContextFactory({ orm, tokens, events, metrics: createMetrics(), verifyAgentCredential, publishActivity: () => {} })(`Bearer ${await tokens.sign('alice')}`, createLogger({ level: 'silent', pretty: false }));
    queries = [];
    const result = await execute({
      schema,
      contextValue,
      document: parse(`query($id: ID!) { chatSession(id: $id) { messages(first: 100) {
        nodes { body session { title project { name } } authorMembership { userId role } } } } }`),
      variableValues: { id: session.id },
    });
    expect(result.errors).toBeUndefined();
    expect((result.data as any).chatSession.messages.nodes).toHaveLength(messageCount);
    return queries.filter((line) => /select/i.test(line)).length;
  }

  it('loads sessions, projects and memberships for a page of messages in a constant number of queries', async () => {
    const few = await queriesForSessionWith(3);
    const many = await queriesForSessionWith(30);
    expect(many).toBe(few);
    expect(few).toBeLessThanOrEqual(8);
  });
});
