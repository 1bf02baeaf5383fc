import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbOf } from '../src/platform/db/database.ts';
import { forkEm } from '../src/platform/db/orm.ts';
import { expireEvents } from '../src/outbox/sql/expire-events.sql.ts';
import { startTestAppWithClient, type TestApp } from './support/app.ts';
import { PROJECT_EVENTS as PROJECT_HISTORY, SESSION_EVENTS as SESSION_HISTORY } from './support/analytics.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { setDeliveryState } from './support/outbox-seed.ts';
import { SESSION_EVENTS, PROJECT_EVENTS, subscribe } from './support/subscriber.ts';
import { until } from './support/until.ts';

// EVENT_RETENTION_HOURS: what is removed, what never is, and what a client resuming from before
// the window is told. The worker's own schedule is pushed far out; tests run it by hand.

let t: TestApp;
let db: pg.Client;
beforeAll(async () => {
  ({ t, db } = await startTestAppWithClient({
    EVENT_RETENTION_HOURS: '1',
    EVENT_RETENTION_BATCH_SIZE: '2',
    EVENT_RETENTION_INTERVAL_MS: '86400000',
    // Folded by hand: retention must wait for the rollups.
    ANALYTICS_ROLLUP_INTERVAL_MS: '0',
  }));
});
afterAll(async () => {
  await db?.end();
  await t?.stop();
});

const HOUR = 3_600_000;
const send = async (sessionId: string, body: string) => (await t.gql(SEND_MESSAGE, { sessionId, body }, { as: 'alice' })).data.sendMessage;
const sequencesLeft = async (sessionId: string) =>
  (await db.query('select sequence from event_outbox where aggregate_id = $1 order by sequence', [sessionId])).rows.map((row) => row.sequence);
const delivered = (sessionId: string, count: number) =>
  until(async () => Number((await db.query(`select count(*) from outbox_event_status where aggregate_id = $1 and status = 'published'`, [sessionId])).rows[0].count) === count);

/**
 * Folds the project's events into the rollups and waits until both watermarks (rollup, relay) are
 * past them: they only pass transactions that have ended cluster-wide, which other test files'
 * open transactions can hold back for a while.
 */
async function foldAll(projectId: string) {
  await until(async () => {
    await t.app.analyticsRollup.catchUp();
    t.app.publisher?.nudge();
    const { rows } = await db.query(
      `select count(*)::int as n from event_outbox where project_id = $1
         and (transaction_id >= (select transaction_id from analytics_rollup_state) or transaction_id >= (select transaction_id from outbox_relay_state))`,
      [projectId],
    );
    return rows[0].n === 0;
  }, 30_000);
}

/** Five delivered messages in a session, the first three of them written `hoursAgo` ago (the last two now). */
async function sessionWithOldEvents(hoursAgo = 3) {
  const fixture = await createProjectFixture(t, 'alice');
  const sent = [];
  for (let i = 1; i <= 5; i++) sent.push(await send(fixture.sessionId, `m${i}`));
  await delivered(fixture.sessionId, 5);
  await db.query(`update event_outbox set created_at = created_at - make_interval(hours => $2) where aggregate_id = $1 and sequence <= 3`, [fixture.sessionId, hoursAgo]);
  return { ...fixture, eventIds: sent.map((s) => s.eventId as string) };
}

describe('event retention', () => {
  it('keeps everything by default', async () => {
    const { t: plain, db: client } = await startTestAppWithClient();
    try {
      const { sessionId } = await createProjectFixture(plain, 'alice');
      await plain.gql(SEND_MESSAGE, { sessionId, body: 'kept' }, { as: 'alice' });
      await client.query(`update event_outbox set created_at = now() - interval '10 years' where aggregate_id = $1`, [sessionId]);
      await plain.app.analyticsRollup.catchUp();
      expect(await plain.app.retention.runOnce()).toBe(0);
      expect((await client.query('select count(*)::int as n from event_outbox where aggregate_id = $1', [sessionId])).rows[0].n).toBe(1);
    } finally {
      await client.end();
      await plain.stop();
    }
  });

  it('removes expired events only once they are folded into the rollups, in batches of at most the batch size', async () => {
    const { sessionId, projectId } = await sessionWithOldEvents();
    // Not folded yet: nothing is removed (analytics over that range would lose them).
    expect(await t.app.retention.runOnce()).toBe(0);
    expect(await sequencesLeft(sessionId)).toEqual([1, 2, 3, 4, 5]);
    await foldAll(projectId);
    // One statement removes at most EVENT_RETENTION_BATCH_SIZE (2).
    const { rows } = await dbOf(forkEm(t.app.orm)).executeQuery(expireEvents.bind({ cutoff: new Date(Date.now() - HOUR), batch: 2 }));
    expect(rows[0]!.removed).toBe(2);
    expect(await t.app.retention.runOnce()).toBeGreaterThanOrEqual(1);
    expect(await sequencesLeft(sessionId)).toEqual([4, 5]);
  });

  it('never removes an undelivered event, nor the events behind it', async () => {
    const fixture = await createProjectFixture(t, 'alice');
    for (let i = 1; i <= 3; i++) await send(fixture.sessionId, `m${i}`);
    await delivered(fixture.sessionId, 3);
    // The bus refused event 2 for good: 2 and 3 are undelivered.
    await setDeliveryState(db, fixture.sessionId, { deliveredThrough: 1, attempts: 10, lastError: 'bus down', failed: true });
    await db.query(`update event_outbox set created_at = created_at - interval '5 hours' where aggregate_id = $1`, [fixture.sessionId]);
    await foldAll(fixture.projectId);
    await t.app.retention.runOnce();
    expect(await sequencesLeft(fixture.sessionId)).toEqual([2, 3]);
    expect((await db.query(`select status from outbox_event_status where aggregate_id = $1 order by sequence`, [fixture.sessionId])).rows.map((r) => r.status)).toEqual(['failed', 'pending']);
  });

  it('answers CURSOR_EXPIRED to a subscription resuming from before the window, and resumes normally from the horizon', async () => {
    const { sessionId, projectId, eventIds } = await sessionWithOldEvents();
    await foldAll(projectId);
    await t.app.retention.runOnce();
    expect(await sequencesLeft(sessionId)).toEqual([4, 5]);
    const token = await t.token('alice');

    for (const variables of [
      { sessionId, afterSequence: 1 },
      { sessionId, after: eventIds[0] },
    ]) {
      const sub = await subscribe(t.app.graphqlUrl, token, SESSION_EVENTS, variables);
      await sub.waitFor((s) => s.errors.length > 0);
      expect(sub.errors[0]?.extensions?.code).toBe('CURSOR_EXPIRED');
      expect(sub.events).toEqual([]);
      await sub.stop();
    }
    const project = await subscribe(t.app.graphqlUrl, token, PROJECT_EVENTS, { projectId, afterSequence: 0 });
    await project.waitFor((s) => s.errors.length > 0);
    expect(project.errors[0]?.extensions?.code).toBe('CURSOR_EXPIRED');
    await project.stop();

    // From the newest removed event, nothing is missing: 4 and 5, then live.
    const resumed = await subscribe(t.app.graphqlUrl, token, SESSION_EVENTS, { sessionId, afterSequence: 3 });
    await resumed.waitForCount(2);
    expect(resumed.events.map((e) => e.sequence)).toEqual([4, 5]);
    await resumed.stop();
  });

  it('answers CURSOR_EXPIRED to a history page continued from a cursor older than the window', async () => {
    const { sessionId, projectId } = await sessionWithOldEvents();
    const sessionPage = await t.gql(SESSION_HISTORY, { projectId, sessionId, first: 1 }, { as: 'alice' });
    const projectPage = await t.gql(PROJECT_HISTORY, { projectId, order: 'OLDEST_FIRST', first: 1 }, { as: 'alice' });
    await foldAll(projectId);
    await t.app.retention.runOnce();

    const continuedSession = await t.gql(SESSION_HISTORY, { projectId, sessionId, first: 1, after: sessionPage.data.sessionEventHistory.pageInfo.endCursor }, { as: 'alice' });
    expect(continuedSession.errors?.[0]?.extensions?.code).toBe('CURSOR_EXPIRED');
    const continuedProject = await t.gql(PROJECT_HISTORY, { projectId, order: 'OLDEST_FIRST', first: 1, after: projectPage.data.projectEventHistory.pageInfo.endCursor }, { as: 'alice' });
    expect(continuedProject.errors?.[0]?.extensions?.code).toBe('CURSOR_EXPIRED');
    // Backward from the same cursors nothing is left to read: an empty page is checked too.
    const before = (field: string, args: string) =>
      `query($projectId: ID!, $before: String) { ${field}(projectId: $projectId, ${args} last: 1, before: $before) { edges { cursor } } }`;
    const backSession = await t.gql(before('sessionEventHistory', `sessionId: "${sessionId}",`), { projectId, before: sessionPage.data.sessionEventHistory.pageInfo.endCursor }, { as: 'alice' });
    expect(backSession.errors?.[0]?.extensions?.code).toBe('CURSOR_EXPIRED');
    const backProject = await t.gql(before('projectEventHistory', 'order: OLDEST_FIRST,'), { projectId, before: projectPage.data.projectEventHistory.pageInfo.endCursor }, { as: 'alice' });
    expect(backProject.errors?.[0]?.extensions?.code).toBe('CURSOR_EXPIRED');
    // A fresh walk starts at the window and is whole.
    const fresh = await t.gql(SESSION_HISTORY, { projectId, sessionId, first: 10 }, { as: 'alice' });
    expect(fresh.data.sessionEventHistory.edges.map((edge: { node: { sequence: number } }) => edge.node.sequence)).toEqual([4, 5]);
  });

  it('keeps analytics over whole hours older than the window, from the rollups', async () => {
    const { projectId } = await sessionWithOldEvents(30);
    await foldAll(projectId);
    // Whole hours around the expired events (their edge hours are read from the rollups too).
    const from = new Date(Math.floor((Date.now() - 40 * HOUR) / HOUR) * HOUR).toISOString();
    const to = new Date(Math.floor((Date.now() - 20 * HOUR) / HOUR) * HOUR).toISOString();
    const query = `query($p: ID!, $from: DateTime!, $to: DateTime!) { projectAnalytics(projectId: $p, from: $from, to: $to) { totalEvents activeUsers activeSessions eventsByType { type count } } }`;
    const before = await t.gql(query, { p: projectId, from, to }, { as: 'alice' });
    expect(before.data.projectAnalytics.totalEvents).toBe(3);
    // A batch large enough to look past what earlier tests left at the front of the log (retention
    // walks it in transaction order, and their kept events are newer than their edited created_at).
    await dbOf(forkEm(t.app.orm)).executeQuery(expireEvents.bind({ cutoff: new Date(Date.now() - HOUR), batch: 1_000 }));
    expect((await db.query('select count(*)::int as n from event_outbox where project_id = $1', [projectId])).rows[0].n).toBe(2);
    const after = await t.gql(query, { p: projectId, from, to }, { as: 'alice' });
    expect(after.data).toEqual(before.data);
  });
});
