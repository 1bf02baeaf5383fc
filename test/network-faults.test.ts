import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { connect } from './support/database.ts';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { SESSION_EVENTS, subscribe, type TestSubscriber } from './support/subscriber.ts';
import { until } from './support/until.ts';
import type pg from 'pg';

const REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';

/**
 * The faults a network leaves behind, between one instance (the publisher, P) and its PostgreSQL
 * and Redis, while another instance (W, no publisher) takes the writes and serves the subscriber.
 * A blackhole keeps sockets open and passes nothing; healing passes new connections only, so P
 * recovers only if it notices its connections are dead and replaces them. Deadlines are set small
 * here (hundreds of ms) so each scenario takes seconds.
 */
const CLAIM_LEASE_MS = 2_000;
const DEADLINES = {
  DB_CONNECT_TIMEOUT_MS: '500',
  DB_QUERY_TIMEOUT_MS: '1000',
  OUTBOX_CYCLE_TIMEOUT_MS: '800',
  OUTBOX_LISTEN_PING_MS: '300',
  REDIS_COMMAND_TIMEOUT_MS: '500',
  REDIS_CONNECT_TIMEOUT_MS: '500',
  REDIS_PING_INTERVAL_MS: '300',
  HEALTH_CHECK_TIMEOUT_MS: '300',
  OUTBOX_POLL_INTERVAL_MS: '200',
  OUTBOX_BACKOFF_BASE_MS: '100',
  OUTBOX_BACKOFF_MAX_MS: '400',
  OUTBOX_CLAIM_LEASE_MS: String(CLAIM_LEASE_MS),
};

describe('network faults between the publishing instance and PostgreSQL / Redis', () => {
  let writer: TestApp;
  let publisher: TestApp;
  let pgProxy: FaultProxy;
  let redisProxy: FaultProxy;
  let db: pg.Client;
  let sessionId: string;
  let sub: TestSubscriber;
  const sent: string[] = [];

  beforeAll(async () => {
    writer = await startTestApp({ REDIS_URL, OUTBOX_PUBLISHER_ENABLED: 'false' });
    const redis = new URL(REDIS_URL);
    pgProxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(writer.db.url).port || 5432) });
    redisProxy = await startFaultProxy({ host: redis.hostname, port: Number(redis.port || 6379) });
    publisher = await startTestApp({ ...DEADLINES, DATABASE_URL: pgProxy.via(writer.db.url), REDIS_URL: redisProxy.via(REDIS_URL) }, { db: writer.db });
    db = await connect(writer.db.url);
    ({ sessionId } = await createProjectFixture(writer, 'alice'));
    sub = await subscribe(writer.app.graphqlUrl, await writer.token('alice'), SESSION_EVENTS, { sessionId });
    await send();
    await until(() => delivered().length === sent.length);
  }, 30_000);
  afterAll(async () => {
    await sub?.stop();
    await db?.end();
    await publisher?.stop();
    await pgProxy?.close();
    await redisProxy?.close();
    await writer?.stop();
  });

  async function send() {
    const result = await writer.gql(SEND_MESSAGE, { sessionId, body: `message ${sent.length}` }, { as: 'alice' });
    sent.push(result.data.sendMessage.eventId);
  }
  /** What the subscriber got, each event once (delivery is at-least-once; duplicates share an eventId). */
  const delivered = () => [...new Set(sub.events.map((event) => event.eventId))];
  const pending = async () => Number((await db.query(`select count(*) from outbox_event_status where status <> 'published'`)).rows[0].count);
  const ready = async () => (await fetch(`${publisher.app.url}/health/ready`)).status === 200;

  /**
   * Writes through W for `faultMs` while the fault lasts, heals, and goes on writing; then checks
   * that everything arrives, in order, and reports how long delivery took to resume.
   */
  async function survive(name: string, fault: FaultProxy, faultMs: number, { blackhole = true } = {}) {
    const before = delivered().length;
    if (blackhole) fault.blackhole();
    let sawUnready = false;
    const faultEnds = Date.now() + faultMs;
    while (Date.now() < faultEnds) {
      await send();
      if (!sawUnready && !(await ready())) sawUnready = true;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Nothing written during the fault has gone out (the bus or the database is unreachable).
    if (blackhole) expect(delivered().length).toBe(before);
    fault.heal();
    const healedAt = Date.now();
    const countAtHeal = delivered().length;
    await send();
    await until(() => delivered().length > countAtHeal, 5_000);
    const resumedMs = Date.now() - healedAt;
    await until(() => delivered().length === sent.length, 5_000);
    await until(ready, 5_000);
    const readyMs = Date.now() - healedAt;
    await until(async () => (await pending()) === 0, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const pendingAfter = await pending();
    console.log(`[network-faults] ${name}: first delivery ${resumedMs} ms after heal, ready again after ${readyMs} ms, pending 2 s after heal+drain: ${pendingAfter}`);

    if (blackhole) expect(sawUnready).toBe(true);
    expect(pendingAfter).toBe(0);
    // Nothing lost, nothing reordered: every write once, in the order it was made.
    expect(delivered()).toEqual(sent);
    const sequences = sub.events.map((event) => event.sequence);
    expect(sequences.filter((sequence, i) => i > 0 && sequence < sequences[i - 1]! && sub.events[i]!.eventId !== sub.events[i - 1]!.eventId)).toEqual([]);
  }

  it('PostgreSQL blackholed, then healed: delivery resumes, readiness fails during the fault and recovers', async () => {
    await survive('PostgreSQL blackholed 2 s', pgProxy, 2_000);
    const metrics = await (await fetch(`${publisher.app.url}/metrics`)).text();
    expect(metrics).toMatch(/outbox_cycles_abandoned_total [1-9]/);
    // The LISTEN connection missed its ping and was replaced (and the publisher swept after it).
    expect(metrics).toMatch(/connections_replaced_total\{connection="listen"\} [1-9]/);
  }, 30_000);

  it('Redis blackholed, then healed: the publish connection is replaced and delivery resumes', async () => {
    await survive('Redis blackholed 2 s', redisProxy, 2_000);
    const metrics = await (await fetch(`${publisher.app.url}/metrics`)).text();
    expect(metrics).toMatch(/connections_replaced_total\{connection="redis_publish"\} [1-9]/);
  }, 30_000);

  it('every PostgreSQL and Redis socket reset: the instance reconnects and delivers everything', async () => {
    const reset = {
      ...pgProxy,
      heal() {
        pgProxy.reset();
        redisProxy.reset();
      },
    } as FaultProxy;
    await survive('every socket reset', reset, 500, { blackhole: false });
  }, 30_000);

  it('PostgreSQL blackholed for longer than the claim lease, then healed', async () => {
    await survive(`PostgreSQL blackholed ${CLAIM_LEASE_MS + 1_500} ms (lease ${CLAIM_LEASE_MS} ms)`, pgProxy, CLAIM_LEASE_MS + 1_500);
  }, 30_000);
});
