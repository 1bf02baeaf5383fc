import { createAnalyticsRollupWorker } from './analytics/analytics-rollup.worker.ts';
import { createTokenService } from './auth/token.ts';
import type { AppConfig } from './config.ts';
import { createOrm, forkEm, migrateToLatest, type Orm } from './db/orm.ts';
import { seedDemo } from './db/demo-seed.ts';
import { schema } from './graphql/schema.ts';
import type { Logger } from './logger.ts';
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
  const server = buildServer({ orm, schema, tokens, logger });
  let running: RunningServer;
  try {
    running = await server.start(config.port, config.host);
  } catch (error) {
    await orm.close(true);
    throw error;
  }

  const analyticsRollup = createAnalyticsRollupWorker({
    orm,
    logger,
    options: { intervalMs: config.analyticsRollupIntervalMs, batchSize: config.analyticsRollupBatchSize },
  });
  if (config.analyticsRollupIntervalMs > 0) analyticsRollup.start();

  let stopping: Promise<void> | null = null;
  return {
    orm,
    tokens,
    server,
    analyticsRollup,
    url: running.url,
    graphqlUrl: `${running.url}/graphql`,
    /** Idempotent: stops accepting work, closes connections, then the database. */
    stop(): Promise<void> {
      stopping ??= (async () => {
        await server.stop();
        await analyticsRollup.stop();
        await orm.close();
      })();
      return stopping;
    },
  };
}

export type App = Awaited<ReturnType<typeof startApp>>;
