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
  /**
   * Pause of the analytics rollup worker once caught up (`ANALYTICS_ROLLUP_INTERVAL_MS`, default
   * 1000; 0 turns the worker off). Analytics stay exact and current without it, reading unfolded
   * events directly; the worker keeps that remainder small so queries stay fast.
   */
  analyticsRollupIntervalMs: number;
  /** Most events the rollup worker folds in one transaction (`ANALYTICS_ROLLUP_BATCH_SIZE`, default 5000). */
  analyticsRollupBatchSize: number;
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
    analyticsRollupIntervalMs: readInteger(env, 'ANALYTICS_ROLLUP_INTERVAL_MS', 1_000, 0, 3_600_000),
    analyticsRollupBatchSize: readInteger(env, 'ANALYTICS_ROLLUP_BATCH_SIZE', 5_000, 100, 1_000_000),
  };
}
