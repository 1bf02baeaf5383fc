import type { Clock } from '../platform/clock.ts';
import type { AppConfig } from '../platform/config.ts';
import { createOrm, type ConnectionDeadlines, type Orm } from '../platform/db/orm.ts';
import type { Logger } from '../platform/logger.ts';
import type { Metrics } from '../platform/observability/metrics.ts';
import type { PublisherStatusSource } from '../platform/observability/metrics.ts';
import type { EventBus } from '../bus/event-bus.ts';
import { createPublisherObserver } from './outbox.observer.ts';
import { OutboxPublisher } from './outbox.publisher.ts';
import { createCommitNotifier, listenForCommits, wakeOnLocalCommit } from './outbox.wakeups.ts';

/**
 * The publisher's own pool: small, and its commits do not wait for the WAL flush (why: in
 * startOutboxRelay). Its prepared statements keep their generic plans: each is written to be
 * planned well without its parameters' values (the plan tests in test/claim.test.ts check both
 * kinds), and left to choose, PostgreSQL switched the cycle's first statement to planning on every
 * run once autovacuum had analyzed the tables, which doubled the relay's database CPU per event.
 * Exported so a bench measures the publisher on the pool it runs on.
 */
export const PUBLISHER_POOL = { pool: { min: 1, max: 2 }, settings: { synchronous_commit: 'off', plan_cache_mode: 'force_generic_plan' } } as const;

export interface OutboxRelayDeps {
  config: Pick<AppConfig, 'outbox' | 'database' | 'network'>;
  /** The request ORM: its commits wake the publisher (or, without one here, other processes'). */
  orm: Orm;
  bus: EventBus;
  logger: Logger;
  metrics: Metrics;
  /** Where the publisher's status is reported (readiness). */
  health: { setPublisherStatusSource(source: PublisherStatusSource | null): void };
  clock?: Clock;
  /** Deadlines of the publisher pool's connections. */
  dbDeadlines: ConnectionDeadlines;
}

export interface OutboxRelay {
  /** This process's publisher (null: OUTBOX_PUBLISHER_ENABLED=false, an API-only process). */
  readonly publisher: OutboxPublisher | null;
  readonly listener: ReturnType<typeof listenForCommits> | null;
  /** Stops listening, lets the batch in flight finish, closes the publisher's pool. */
  stop(): Promise<void>;
}

/**
 * The outbox relay: the publisher, what wakes it (commits in this process, LISTEN for other
 * processes' NOTIFYs, polling) and its connection pool. The composition root starts and stops it;
 * nothing else about the relay is wired there.
 *
 * Without a publisher in this process (an API-only instance), it only makes sure the publishers
 * elsewhere hear about this process's commits: a coalesced NOTIFY after each commit that recorded
 * an event.
 */
export async function startOutboxRelay(deps: OutboxRelayDeps): Promise<OutboxRelay> {
  const { config, orm, bus, metrics, health } = deps;
  const logger = deps.logger.child({ component: 'outbox' });
  const { outbox, database, network } = config;
  if (!outbox.enabled) {
    if (outbox.wake === 'all' && database.kind === 'postgresql') {
      const notifier = createCommitNotifier(orm, logger);
      wakeOnLocalCommit(orm, () => notifier.signal());
    }
    return { publisher: null, listener: null, stop: async () => {} };
  }

  // On PostgreSQL the publisher gets a small pool of its own, so a burst of requests waiting for
  // connections cannot delay delivery. PGlite has one connection for everything.
  let publisherOrm = orm;
  let ownPool: Orm | null = null;
  if (database.kind === 'postgresql') {
    // Its commits do not wait for the WAL flush: a claim or a recorded position lost in a
    // database crash only means those events are published again (with the same eventId), which
    // at-least-once delivery allows; the events themselves were committed durably by their
    // writers. On a busy disk the flush was the tail of commit -> client latency. The cycle
    // deadline (OUTBOX_CYCLE_TIMEOUT_MS, below the query deadline) is the one that normally fires
    // on this pool: it abandons the cycle and destroys its connections.
    ownPool = await createOrm(database, { ...PUBLISHER_POOL, network: deps.dbDeadlines });
    publisherOrm = ownPool;
  }
  // API-only processes NOTIFY after their commits; LISTEN is how this publisher hears them.
  // PGlite is one in-process backend: the local commit hook sees every commit there.
  const listen = outbox.wake === 'all' && database.kind === 'postgresql';
  const publisher = new OutboxPublisher({
    orm: publisherOrm,
    bus,
    logger,
    options: outbox,
    listenEnabled: listen,
    observer: createPublisherObserver({ metrics, logger }),
    ...(deps.clock ? { clock: deps.clock } : {}),
  });
  if (outbox.wake !== 'poll') wakeOnLocalCommit(orm, () => publisher.nudge());
  const listener =
    listen && database.kind === 'postgresql'
      ? listenForCommits({
          url: database.url,
          logger,
          wake: () => publisher.nudge(),
          onStateChange: (listening) => publisher.setListening(listening),
          ...(deps.clock ? { clock: deps.clock } : {}),
          pingIntervalMs: outbox.listenPingMs,
          connectTimeoutMs: network.dbConnectTimeoutMs,
          keepAliveMs: network.tcpKeepAliveMs,
          onReplaced: () => metrics.outbox.recordConnectionReplaced('listen'),
        })
      : null;
  publisher.start();
  metrics.setPublisherStatusSource(publisher);
  health.setPublisherStatusSource(publisher);
  return {
    publisher,
    listener,
    async stop() {
      await listener?.stop();
      await publisher.stop();
      await ownPool?.close();
    },
  };
}
