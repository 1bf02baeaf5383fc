/**
 * The one place that reads `process.env`. Every option is documented and defaulted here, validated
 * once at start-up; a wrong value stops the process with a message that names the variable.
 */

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type DatabaseConfig =
  | { kind: 'postgresql'; url: string }
  | { kind: 'pglite'; dataDir: string };

export interface AppConfig {
  /** `production` makes a missing JWT_SECRET fatal instead of falling back to the dev secret. */
  nodeEnv: string;
  /** Where the data lives: `DATABASE_URL` (PostgreSQL) or, without it, embedded PGlite in `PGLITE_DATA_DIR`. */
  database: DatabaseConfig;
  /** Apply pending migrations at start (`MIGRATE_ON_START`, default true). */
  migrateOnStart: boolean;
  /** Seed the demo project and users when the database has no projects (`SEED_DEMO`; default: on for PGlite only). */
  seedDemo: boolean;
  /** HTTP/WebSocket port (`PORT`, default 4000; 0 picks a free one). */
  port: number;
  /** Interface to bind (`HOST`, default 0.0.0.0). */
  host: string;
  /** HS256 secret for bearer tokens (`JWT_SECRET`, >= 32 chars; a dev default outside production). */
  jwtSecret: string;
  /** `iss` claim required on tokens and set on dev tokens (`JWT_ISSUER`, default `chat-outbox`). */
  jwtIssuer: string;
  /** Pino level (`LOG_LEVEL`, default `info`). */
  logLevel: string;
  /** Redis for the pub/sub bus (`REDIS_URL`); unset: in-process bus, fine for a single instance. */
  redisUrl: string | null;
  /** Serve Prometheus metrics at `GET /metrics` (`METRICS_ENABLED`, default true); unauthenticated, so
   * turn it off where the port is public and nothing scrapes it. */
  metricsEnabled: boolean;
  /** Longest `GET /health/ready` waits for each database check before calling it failed
   * (`HEALTH_CHECK_TIMEOUT_MS`, default 2000). Keep it below the probe's own timeout. */
  healthCheckTimeoutMs: number;
  /** On SIGTERM, how long to keep serving while `/health/ready` already answers 503, so load balancers
   * stop sending new work before connections close (`SHUTDOWN_DRAIN_MS`, default 0; in Kubernetes
   * use at least the readiness probe's period × failure threshold). */
  shutdownDrainMs: number;
  /**
   * Pause of the analytics rollup worker once caught up (`ANALYTICS_ROLLUP_INTERVAL_MS`, default
   * 1000; 0 turns the worker off). Analytics stay exact and current without it, reading unfolded
   * events directly; the worker keeps that remainder small so queries stay fast.
   */
  analyticsRollupIntervalMs: number;
  /** Most events the rollup worker folds in one transaction (`ANALYTICS_ROLLUP_BATCH_SIZE`, default 5000). */
  analyticsRollupBatchSize: number;
  outbox: OutboxPublisherOptions;
  subscriptions: SubscriptionOptions;
  abuse: AbuseLimitOptions;
}

export const OUTBOX_WAKE_MODES = ['all', 'in-process', 'poll'] as const;
export type OutboxWake = (typeof OUTBOX_WAKE_MODES)[number];

export interface OutboxPublisherOptions {
  /** Run a publisher in this process (`OUTBOX_PUBLISHER_ENABLED`, default true). Any number may run against one database. */
  enabled: boolean;
  /**
   * How the publisher learns of new events besides polling (`OUTBOX_WAKE`, default `all`):
   * `all`: right after a commit in this process, and by LISTEN/NOTIFY from other processes;
   * `in-process`: only this process's commits (where LISTEN cannot work, such as behind PgBouncer
   * in transaction mode: other processes' events then wait for the poll);
   * `poll`: polling alone (for measuring the difference).
   */
  wake: OutboxWake;
  /** Most events claimed per batch (`OUTBOX_BATCH_SIZE`, default 500). One claim and one "published" update per batch. */
  batchSize: number;
  /** Sweep for due events at least this often, whatever wake-ups arrive (`OUTBOX_POLL_INTERVAL_MS`, default 1000). */
  pollIntervalMs: number;
  /** Publish attempts before an event is marked `failed` (`OUTBOX_MAX_ATTEMPTS`, default 10). */
  maxAttempts: number;
  /** First retry delay; doubles per attempt, with jitter (`OUTBOX_BACKOFF_BASE_MS`, default 500). */
  backoffBaseMs: number;
  /** Longest retry delay (`OUTBOX_BACKOFF_MAX_MS`, default 300000 = 5 min). */
  backoffMaxMs: number;
  /**
   * How long a claim holds an event (`OUTBOX_CLAIM_LEASE_MS`, default 30000). If a publisher dies
   * mid-batch, its events are claimed again after this; keep it well above a publish's duration.
   */
  claimLeaseMs: number;
  /**
   * Run the claim as a named prepared statement (`OUTBOX_PREPARED_STATEMENTS`, default true): it
   * is planned once per connection instead of on every cycle. Turn it off behind a pooler in
   * transaction mode that does not keep prepared statements (PgBouncer before 1.21, or without
   * `max_prepared_statements`).
   */
  preparedStatements: boolean;
}

export interface SubscriptionOptions {
  /** Events one subscription may have queued for a slow client before it is ended (`SUBSCRIPTION_BUFFER_SIZE`, default 1000). */
  bufferSize: number;
  /** Re-check a subscriber's project membership at most this often, on the next event (`SUBSCRIPTION_AUTH_RECHECK_MS`, default 5000). */
  authRecheckMs: number;
  /** graphql-ws ping interval; 0 turns keep-alive off (`WS_KEEPALIVE_MS`, default 12000). */
  keepAliveMs: number;
}

/**
 * Abuse limits for an instance that faces the internet (docs/operations.md, "Limits and security").
 * A count of 0 turns that limit off. Rates are per user and, with `REDIS_URL`, shared by every
 * instance; concurrency limits are per instance, counted in memory and released when the
 * subscription or socket ends.
 */
export interface AbuseLimitOptions {
  /** Mutation root fields one user may run per one-minute window, all instances together
   * (`RATE_LIMIT_MUTATIONS_PER_MINUTE`, default 600; 0 = off). A request with five `sendMessage`
   * fields costs five; one over the budget is refused whole with RATE_LIMITED (HTTP 429). */
  mutationsPerMinute: number;
  /** Subscriptions one user may start per one-minute window, over WebSocket and SSE together, all
   * instances together (`RATE_LIMIT_SUBSCRIBES_PER_MINUTE`, default 300; 0 = off): a user at
   * MAX_SUBSCRIPTIONS_PER_USER can still resubscribe everything three times a minute, a reconnect
   * loop that resubscribes without pause cannot. */
  subscribesPerMinute: number;
  /** Prefix of the rate-limit counters' keys in Redis (`RATE_LIMIT_KEY_PREFIX`, default
   * `chat-outbox:rate-limit`). Instances that share budgets must share it; deployments that share
   * one Redis keep theirs apart with different prefixes. */
  rateLimitKeyPrefix: string;
  /** Operations one graphql-ws connection may hold at once: its open subscriptions and any query
   * or mutation it has running (`WS_MAX_SUBSCRIPTIONS_PER_CONNECTION`, default 50; 0 = off). */
  subscriptionsPerConnection: number;
  /** Subscriptions one user may hold open on this instance, over all its WebSocket connections
   * and SSE streams (`MAX_SUBSCRIPTIONS_PER_USER`, default 100; 0 = off). */
  subscriptionsPerUser: number;
  /** WebSocket connections one user may hold open on this instance (`WS_MAX_CONNECTIONS_PER_USER`,
   * default 20; 0 = off). One more is closed with 4430. */
  connectionsPerUser: number;
  /** How long a new WebSocket may wait before sending `connection_init`; then it is closed with
   * 4408 (`WS_CONNECTION_INIT_TIMEOUT_MS`, default 3000, graphql-ws's own default). */
  connectionInitTimeoutMs: number;
  /** Largest WebSocket message the server accepts; a larger one closes the socket with 1009
   * (`WS_MAX_MESSAGE_BYTES`, default 65536). A maximal message body (8000 characters) fits. */
  maxMessageBytes: number;
}

/** Only for local development; production refuses to start with it. */
export const DEV_JWT_SECRET = 'chat-outbox-development-secret-do-not-use-in-production';

type Env = Record<string, string | undefined>;

function readBoolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
  if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

function readInteger(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function readChoice<T extends string>(env: Env, name: string, choices: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!(choices as readonly string[]).includes(raw)) throw new ConfigError(`${name} must be one of ${choices.join(', ')}, got "${raw}"`);
  return raw as T;
}

function readDatabase(env: Env): DatabaseConfig {
  const url = env.DATABASE_URL;
  if (url) {
    if (!/^postgres(ql)?:\/\//.test(url)) {
      throw new ConfigError('DATABASE_URL must be a postgres:// or postgresql:// URL');
    }
    return { kind: 'postgresql', url };
  }
  return { kind: 'pglite', dataDir: env.PGLITE_DATA_DIR || './.data/pglite' };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function loadConfig(env: Env = process.env): AppConfig {
  const nodeEnv = env.NODE_ENV || 'development';
  const database = readDatabase(env);

  const jwtSecret = env.JWT_SECRET || (nodeEnv === 'production' ? '' : DEV_JWT_SECRET);
  if (!jwtSecret) throw new ConfigError('JWT_SECRET is required when NODE_ENV=production');
  if (jwtSecret.length < 32) throw new ConfigError('JWT_SECRET must be at least 32 characters long');

  const logLevel = env.LOG_LEVEL || 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }

  return {
    nodeEnv,
    database,
    migrateOnStart: readBoolean(env, 'MIGRATE_ON_START', true),
    seedDemo: readBoolean(env, 'SEED_DEMO', database.kind === 'pglite'),
    port: readInteger(env, 'PORT', 4000, 0, 65535),
    host: env.HOST || '0.0.0.0',
    jwtSecret,
    jwtIssuer: env.JWT_ISSUER || 'chat-outbox',
    logLevel,
    redisUrl: readRedisUrl(env),
    outbox: {
      enabled: readBoolean(env, 'OUTBOX_PUBLISHER_ENABLED', true),
      wake: readChoice(env, 'OUTBOX_WAKE', OUTBOX_WAKE_MODES, 'all'),
      batchSize: readInteger(env, 'OUTBOX_BATCH_SIZE', 500, 1, 10_000),
      pollIntervalMs: readInteger(env, 'OUTBOX_POLL_INTERVAL_MS', 1_000, 10, 3_600_000),
      maxAttempts: readInteger(env, 'OUTBOX_MAX_ATTEMPTS', 10, 1, 1_000),
      backoffBaseMs: readInteger(env, 'OUTBOX_BACKOFF_BASE_MS', 500, 1, 3_600_000),
      backoffMaxMs: readInteger(env, 'OUTBOX_BACKOFF_MAX_MS', 300_000, 1, 86_400_000),
      claimLeaseMs: readInteger(env, 'OUTBOX_CLAIM_LEASE_MS', 30_000, 100, 3_600_000),
      preparedStatements: readBoolean(env, 'OUTBOX_PREPARED_STATEMENTS', true),
    },
    subscriptions: {
      bufferSize: readInteger(env, 'SUBSCRIPTION_BUFFER_SIZE', 1_000, 1, 1_000_000),
      authRecheckMs: readInteger(env, 'SUBSCRIPTION_AUTH_RECHECK_MS', 5_000, 0, 3_600_000),
      keepAliveMs: readInteger(env, 'WS_KEEPALIVE_MS', 12_000, 0, 3_600_000),
    },
    abuse: {
      mutationsPerMinute: readInteger(env, 'RATE_LIMIT_MUTATIONS_PER_MINUTE', 600, 0, 1_000_000),
      subscribesPerMinute: readInteger(env, 'RATE_LIMIT_SUBSCRIBES_PER_MINUTE', 300, 0, 1_000_000),
      rateLimitKeyPrefix: env.RATE_LIMIT_KEY_PREFIX || 'chat-outbox:rate-limit',
      subscriptionsPerConnection: readInteger(env, 'WS_MAX_SUBSCRIPTIONS_PER_CONNECTION', 50, 0, 100_000),
      subscriptionsPerUser: readInteger(env, 'MAX_SUBSCRIPTIONS_PER_USER', 100, 0, 1_000_000),
      connectionsPerUser: readInteger(env, 'WS_MAX_CONNECTIONS_PER_USER', 20, 0, 100_000),
      connectionInitTimeoutMs: readInteger(env, 'WS_CONNECTION_INIT_TIMEOUT_MS', 3_000, 100, 60_000),
      maxMessageBytes: readInteger(env, 'WS_MAX_MESSAGE_BYTES', 65_536, 1_024, 16_777_216),
    },
    metricsEnabled: readBoolean(env, 'METRICS_ENABLED', true),
    healthCheckTimeoutMs: readInteger(env, 'HEALTH_CHECK_TIMEOUT_MS', 2_000, 100, 60_000),
    shutdownDrainMs: readInteger(env, 'SHUTDOWN_DRAIN_MS', 0, 0, 60_000),
    analyticsRollupIntervalMs: readInteger(env, 'ANALYTICS_ROLLUP_INTERVAL_MS', 1_000, 0, 3_600_000),
    analyticsRollupBatchSize: readInteger(env, 'ANALYTICS_ROLLUP_BATCH_SIZE', 5_000, 100, 1_000_000),
  };
}

function readRedisUrl(env: Env): string | null {
  const url = env.REDIS_URL;
  if (!url) return null;
  if (!/^rediss?:\/\//.test(url)) throw new ConfigError('REDIS_URL must be a redis:// or rediss:// URL');
  return url;
}

/** For entry points (server, CLI scripts): a wrong setting prints one line naming it and exits 1. */
export function loadConfigOrExit(env: Env = process.env): AppConfig {
  try {
    return loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`Configuration error: ${error.message}`);
    process.exit(1);
  }
}
