import type { GraphiQLOptions } from 'graphql-yoga';
import { createAnalyticsRollupWorker } from './analytics/analytics-rollup.worker.ts';
import { createTokenService } from './auth/token.ts';
import type { AppConfig } from './config.ts';
import { createOrm, forkEm, migrateToLatest, type Orm } from './db/orm.ts';
import { demoGraphiQLOptions } from './db/demo-graphiql.ts';
import { DEMO_USERS, seedDemo } from './db/demo-seed.ts';
import { createEventStreams } from './events/event-subscription.service.ts';
import { schema } from './graphql/schema.ts';
import { createHealthChecks } from './health/health-checks.ts';
import type { Logger } from './logger.ts';
import { createMetrics } from './observability/metrics.ts';
import { createOutboxBacklogReader } from './observability/outbox-backlog.ts';
import { createPublisherObserver } from './outbox/outbox.observer.ts';
import { OutboxPublisher } from './outbox/outbox.publisher.ts';
import { createCommitNotifier, listenForCommits, wakeOnLocalCommit } from './outbox/outbox.wakeups.ts';
import { createMemoryBus, createRedisBus, type EventBus } from './pubsub/event-bus.ts';
import { buildServer, type RunningServer } from './server.ts';

export interface AppOverrides {
  /** Use this bus instead of the configured one (tests inject faults through it). */
  bus?: EventBus;
}

/**
 * Everything that runs in one API process, wired from config: database and migrations, the bus,
 * the OutboxPublisher with its wake-ups, metrics and health, and the HTTP/WebSocket server.
 * `main.ts` adds signals and printing; tests start it on port 0 and stop it.
 */
export async function startApp(config: AppConfig, logger: Logger, overrides: AppOverrides = {}) {
  const orm: Orm = await createOrm(config.database);
  const closers: (() => Promise<void>)[] = [() => orm.close()];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch((error) => logger.error({ err: String(error) }, 'error while closing'));
  };

  try {
    const tokens = createTokenService({ secret: config.jwtSecret, issuer: config.jwtIssuer });
    if (config.migrateOnStart) {
      const applied = await migrateToLatest(orm);
      logger.info({ database: config.database.kind, applied }, applied.length ? 'migrations applied' : 'database schema is up to date');
    }
    // On the demo, GraphiQL opens with example operations and the demo owner's token in place.
    let graphiql: GraphiQLOptions | undefined;
    if (config.seedDemo) {
      const { seeded, sessionId } = await seedDemo(forkEm(orm));
      if (seeded) logger.info('demo project seeded');
      graphiql = demoGraphiQLOptions({ token: await tokens.sign(DEMO_USERS[0].userId, { expiresIn: '30d' }), sessionId });
    }

    const metrics = createMetrics({ readOutboxBacklog: createOutboxBacklogReader(orm), logger });
    const health = createHealthChecks({ orm, timeoutMs: config.healthCheckTimeoutMs, logger });

    const bus = overrides.bus ?? (config.redisUrl ? createRedisBus(config.redisUrl) : createMemoryBus());
    closers.push(() => bus.close());

    let publisher: OutboxPublisher | null = null;
    let listener: ReturnType<typeof listenForCommits> | null = null;
    const outboxLogger = logger.child({ component: 'outbox' });
    if (config.outbox.enabled) {
      // On PostgreSQL the publisher gets a small pool of its own, so a burst of requests waiting
      // for connections cannot delay delivery. PGlite has one connection for everything.
      let publisherOrm = orm;
      if (config.database.kind === 'postgresql') {
        // Its commits do not wait for the WAL flush: a claim or a "published" mark lost in a
        // database crash only means those events are published again (with the same eventId),
        // which at-least-once delivery allows; the events themselves were committed durably by
        // their writers. On a busy disk the flush was the tail of commit -> client latency.
        const own = await createOrm(config.database, { pool: { min: 1, max: 2 }, settings: { synchronous_commit: 'off' } });
        closers.push(() => own.close());
        publisherOrm = own;
      }
      // API-only processes NOTIFY after their commits; LISTEN is how this publisher hears them.
      // PGlite is one in-process backend: the local commit hook sees every commit there.
      const listen = config.outbox.wake === 'all' && config.database.kind === 'postgresql';
      const started = new OutboxPublisher({
        orm: publisherOrm,
        bus,
        logger: outboxLogger,
        options: config.outbox,
        listenEnabled: listen,
        observer: createPublisherObserver({ metrics, logger: outboxLogger }),
      });
      publisher = started;
      if (config.outbox.wake !== 'poll') wakeOnLocalCommit(orm, () => started.nudge());
      if (listen && config.database.kind === 'postgresql') {
        listener = listenForCommits({
          url: config.database.url,
          logger: outboxLogger,
          wake: () => started.nudge(),
          onStateChange: (listening) => started.setListening(listening),
        });
      }
      started.start();
      metrics.setPublisherStatusSource(started);
      health.setPublisherStatusSource(started);
      closers.push(async () => {
        await listener?.stop();
        await started.stop();
      });
    } else if (config.outbox.wake === 'all' && config.database.kind === 'postgresql') {
      // No publisher here: tell the ones in other processes, after commit, that events are due.
      const notifier = createCommitNotifier(orm, outboxLogger);
      wakeOnLocalCommit(orm, () => notifier.signal());
    }

    // Folds committed events into the analytics running totals; analytics are exact without it,
    // it keeps their queries fast (docs/analytics.md).
    const analyticsRollup = createAnalyticsRollupWorker({
      orm,
      logger,
      options: { intervalMs: config.analyticsRollupIntervalMs, batchSize: config.analyticsRollupBatchSize },
    });
    if (config.analyticsRollupIntervalMs > 0) {
      analyticsRollup.start();
      metrics.setAnalyticsRollupStatusSource(analyticsRollup);
      closers.push(() => analyticsRollup.stop());
    }

    const events = createEventStreams({
      orm,
      bus,
      options: config.subscriptions,
      onDelivered: (event) => metrics.subscriptions.recordDelivered(event.type),
      onEnd: (reason) => {
        if (reason === 'slow-consumer') metrics.subscriptions.recordEndedSlowConsumer();
      },
    });
    const server = buildServer({
      orm,
      schema,
      tokens,
      events,
      logger,
      metrics,
      health,
      serveMetrics: config.metricsEnabled,
      keepAliveMs: config.subscriptions.keepAliveMs,
      graphiql,
    });
    const running: RunningServer = await server.start(config.port, config.host);
    closers.push(() => server.stop());

    let stopping: Promise<void> | null = null;
    return {
      orm,
      bus,
      tokens,
      server,
      publisher,
      listener,
      analyticsRollup,
      metrics,
      health,
      url: running.url,
      graphqlUrl: `${running.url}/graphql`,
      /**
       * Idempotent. Reports unready at once and keeps serving for `shutdownDrainMs` so load
       * balancers stop routing here; then stops in reverse order of start: the server
       * (subscriptions end, clients are told to go away), the publisher (the batch in flight is
       * finished or released, so no event is left claimed), the bus, and last the database.
       */
      stop(): Promise<void> {
        stopping ??= (async () => {
          health.markShuttingDown();
          if (config.shutdownDrainMs > 0) await new Promise((resolve) => setTimeout(resolve, config.shutdownDrainMs));
          await closeAll();
        })();
        return stopping;
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

export type App = Awaited<ReturnType<typeof startApp>>;
