import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messageCreated } from '../src/events/domain-event.ts';
import { recordEvent } from '../src/outbox/outbox.writer.ts';
import { forkEm } from '../src/platform/db/orm.ts';
import { createLogger } from '../src/platform/logger.ts';
import {
  logBatchClaimed,
  logFailed,
  logPublished,
  logPublisherStarted,
  logPublisherStopped,
  logReprocessed,
  logRetryScheduled,
} from '../src/outbox/outbox.log.ts';
import { startTestAppWithClient, type TestApp } from './support/app.ts';
import { whileInsertsFail } from './support/database.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { captureLogs } from './support/observability.ts';

const logs = captureLogs('debug');
let t: TestApp;
let db: pg.Client;

beforeAll(async () => {
  ({ t, db } = await startTestAppWithClient({}, { logger: logs.logger }));
});
afterAll(() => t?.stop());

const requestLines = () => logs.records().filter((line) => line.msg === 'request completed' || line.msg === 'request failed');

describe('request logs', () => {
  it('give every request an id, echo it in x-request-id, and log one line with the operation', async () => {
    const token = await t.token('dave');
    const response = await fetch(t.app.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: 'query WhoAmI { viewer { userId } }' }),
    });
    expect(response.status).toBe(200);
    const requestId = response.headers.get('x-request-id');
    expect(requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

    const line = requestLines().find((record) => record.requestId === requestId);
    expect(line).toMatchObject({
      level: 30,
      service: 'chat-outbox',
      method: 'POST',
      path: '/graphql',
      status: 200,
      operationName: 'WhoAmI',
      operationType: 'query',
      outcome: 'success',
    });
    expect(line!.durationMs).toBeTypeOf('number');
  });

  it("keep a caller's sane x-request-id and replace one that is not", async () => {
    const sane = await fetch(`${t.app.url}/health/live`, { headers: { 'x-request-id': 'edge-7f3a:42' } });
    expect(sane.headers.get('x-request-id')).toBe('edge-7f3a:42');
    for (const bad of ['has spaces', 'x'.repeat(200), 'quote"and{brace}']) {
      const response = await fetch(`${t.app.url}/health/live`, { headers: { 'x-request-id': bad } });
      expect(response.headers.get('x-request-id')).not.toBe(bad);
      expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it('log probes and scrapes at debug only', async () => {
    const response = await fetch(`${t.app.url}/health/live`);
    const requestId = response.headers.get('x-request-id');
    expect(requestLines().find((line) => line.requestId === requestId)).toMatchObject({ level: 20, path: '/health/live' });
  });

  it('log the unexpected error with the request id, and a client mistake not as an error', async () => {
    const { sessionId } = await createProjectFixture(t, 'erin');
    const token = await t.token('erin');
    const response = await whileInsertsFail(db, 'message', () =>
      fetch(t.app.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: SEND_MESSAGE, variables: { sessionId, body: 'unlucky message' } }),
      }),
    );
    const requestId = response.headers.get('x-request-id');
    const forRequest = logs.records().filter((line) => line.requestId === requestId);
    expect(forRequest.find((line) => line.level === 50)).toMatchObject({
      msg: 'unexpected error while handling a GraphQL request',
      err: { message: expect.stringContaining('injected failure'), path: 'sendMessage' },
    });
    expect(forRequest.find((line) => line.msg === 'request failed')).toMatchObject({ level: 40, outcome: 'server_error' });

    const missing = await fetch(t.app.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: '{ project(id: "00000000-0000-4000-8000-000000000000") { id } }' }),
    });
    const missingId = missing.headers.get('x-request-id');
    const missingLines = logs.records().filter((line) => line.requestId === missingId);
    expect(missingLines.find((line) => line.msg === 'request completed')).toMatchObject({ level: 30, outcome: 'client_error' });
    expect(missingLines.filter((line) => line.level >= 50)).toEqual([]);
  });

  it('never contain a message body, a variable or a token, whichever way they arrive', async () => {
    const { sessionId } = await createProjectFixture(t, 'frank');
    const token = await t.token('frank');
    const body = 'BODY-7e1c-do-not-log';
    const auth = { authorization: `Bearer ${token}` };

    // POST with variables, GET with the variables in the query string, and a failing write whose
    // database error would name the row.
    await t.gql(SEND_MESSAGE, { sessionId, body: `${body} (post)` }, { as: 'frank' });
    const query = encodeURIComponent('query Read($id: ID!) { chatSession(id: $id) { messages { nodes { body } } } }');
    const variables = encodeURIComponent(JSON.stringify({ id: sessionId, note: `${body} (get)` }));
    // A GET needs the CSRF prevention header, as any real client's GET sends it.
    const get = await fetch(`${t.app.graphqlUrl}?query=${query}&variables=${variables}`, { headers: { ...auth, accept: 'application/json', 'x-graphql-yoga-csrf': '1' } });
    expect(JSON.stringify(await get.json())).toContain(`${body} (post)`);
    await db.query(`alter table message add constraint no_secrets check (body not like '%do-not-log%') not valid`);
    try {
      await fetch(t.app.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify({ query: SEND_MESSAGE, variables: { sessionId, body: `${body} (rejected)` } }),
      });
    } finally {
      await db.query('alter table message drop constraint no_secrets');
    }

    const text = logs.text();
    expect(text).toContain('no_secrets'); // the failure was logged...
    expect(text).not.toContain('do-not-log'); // ...without the row it names
    expect(text).not.toContain(token);
    expect(text).not.toMatch(/Bearer/);
    expect(text).not.toContain('variables=');
  });

  it('redact body, token and payload fields should any code pass them', () => {
    const captured = captureLogs('info');
    captured.logger.info(
      { body: 'b1', token: 't1', payload: { body: 'b2' }, message: { body: 'b3' }, headers: { authorization: 'Bearer t2' } },
      'careless line',
    );
    expect(captured.text()).not.toMatch(/b1|b2|b3|t1|t2/);
  });
});

describe('outbox lifecycle log records', () => {
  it('carry eventId, event type, project and attempts, and never the payload', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'gina');
    const em = forkEm(t.app.orm);
    const event = await em.transactional((tx) =>
      recordEvent(
        tx,
        messageCreated(projectId, {
          messageId: crypto.randomUUID(),
          sessionId,
          authorUserId: 'gina',
          role: 'user',
          body: 'PAYLOAD-SECRET-9',
          createdAt: new Date().toISOString(),
        }),
      ),
    );
    // The stored row, whole (payload included), as the publisher and reprocessing hand it to the log.
    // (The app's publisher may be claiming it meanwhile: each call below sets the attempts it logs.)
    const row = (await db.query('select * from event_outbox where id = $1', [event.id])).rows[0];
    const captured = captureLogs('debug');
    const log = captured.logger;
    logPublisherStarted(log, { batchSize: 100, pollIntervalMs: 1000 });
    logBatchClaimed(log, { count: 1, eventIds: [event.id] });
    logPublished(log, { ...row, attempts: 0 }, { latencyMs: 12 });
    logRetryScheduled(log, { ...row, attempts: 1 }, { delayMs: 2000, error: new Error('bus unreachable'), nextRetryAt: new Date('2026-11-23T10:00:02Z') });
    logFailed(log, { ...row, attempts: 10 }, { error: new Error('bus unreachable') });
    logReprocessed(log, { ...row, attempts: 10 }, { by: 'mutation', userId: 'gina' });
    logPublisherStopped(log, { reason: 'SIGTERM' });

    const records = captured.records();
    expect(records.map((line) => line.outbox)).toEqual([
      'publisher_started',
      'batch_claimed',
      'published',
      'retry_scheduled',
      'failed',
      'reprocessed',
      'publisher_stopped',
    ]);
    const identity = { eventId: event.id, eventType: 'message_created', projectId, aggregateId: sessionId, sequence: event.sequence };
    expect(records[2]).toMatchObject({ ...identity, attempts: 0, latencyMs: 12, level: 20 });
    expect(records[3]).toMatchObject({ ...identity, attempts: 1, delayMs: 2000, nextRetryAt: '2026-11-23T10:00:02.000Z', level: 40, err: { message: 'bus unreachable' } });
    expect(records[4]).toMatchObject({ ...identity, attempts: 10, level: 50, err: { message: 'bus unreachable' } });
    expect(records[5]).toMatchObject({ ...identity, attempts: 10, by: 'mutation', userId: 'gina', level: 30 });
    expect(captured.text()).not.toContain('PAYLOAD-SECRET-9');
  });

  it('skip per-event debug lines when the level is higher', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', pretty: false, destination: { write: (line: string) => void lines.push(line) } });
    const event = { id: 'e1', event_type: 'agent_switched' as const, project_id: 'p1', attempts: 0 };
    logBatchClaimed(logger, { count: 1 });
    logPublished(logger, event);
    logReprocessed(logger, event, { by: 'cli' });
    expect(lines).toHaveLength(1);
  });
});
