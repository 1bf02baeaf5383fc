import { createTokenService } from './auth/token.ts';
import type { AppConfig } from './config.ts';
import { createOrm, forkEm, migrateToLatest, type Orm } from './db/orm.ts';
import { seedDemo } from './db/demo-seed.ts';
import { schema } from './graphql/schema.ts';
import { createHealthChecks } from './health/health-checks.ts';
import type { Logger } from './logger.ts';
import { createMetrics } from './observability/metrics.ts';
import { createOutboxBacklogReader } from './observability/outbox-backlog.ts';
import { buildServer, type RunningServer } from './server.ts';

/**
 * Everything that runs in one API process, wired from config: database, migrations, server.
 * `main.ts` adds signals and printing; tests start it on port 0 and stop it.
 */
export async function startApp(config: AppConfig, logger: Logger) {
  const orm: Orm = await createOrm(config.database);
  try {
    if (config.migrateOnStart) {
      await migrateToLatest(orm);
      logger.info({ database: config.database.kind }, 'migrations applied');
    }
    if (config.seedDemo) {
      const { seeded } = await seedDemo(forkEm(orm));
      if (seeded) logger.info('demo project seeded');
    }
  } catch (error) {
    await orm.close(true);
    throw error;
  }

  const tokens = createTokenService({ secret: config.jwtSecret, issuer: config.jwtIssuer });
  // The publisher, once it runs here, reports to both: metrics.setPublisherStatusSource(publisher)
  // and health.setPublisherStatusSource(publisher).
  const metrics = createMetrics({ readOutboxBacklog: createOutboxBacklogReader(orm), logger });
  const health = createHealthChecks({ orm, timeoutMs: config.healthCheckTimeoutMs, logger });
  const server = buildServer({ orm, schema, tokens, logger, metrics, health, serveMetrics: config.metricsEnabled });
  let running: RunningServer;
  try {
    running = await server.start(config.port, config.host);
  } catch (error) {
    await orm.close(true);
    throw error;
  }

  let stopping: Promise<void> | null = null;
  return {
    orm,
    tokens,
    server,
    metrics,
    health,
    url: running.url,
    graphqlUrl: `${running.url}/graphql`,
    /**
     * Idempotent: reports unready at once, keeps serving for `shutdownDrainMs` so load balancers
     * stop routing here, then stops accepting work, closes connections, then the database.
     */
    stop(): Promise<void> {
      stopping ??= (async () => {
        health.markShuttingDown();
        if (config.shutdownDrainMs > 0) await new Promise((resolve) => setTimeout(resolve, config.shutdownDrainMs));
        await server.stop();
        await orm.close();
      })();
      return stopping;
    },
  };
}

export type App = Awaited<ReturnType<typeof startApp>>;
