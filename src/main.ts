import { loadConfigOrExit } from './platform/config.ts';
import { DEMO_USERS } from './domain/demo/demo-seed.ts';
import { createLogger } from './platform/logger.ts';
import { startTracing } from './platform/observability/tracing.ts';
import { startApp } from './app.ts';

/** Longest a graceful stop may take, after the drain period, before the process exits anyway. */
const SHUTDOWN_TIMEOUT_MS = 10_000;

const config = loadConfigOrExit();

const logger = createLogger({ level: config.logLevel, pretty: process.stdout.isTTY && config.nodeEnv !== 'production' });
// Process-wide, before the first request: off (nothing registered) unless OTEL_* turns it on.
const tracing = startTracing(config.tracing);
if (tracing.enabled) logger.info({ url: config.tracing.url, sampler: config.tracing.sampler }, 'tracing to OTLP');
const app = await startApp(config, logger);

logger.info({ url: app.graphqlUrl, database: config.database.kind }, 'chat-outbox is listening');
// Demo tokens need the secret: a JWKS-only server's tokens come from the identity provider.
if (config.seedDemo && app.tokens.canSign) {
  const lines = [
    `\nGraphiQL: ${app.graphqlUrl} (opens with example operations, signed in as ${DEMO_USERS[0].userId})`,
    'Demo users (to act as another, paste a line into the Headers tab):',
  ];
  for (const user of DEMO_USERS) {
    const token = await app.tokens.sign(user.userId, { expiresIn: '30d' });
    lines.push(`  ${user.userId} (${user.role}): {"Authorization": "Bearer ${token}"}`);
  }
  console.log(`${lines.join('\n')}\n`);
}

let shuttingDown = false;
async function shutdown(signal: string) {
  if (shuttingDown) return;
  shuttingDown = true;
  logger.info({ signal }, 'shutting down');
  const timer = setTimeout(() => {
    logger.error('graceful shutdown timed out');
    process.exit(1);
  }, config.shutdownDrainMs + SHUTDOWN_TIMEOUT_MS);
  timer.unref();
  try {
    await app.stop();
    // After the app: the spans of the last requests and batches are exported too.
    await tracing.shutdown().catch((error: unknown) => logger.warn({ err: error }, 'could not flush the last spans'));
    logger.info('stopped');
    process.exitCode = 0;
  } catch (error) {
    logger.error({ err: error }, 'error during shutdown');
    process.exitCode = 1;
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
