import type { GraphiQLOptions } from 'graphql-yoga';
import { createAnalyticsRollupWorker } from './domain/analytics/analytics-rollup.worker.ts';
import { createTokenService } from './platform/auth/token.ts';
import { sleep, systemClock, type Clock } from './platform/clock.ts';
import type { AppConfig } from './platform/config.ts';
import { createOrm, forkEm, migrateToLatest, type Orm } from './platform/db/orm.ts';
import { demoGraphiQLOptions } from './domain/demo/demo-graphiql.ts';
import { DEMO_USERS, seedDemo } from './domain/demo/demo-seed.ts';
import { createEventStreams } from './subscriptions/event-subscription.service.ts';
import { schema } from './schema.ts';
import { createHealthChecks } from './platform/observability/health-checks.ts';
import { createRateLimits } from './platform/limits/rate-limiter.ts';
import { createPersistedDocuments } from './platform/graphql/persisted-documents.ts';
import type { Logger } from './platform/logger.ts';
import { createMetrics } from './platform/observability/metrics.ts';
import { createOutboxBacklogReader } from './outbox/outbox-backlog.ts';
import { startOutboxRelay } from './outbox/outbox-relay.ts';
import { createEventRetentionWorker } from './outbox/event-retention.worker.ts';
import { createMemoryBus, createRedisBus, type EventBus } from './bus/event-bus.ts';
import { buildServer, type RunningServer } from './server.ts';
import { startAgentRuntime } from './agents-runtime/start-agent-runtime.ts';

export interface AppOverrides {
  /** Use this bus instead of the configured one (tests inject faults through it). */
  bus?: EventBus;
  /**
   * The clock of the background loops' waits, the subscriptions' timers and the shutdown drain
   * (tests pass a fake one to move time on without sleeping); default: the real clock. Token signing and verification,
   * and which outbox events are due (the database's clock), are not on it.
   */
  clock?: Clock;
}

/**
 * Everything that runs in one API process, wired from config: database and migrations, the bus,
 * the OutboxPublisher with its wake-ups, metrics and health, and the HTTP/WebSocket server.
 * `main.ts` adds signals and printing; tests start it on port 0 and stop it.
 */
export async function startApp(config: AppConfig, logger: Logger, overrides: AppOverrides = {}) {
  // Read first: a bad allow-list file stops start-up before anything is opened.
  const persistedDocuments = createPersistedDocuments(config.persistedDocuments);
  // The request pool's statements end with the operation deadline: PostgreSQL cancels one that
  // runs longer, so a cancelled operation does not keep a backend busy (PGlite has no such limit).
  const deadline = config.operationLimits.operationTimeoutMs;
  const { network } = config;
  // Client-side deadlines on every pool: an answer lost on a half-open connection fails the query
  // and destroys that connection instead of waiting for ever.
  const dbDeadlines = { connectTimeoutMs: network.dbConnectTimeoutMs, queryTimeoutMs: network.dbQueryTimeoutMs, keepAliveMs: network.tcpKeepAliveMs };
  const orm: Orm = await createOrm(config.database, { network: dbDeadlines, ...(deadline > 0 ? { settings: { statement_timeout: `${deadline}ms` } } : {}) });
  const closers: (() => Promise<void>)[] = [() => orm.close()];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch((error) => logger.error({ err: String(error) }, 'error while closing'));
  };

  try {
    const tokens = createTokenService({ ...config.auth, logger: logger.child({ component: 'auth' }) });
    if (config.auth.usingDevSecret) logger.warn('bearer tokens use the published development secret: set JWT_SECRET or JWT_JWKS_URL before anyone else can reach this server');
    if (config.migrateOnStart) {
      const applied = await migrate(config, orm);
      logger.info({ database: config.database.kind, applied }, applied.length ? 'migrations applied' : 'database schema is up to date');
    }
    // On the demo, GraphiQL opens with example operations and the demo owner's token in place.
    let graphiql: GraphiQLOptions | undefined;
    if (config.seedDemo) {
      const { seeded, sessionId } = await seedDemo(forkEm(orm));
      if (seeded) logger.info('demo project seeded');
      if (tokens.canSign) graphiql = demoGraphiQLOptions({ token: await tokens.sign(DEMO_USERS[0].userId, { expiresIn: '30d' }), sessionId });
    }

    const metrics = createMetrics({ readOutboxBacklog: createOutboxBacklogReader(orm), logger });
    const health = createHealthChecks({ orm, timeoutMs: config.healthCheckTimeoutMs, logger });

    const redisDeadlines = {
      commandTimeoutMs: network.redisCommandTimeoutMs,
      connectTimeoutMs: network.redisConnectTimeoutMs,
      keepAliveMs: network.tcpKeepAliveMs,
    };
    const onFanOut = (listeners: number) => metrics.subscriptions.eventFanout.observe(listeners);
    const bus =
      overrides.bus ??
      (config.redisUrl
        ? createRedisBus(config.redisUrl, {
            deadlines: { ...redisDeadlines, pingIntervalMs: network.redisPingIntervalMs },
            onFanOut,
            onConnectionReplaced: (connection) => {
              metrics.outbox.recordConnectionReplaced(connection === 'publish' ? 'redis_publish' : 'redis_subscribe');
              logger.warn({ connection: `redis:${connection}`, timeoutMs: network.redisCommandTimeoutMs }, 'Redis connection replaced: a command got no answer within its deadline');
            },
          })
        : createMemoryBus({ onFanOut }));
    closers.push(() => bus.close());

    // The outbox relay owns the publisher, its wake-ups and its pool.
    const relay = await startOutboxRelay({ config, orm, bus, logger, metrics, health, dbDeadlines, ...(overrides.clock ? { clock: overrides.clock } : {}) });
    closers.push(() => relay.stop());
    const { publisher, listener } = relay;

    // Folds committed events into the analytics running totals; analytics are exact without it,
    // it keeps their queries fast (docs/analytics.md).
    const analyticsRollup = createAnalyticsRollupWorker({
      orm,
      logger,
      options: { intervalMs: config.analyticsRollupIntervalMs, batchSize: config.analyticsRollupBatchSize },
      clock: overrides.clock,
    });
    if (config.analyticsRollupIntervalMs > 0) {
      analyticsRollup.start();
      metrics.setAnalyticsRollupStatusSource(analyticsRollup);
      closers.push(() => analyticsRollup.stop());
    }

    // Keeps the event log within EVENT_RETENTION_HOURS (0, the default: keeps everything).
    const retention = createEventRetentionWorker({
      orm,
      logger: logger.child({ component: 'retention' }),
      options: { retentionHours: config.eventRetentionHours, batchSize: config.eventRetentionBatchSize, intervalMs: config.eventRetentionIntervalMs },
      ...(overrides.clock ? { clock: overrides.clock } : {}),
    });
    retention.start();
    closers.push(() => retention.stop());

    // Active agents answer committed user messages (docs/agents.md).
    const agentRuntime = config.agents.enabled
      ? startAgentRuntime({ orm, bus, logger, config: config.agents, metrics: metrics.agents, clock: overrides.clock })
      : null;
    if (agentRuntime) closers.push(() => agentRuntime.stop());

    const events = createEventStreams({
      orm,
      bus,
      options: config.subscriptions,
      clock: overrides.clock,
      onDelivered: (event) => metrics.subscriptions.recordDelivered(event.type),
      onEnd: (reason) => {
        if (reason === 'slow-consumer') metrics.subscriptions.recordEndedSlowConsumer();
      },
    });
    // Per-user budgets live in Redis when there is one, so every instance draws on the same.
    const rates = createRateLimits({
      mutationsPerMinute: config.abuse.mutationsPerMinute,
      subscribesPerMinute: config.abuse.subscribesPerMinute,
      keyPrefix: config.abuse.rateLimitKeyPrefix,
      redisUrl: config.redisUrl,
      redisDeadlines,
      logger,
    });
    closers.push(() => rates.close());
    const server = buildServer({
      orm,
      schema,
      tokens,
      events,
      logger,
      metrics,
      health,
      serveMetrics: config.metricsEnabled,
      cors: config.cors,
      keepAliveMs: config.subscriptions.keepAliveMs,
      limits: config.operationLimits,
      writeTimeoutMs: config.subscriptions.writeTimeoutMs,
      userLimits: { rates, options: config.abuse },
      graphiql,
      persistedDocuments,
      // External agent runtimes' deltas travel like the in-process runtime's: transient, never stored.
      publishActivity: (activity) => bus.publishActivity(activity),
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
      retention,
      agentRuntime,
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
          if (config.shutdownDrainMs > 0) await sleep(overrides.clock ?? systemClock, config.shutdownDrainMs);
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

/**
 * On PostgreSQL, migrations run on a connection of their own, free of the request pool's
 * statement timeout; PGlite is one in-process backend with no such timeout.
 */
async function migrate(config: AppConfig, requestOrm: Orm): Promise<string[]> {
  if (config.database.kind === 'pglite') return migrateToLatest(requestOrm);
  const own = await createOrm(config.database);
  try {
    return await migrateToLatest(own);
  } finally {
    await own.close();
  }
}

export type App = Awaited<ReturnType<typeof startApp>>;
