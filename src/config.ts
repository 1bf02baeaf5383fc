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
  /** `production` never falls back to the development JWT secret, not even for the embedded demo. */
  nodeEnv: string;
  /** Where the data lives: `DATABASE_URL` (PostgreSQL) or, without it, embedded PGlite in `PGLITE_DATA_DIR`. */
  database: DatabaseConfig;
  /** Apply pending migrations at start (`MIGRATE_ON_START`, default true). */
  migrateOnStart: boolean;
  /** Seed the demo project and users when the database has no projects (`SEED_DEMO`; default: on for PGlite only). */
  seedDemo: boolean;
  /** HTTP/WebSocket port (`PORT`, default 4000; 0 picks a free one). */
  port: number;
  /** Interface to bind (`HOST`, default 127.0.0.1: loopback only; containers set 0.0.0.0 explicitly). */
  host: string;
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
  operationLimits: OperationLimits;
  auth: AuthConfig;
  cors: CorsConfig;
}

/**
 * What one operation may ask of the server. Every operation in docs/ passes with room to spare
 * (a test checks); a request beyond any limit is refused before it runs, with QUERY_TOO_COMPLEX.
 */
export interface OperationLimits {
  /** Deepest selection nesting (`GRAPHQL_MAX_DEPTH`, default 12). */
  maxDepth: number;
  /** Most aliased fields in one document (`GRAPHQL_MAX_ALIASES`, default 20). */
  maxAliases: number;
  /** Most lexical tokens in one document; the parser stops there (`GRAPHQL_MAX_TOKENS`, default 2000). */
  maxTokens: number;
  /** Most directives in one document (`GRAPHQL_MAX_DIRECTIVES`, default 20). */
  maxDirectives: number;
  /**
   * Highest cost of one operation (`GRAPHQL_MAX_COST`, default 10000): every field costs 1, and a
   * connection's selection counts once per item of the page it asks for (`first`, default 20).
   */
  maxCost: number;
  /** Items assumed for a list that is not a paginated connection, in the cost (`GRAPHQL_LIST_SIZE_GUESS`, default 10). */
  listSizeGuess: number;
  /** Most mutation root fields in one request, so one request is a bounded number of writes (`GRAPHQL_MAX_MUTATION_FIELDS`, default 3). */
  maxMutationFields: number;
  /** Largest HTTP request body (`HTTP_MAX_BODY_BYTES`, default 131072 = 128 KiB); larger is 413 PAYLOAD_TOO_LARGE. */
  maxBodyBytes: number;
  /**
   * Deadline of one query or mutation (`OPERATION_TIMEOUT_MS`, default 10000; 0: none). Past it the
   * operation is answered with TIMEOUT and aborted, and PostgreSQL cancels a statement of the
   * request pool that runs longer (its `statement_timeout`).
   */
  operationTimeoutMs: number;
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
 * How bearer tokens are checked. At least one of `secret` and `jwks` is set for a server: HS256
 * tokens are checked with the secret, tokens signed with `jwks.algorithms` against the provider's
 * keys, chosen by the token header's `alg`, so a token can never pick the other kind of key.
 */
export interface AuthConfig {
  /**
   * HS256 shared secret (`JWT_SECRET`, at least 32 characters): development tokens, `npm run token`.
   * Without it HS256 tokens are refused. Falls back to the published DEV_JWT_SECRET only for the
   * embedded demo (no DATABASE_URL, loopback HOST, NODE_ENV not production).
   */
  secret: string | null;
  /** The secret in use is the published development one: fine for the demo, nothing else. */
  usingDevSecret: boolean;
  /** An OpenID Connect provider's signing keys (`JWT_JWKS_URL`); null: only HS256 tokens. */
  jwks: JwksConfig | null;
  /** `iss` every token must carry, set on tokens signed here (`JWT_ISSUER`; default `chat-outbox`, required with JWT_JWKS_URL). */
  issuer: string;
  /** `aud` a token must carry, one of these (`JWT_AUDIENCE`, comma-separated; required with JWT_JWKS_URL, optional otherwise). */
  audience: string[] | null;
  /** Leeway for `exp` and `nbf` between our clock and the issuer's (`JWT_CLOCK_TOLERANCE_S`, default 30). */
  clockToleranceS: number;
}

export interface JwksConfig {
  /** `JWT_JWKS_URL`: https, or http to a loopback address only (keys fetched in the clear could be swapped). */
  url: URL;
  /** Signature algorithms accepted with these keys (`JWT_JWKS_ALGORITHMS`, default RS256,ES256,EdDSA); never HS*, never none. */
  algorithms: string[];
  /**
   * After a fetch, how long a token with an unknown `kid` is refused without fetching again
   * (`JWT_JWKS_COOLDOWN_MS`, default 30000). It keeps made-up `kid`s from turning every request
   * into a call to the provider; a newly published key is found by the first token that needs it
   * once the cooldown has passed.
   */
  cooldownMs: number;
  /** Keys are fetched again on the next request once the set is older than this (`JWT_JWKS_CACHE_MAX_AGE_MS`, default 600000), so a withdrawn key stops working. */
  cacheMaxAgeMs: number;
}

/** Asymmetric JWS algorithms a JWKS key may verify; HS* (a shared secret) and `none` are not among them. */
export const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
const DEFAULT_JWKS_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'];

/**
 * Cross-origin browser access (`CORS_ORIGINS`, comma-separated exact origins such as
 * `https://app.example.com`, or `*` alone). Default: none; same-origin pages (GraphiQL) need none.
 * Credentials (cookies) are never allowed: the API authenticates with the Authorization header only.
 */
export interface CorsConfig {
  origins: '*' | string[];
}

/** Published in the source: used only by the embedded demo on loopback; anything else refuses it. */
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

export interface LoadOptions {
  /**
   * Default true: refuse to start without a way to check tokens. Tools that neither serve nor sign
   * (the outbox CLI, migrations) pass false and may get `auth` with neither a secret nor JWKS.
   */
  requireAuth?: boolean;
}

export function loadConfig(env: Env = process.env, options: LoadOptions = {}): AppConfig {
  const nodeEnv = env.NODE_ENV || 'development';
  const database = readDatabase(env);

  const host = env.HOST || '127.0.0.1';

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
    host,
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
    operationLimits: {
      maxDepth: readInteger(env, 'GRAPHQL_MAX_DEPTH', 12, 1, 1_000),
      maxAliases: readInteger(env, 'GRAPHQL_MAX_ALIASES', 20, 0, 10_000),
      maxTokens: readInteger(env, 'GRAPHQL_MAX_TOKENS', 2_000, 10, 1_000_000),
      maxDirectives: readInteger(env, 'GRAPHQL_MAX_DIRECTIVES', 20, 0, 10_000),
      maxCost: readInteger(env, 'GRAPHQL_MAX_COST', 10_000, 1, 100_000_000),
      listSizeGuess: readInteger(env, 'GRAPHQL_LIST_SIZE_GUESS', 10, 1, 10_000),
      maxMutationFields: readInteger(env, 'GRAPHQL_MAX_MUTATION_FIELDS', 3, 1, 1_000),
      maxBodyBytes: readInteger(env, 'HTTP_MAX_BODY_BYTES', 131_072, 1_024, 104_857_600),
      operationTimeoutMs: readInteger(env, 'OPERATION_TIMEOUT_MS', 10_000, 0, 3_600_000),
    },
    metricsEnabled: readBoolean(env, 'METRICS_ENABLED', true),
    healthCheckTimeoutMs: readInteger(env, 'HEALTH_CHECK_TIMEOUT_MS', 2_000, 100, 60_000),
    shutdownDrainMs: readInteger(env, 'SHUTDOWN_DRAIN_MS', 0, 0, 60_000),
    analyticsRollupIntervalMs: readInteger(env, 'ANALYTICS_ROLLUP_INTERVAL_MS', 1_000, 0, 3_600_000),
    analyticsRollupBatchSize: readInteger(env, 'ANALYTICS_ROLLUP_BATCH_SIZE', 5_000, 100, 1_000_000),
    auth: readAuth(env, { nodeEnv, database, host }, options),
    cors: readCors(env),
  };
}

/** 127.0.0.0/8, ::1 and `localhost`: what only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127(\.\d{1,3}){3}$/.test(bare) || bare === '::ffff:127.0.0.1';
}

/** A comma-separated list; unset, empty or only commas: null (the default applies). */
function readList(env: Env, name: string): string[] | null {
  const items = (env[name] ?? '').split(',').map((item) => item.trim()).filter(Boolean);
  return items.length ? items : null;
}

function readAuth(env: Env, where: { nodeEnv: string; database: DatabaseConfig; host: string }, options: LoadOptions): AuthConfig {
  const jwks = readJwks(env);
  // The demo secret is printed in this file: only a setup nobody else can reach may use it.
  const exposure =
    where.nodeEnv === 'production'
      ? 'NODE_ENV=production'
      : where.database.kind === 'postgresql'
        ? 'DATABASE_URL is set'
        : isLoopbackHost(where.host)
          ? null
          : `HOST=${where.host} is reachable from other machines`;
  let secret = env.JWT_SECRET || null;
  if (secret !== null && secret.length < 32) throw new ConfigError('JWT_SECRET must be at least 32 characters long');
  if (secret === DEV_JWT_SECRET && exposure) {
    throw new ConfigError(`JWT_SECRET is the published development secret, refused because ${exposure}: set a random string of at least 32 characters`);
  }
  if (secret === null && jwks === null) {
    if (!exposure) secret = DEV_JWT_SECRET;
    else if (options.requireAuth !== false) {
      throw new ConfigError(
        `set JWT_SECRET (a random string of at least 32 characters) or JWT_JWKS_URL (with JWT_ISSUER and JWT_AUDIENCE): ${exposure}, so the published development secret is not used`,
      );
    }
  }

  const issuer = env.JWT_ISSUER || null;
  const audience = readList(env, 'JWT_AUDIENCE');
  // A provider signs tokens for every application it serves: without both checks, a token it
  // issued to another application (or another tenant) would be accepted here.
  if (jwks && !issuer) throw new ConfigError('JWT_ISSUER is required with JWT_JWKS_URL: the provider\'s issuer, exactly as in its tokens\' "iss"');
  if (jwks && !audience) throw new ConfigError('JWT_AUDIENCE is required with JWT_JWKS_URL: the "aud" your provider puts in tokens for this API');

  return {
    secret,
    usingDevSecret: secret === DEV_JWT_SECRET,
    jwks,
    issuer: issuer ?? 'chat-outbox',
    audience,
    clockToleranceS: readInteger(env, 'JWT_CLOCK_TOLERANCE_S', 30, 0, 300),
  };
}

function readJwks(env: Env): JwksConfig | null {
  const raw = env.JWT_JWKS_URL;
  if (!raw) return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`JWT_JWKS_URL must be a URL, got "${raw}"`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    throw new ConfigError('JWT_JWKS_URL must be an https:// URL (http:// only to a loopback address)');
  }
  const algorithms = readList(env, 'JWT_JWKS_ALGORITHMS') ?? DEFAULT_JWKS_ALGORITHMS;
  for (const alg of algorithms) {
    if (!(JWKS_ALGORITHMS as readonly string[]).includes(alg)) {
      throw new ConfigError(`JWT_JWKS_ALGORITHMS may list only ${JWKS_ALGORITHMS.join(', ')} (HS256 tokens are checked with JWT_SECRET), got "${alg}"`);
    }
  }
  return {
    url,
    algorithms,
    cooldownMs: readInteger(env, 'JWT_JWKS_COOLDOWN_MS', 30_000, 0, 3_600_000),
    cacheMaxAgeMs: readInteger(env, 'JWT_JWKS_CACHE_MAX_AGE_MS', 600_000, 1_000, 86_400_000),
  };
}

function readCors(env: Env): CorsConfig {
  const origins = readList(env, 'CORS_ORIGINS') ?? [];
  if (origins.includes('*')) {
    if (origins.length > 1) throw new ConfigError('CORS_ORIGINS is either * alone or a list of exact origins, not both');
    return { origins: '*' };
  }
  for (const origin of origins) {
    let parsed: URL | null = null;
    try {
      parsed = new URL(origin);
    } catch {}
    // Browsers send the origin as scheme://host[:port], with no path and no trailing slash: anything
    // else would never match, so it is refused here rather than silently ignored.
    if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.origin !== origin) {
      throw new ConfigError(`CORS_ORIGINS must list exact origins such as https://app.example.com (no path, no trailing slash), got "${origin}"`);
    }
  }
  return { origins };
}

function readRedisUrl(env: Env): string | null {
  const url = env.REDIS_URL;
  if (!url) return null;
  if (!/^rediss?:\/\//.test(url)) throw new ConfigError('REDIS_URL must be a redis:// or rediss:// URL');
  return url;
}

/** For entry points (server, CLI scripts): a wrong setting prints one line naming it and exits 1. */
export function loadConfigOrExit(env: Env = process.env, options: LoadOptions = {}): AppConfig {
  try {
    return loadConfig(env, options);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`Configuration error: ${error.message}`);
    process.exit(1);
  }
}
