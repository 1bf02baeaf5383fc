/**
 * The one place that reads `process.env`. Every setting is declared once, in `SETTINGS` below: its
 * environment variable, how its value is parsed, the values it allows, its default and a one-line
 * doc. That one list gives
 * - the `AppConfig` type: its shape is the shape of `SETTINGS`, each field typed by its parser;
 * - the validation at start-up: a wrong value stops the process with a ConfigError that names the
 *   variable (`loadConfig`);
 * - the settings table in docs/operations.md, written by `npm run docs:settings` (a test fails
 *   when the committed table is stale).
 *
 * Adding a setting is one declaration: put `name: integer({ env: 'MY_SETTING', default: 10,
 * min: 1, max: 100, doc: '…' })` (or `boolean`, `choice`, `text`, `url`, `secret`) at the place in
 * `SETTINGS` where the field belongs in `AppConfig` (a nested object makes a nested section, as
 * `outbox` does), then run `npm run docs:settings`. Callers read `config.myName` at once.
 *
 * Converting a setting written the old way (a field in an interface with a JSDoc, plus a
 * `readInteger(env, 'NAME', fallback, min, max)` / `readBoolean` / `readChoice` call in
 * `loadConfig`): delete both, and declare it in `SETTINGS` with the same arguments by name
 * (`integer({ env: 'NAME', default: fallback, min, max, doc })`), the JSDoc's sentence becoming
 * `doc`. A section such as `auth: { cors: { … } }` is a nested object of declarations.
 *
 * Rules that involve more than one setting (which JWT secret may be used where, JWKS needing an
 * issuer and audience, SEED_DEMO's default depending on DATABASE_URL, the database choice) stay
 * explicit code in `loadConfig`, after every
 * setting has been parsed on its own; such a setting declares its value as "unset" (null) and
 * says in `defaultText` what the rule picks.
 */

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

/** One environment variable: how it is read, what it may be, its default and what it means. */
export class Setting<T> {
  /** The environment variable. */
  readonly env: string;
  /** One line for the settings table (markdown): what it does and when to change it. */
  readonly doc: string;
  /** The default as the table shows it. */
  readonly defaultText: string;
  /** The allowed values as the table shows them; empty when the doc says it. */
  readonly allowedText: string;
  /** The value when the variable is unset or empty. */
  readonly fallback: T;
  /** Parses a non-empty value; throws a ConfigError that names the variable. */
  readonly parse: (raw: string) => T;

  constructor(spec: { env: string; doc: string; defaultText: string; allowedText?: string; fallback: T; parse: (raw: string) => T }) {
    this.env = spec.env;
    this.doc = spec.doc;
    this.defaultText = spec.defaultText;
    this.allowedText = spec.allowedText ?? '';
    this.fallback = spec.fallback;
    this.parse = spec.parse;
  }

  read(env: Env): T {
    const raw = env[this.env];
    return raw === undefined || raw === '' ? this.fallback : this.parse(raw);
  }
}

interface Common {
  env: string;
  doc: string;
}

const TRUE_WORDS = ['1', 'true', 'yes', 'on'];
const FALSE_WORDS = ['0', 'false', 'no', 'off'];

function parseBoolean(name: string, raw: string): boolean {
  if (TRUE_WORDS.includes(raw.toLowerCase())) return true;
  if (FALSE_WORDS.includes(raw.toLowerCase())) return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

/** `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, in any case. */
function boolean(spec: Common & { default: boolean }): Setting<boolean> {
  return new Setting({ ...spec, defaultText: `\`${spec.default}\``, fallback: spec.default, parse: (raw) => parseBoolean(spec.env, raw) });
}

/** A boolean whose default a cross-field rule in `loadConfig` decides (unset reads as null). */
function optionalBoolean(spec: Common & { defaultText: string }): Setting<boolean | null> {
  return new Setting<boolean | null>({ ...spec, fallback: null, parse: (raw) => parseBoolean(spec.env, raw) });
}

/** A whole number in [min, max]. */
function integer(spec: Common & { default: number; min: number; max: number }): Setting<number> {
  const { env, min, max } = spec;
  return new Setting({
    ...spec,
    defaultText: `\`${spec.default}\``,
    allowedText: `${min}–${max}`,
    fallback: spec.default,
    parse: (raw) => {
      const value = Number(raw);
      if (!Number.isInteger(value) || value < min || value > max) {
        throw new ConfigError(`${env} must be an integer from ${min} to ${max}, got "${raw}"`);
      }
      return value;
    },
  });
}

/** One of a fixed list of words; the setting's type is their union. */
function choice<const C extends readonly string[]>(spec: Common & { choices: C; default: C[number] }): Setting<C[number]> {
  const { env, choices } = spec;
  return new Setting<C[number]>({
    ...spec,
    defaultText: `\`${spec.default}\``,
    allowedText: choices.map((word) => `\`${word}\``).join(', '),
    fallback: spec.default,
    parse: (raw) => {
      if (!(choices as readonly string[]).includes(raw)) throw new ConfigError(`${env} must be one of ${choices.join(', ')}, got "${raw}"`);
      return raw;
    },
  });
}

/** Any text. */
function text(spec: Common & { default: string }): Setting<string> {
  return new Setting({ ...spec, defaultText: `\`${spec.default}\``, fallback: spec.default, parse: (raw) => raw });
}

/** Any text, or null when unset (a cross-field rule in `loadConfig` decides what that means). */
function optionalText(spec: Common & { defaultText: string; allowedText?: string }): Setting<string | null> {
  return new Setting<string | null>({ ...spec, fallback: null, parse: (raw) => raw });
}

/** A comma-separated list; unset, empty or only commas: null (the default applies). */
function list(spec: Common & { defaultText: string; allowedText?: string }): Setting<string[] | null> {
  return new Setting<string[] | null>({
    ...spec,
    fallback: null,
    parse: (raw) => {
      const items = raw.split(',').map((item) => item.trim()).filter(Boolean);
      return items.length ? items : null;
    },
  });
}

/**
 * A URL with one of the given schemes, or null when unset. The message leaves the value out: a
 * connection URL may carry a password.
 */
function url(spec: Common & { schemes: readonly string[] }): Setting<string | null> {
  const { env, schemes } = spec;
  return new Setting<string | null>({
    ...spec,
    defaultText: '*(unset)*',
    allowedText: schemes.map((scheme) => `\`${scheme}://…\``).join(' or '),
    fallback: null,
    parse: (raw) => {
      if (!schemes.some((scheme) => raw.startsWith(`${scheme}://`))) {
        throw new ConfigError(`${env} must be a ${schemes.map((scheme) => `${scheme}://`).join(' or ')} URL`);
      }
      return raw;
    },
  });
}

/** A secret of at least `minLength` characters, or null when unset; never echoed in a message. */
function secret(spec: Common & { minLength: number; defaultText: string }): Setting<string | null> {
  const { env, minLength } = spec;
  return new Setting<string | null>({
    ...spec,
    fallback: null,
    allowedText: `≥ ${minLength} characters`,
    parse: (raw) => {
      if (raw.length < minLength) throw new ConfigError(`${env} must be at least ${minLength} characters long`);
      return raw;
    },
  });
}

export const OUTBOX_WAKE_MODES = ['all', 'in-process', 'poll'] as const;
export type OutboxWake = (typeof OUTBOX_WAKE_MODES)[number];

export const TRACE_SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;
export type TraceSampler = (typeof TRACE_SAMPLERS)[number];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Published in the source: used only by the embedded demo on loopback; anything else refuses it. */
export const DEV_JWT_SECRET = 'chat-outbox-development-secret-do-not-use-in-production';

/** Every setting, in the shape of `AppConfig` and in the order of the docs table. */
export const SETTINGS = {
  nodeEnv: text({ env: 'NODE_ENV', default: 'development', doc: '`production` never falls back to the development JWT secret, not even for the embedded demo' }),
  database: {
    url: url({
      env: 'DATABASE_URL',
      schemes: ['postgres', 'postgresql'],
      doc: 'PostgreSQL to store everything in; unset means the embedded PostgreSQL (PGlite)',
    }),
    pgliteDataDir: text({
      env: 'PGLITE_DATA_DIR',
      default: './.data/pglite',
      doc: 'data folder of the embedded database (only without `DATABASE_URL`)',
    }),
    preparedStatements: optionalBoolean({
      env: 'DB_PREPARED_STATEMENTS',
      defaultText: '`true` (`false` when only the deprecated `OUTBOX_PREPARED_STATEMENTS=false` is set)',
      doc: "run the hot statements (`sendMessage`'s write, the publisher's cycle, history pages, membership checks) as named prepared statements: parsed once per connection and planned from a cached plan, where planning costs more than running them. Set `false` behind a pooler in transaction mode that does not keep prepared statements (PgBouncer before 1.21, or without `max_prepared_statements`)",
    }),
  },
  migrateOnStart: boolean({ env: 'MIGRATE_ON_START', default: true, doc: 'apply pending migrations at start' }),
  seedDemo: optionalBoolean({
    env: 'SEED_DEMO',
    defaultText: '`true` on PGlite, `false` on PostgreSQL',
    doc: 'seed a demo project and users when the database has no project',
  }),
  port: integer({ env: 'PORT', default: 4000, min: 0, max: 65_535, doc: 'HTTP and WebSocket port; `0` picks a free one' }),
  host: text({
    env: 'HOST',
    default: '127.0.0.1',
    doc: 'interface to bind: loopback by default, so only this machine reaches it; containers and hosts behind a proxy set `0.0.0.0` (which also needs `JWT_SECRET` or `JWT_JWKS_URL`)',
  }),
  auth: {
    secret: secret({
      env: 'JWT_SECRET',
      minLength: 32,
      defaultText: '*(unset)*: the published development secret, for the embedded loopback demo only',
      doc: 'HS256 secret for bearer tokens (development tokens, `npm run token`). This or `JWT_JWKS_URL` is required with `DATABASE_URL`, a non-loopback `HOST` or `NODE_ENV=production`',
    }),
    issuer: optionalText({
      env: 'JWT_ISSUER',
      defaultText: '`chat-outbox`; required with `JWT_JWKS_URL`',
      doc: '`iss` every token must carry, and tokens signed here get: with a JWKS, the provider\'s issuer exactly as in its tokens (trailing slash included)',
    }),
    audience: list({
      env: 'JWT_AUDIENCE',
      defaultText: '*(unset)*; required with `JWT_JWKS_URL`',
      allowedText: 'comma-separated',
      doc: 'accepted `aud` values; the first is put on tokens signed here',
    }),
    clockToleranceS: integer({ env: 'JWT_CLOCK_TOLERANCE_S', default: 30, min: 0, max: 300, doc: "leeway on `exp` and `nbf` between this server's clock and the issuer's" }),
    jwks: {
      url: optionalText({
        env: 'JWT_JWKS_URL',
        defaultText: '*(unset)*',
        allowedText: '`https://…` (`http://` to loopback only)',
        doc: "an OpenID Connect provider's key set (`jwks_uri` in its `/.well-known/openid-configuration`): tokens signed with `JWT_JWKS_ALGORITHMS` are checked against its keys, fetched and cached with rotation ([authentication](#authentication))",
      }),
      algorithms: list({
        env: 'JWT_JWKS_ALGORITHMS',
        defaultText: '`RS256,ES256,EdDSA`',
        allowedText: 'RS*, PS*, ES*, EdDSA, Ed25519',
        doc: 'asymmetric algorithms accepted with JWKS keys; HS* (checked with `JWT_SECRET`) and `none` are refused',
      }),
      cooldownMs: integer({
        env: 'JWT_JWKS_COOLDOWN_MS',
        default: 30_000,
        min: 0,
        max: 3_600_000,
        doc: 'after a key-set fetch, how long a token with an unknown `kid` is refused without fetching again (made-up `kid`s cannot turn every request into a call to the provider)',
      }),
      cacheMaxAgeMs: integer({
        env: 'JWT_JWKS_CACHE_MAX_AGE_MS',
        default: 600_000,
        min: 1_000,
        max: 86_400_000,
        doc: 'the key set is fetched again on the next request once older than this, so a withdrawn key stops working',
      }),
    },
  },
  cors: {
    origins: list({
      env: 'CORS_ORIGINS',
      defaultText: '*(unset)*: no cross-origin access',
      allowedText: 'exact origins, comma-separated, or `*` alone',
      doc: 'browser origins allowed to call the API (e.g. `https://app.example.com`); credentials are never allowed. Same-origin GraphiQL needs none',
    }),
  },
  logLevel: choice({ env: 'LOG_LEVEL', choices: LOG_LEVELS, default: 'info', doc: 'pino log level' }),
  redisUrl: url({
    env: 'REDIS_URL',
    schemes: ['redis', 'rediss'],
    doc: 'the pub/sub bus between instances. Unset means an in-memory bus, which only reaches subscribers of the same process',
  }),
  metricsEnabled: boolean({
    env: 'METRICS_ENABLED',
    default: true,
    doc: 'serve `GET /metrics`; it needs no token, so turn it off where the port is public and nothing scrapes it',
  }),
  tracing: {
    sdkDisabled: boolean({
      env: 'OTEL_SDK_DISABLED',
      default: false,
      doc: 'OpenTelemetry: `true` turns tracing off whatever else is set',
    }),
    exporter: optionalText({
      env: 'OTEL_TRACES_EXPORTER',
      defaultText: '`otlp` when an OTLP endpoint is set, else `none`',
      allowedText: '`otlp`, `none`',
      doc: 'OpenTelemetry: where spans go. Tracing is on only with `otlp` (OTLP/protobuf over HTTP); unset and no endpoint below means off, with no span created',
    }),
    endpoint: url({
      env: 'OTEL_EXPORTER_OTLP_ENDPOINT',
      schemes: ['http', 'https'],
      doc: 'OpenTelemetry: the collector\'s OTLP/HTTP base URL (`/v1/traces` is appended), e.g. `http://collector:4318`. Setting it turns tracing on. Headers, timeout, compression and TLS files come from the other standard `OTEL_EXPORTER_OTLP_*` variables, which the exporter reads itself',
    }),
    tracesEndpoint: url({
      env: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
      schemes: ['http', 'https'],
      doc: 'OpenTelemetry: the full URL for spans, used as is; overrides `OTEL_EXPORTER_OTLP_ENDPOINT` and also turns tracing on',
    }),
    serviceName: text({ env: 'OTEL_SERVICE_NAME', default: 'chat-outbox', doc: 'OpenTelemetry: `service.name` of every span' }),
    sampler: choice({
      env: 'OTEL_TRACES_SAMPLER',
      choices: TRACE_SAMPLERS,
      default: 'parentbased_always_on',
      doc: 'OpenTelemetry: which traces are recorded. `parentbased_*` follow a sampled `traceparent` header of the caller',
    }),
    samplerArg: optionalText({
      env: 'OTEL_TRACES_SAMPLER_ARG',
      defaultText: '`1.0`',
      allowedText: '0 to 1',
      doc: 'OpenTelemetry: the ratio of traces recorded by the `*traceidratio` samplers',
    }),
  },
  healthCheckTimeoutMs: integer({
    env: 'HEALTH_CHECK_TIMEOUT_MS',
    default: 2_000,
    min: 100,
    max: 60_000,
    doc: "how long `/health/ready` waits for each database check; keep it below the probe's timeout",
  }),
  /**
   * Deadlines on every network wait (`0` turns one off). A half-open connection (a NAT timeout, a
   * load balancer's idle cut, a failover) answers nothing and reports nothing: without these, a
   * query or a Redis command on it waits forever.
   */
  network: {
    dbConnectTimeoutMs: integer({
      env: 'DB_CONNECT_TIMEOUT_MS',
      default: 5_000,
      min: 0,
      max: 600_000,
      doc: 'longest wait for a new PostgreSQL connection (TCP, TLS and start-up) on every pool and the LISTEN connection. `0`: no deadline',
    }),
    dbQueryTimeoutMs: integer({
      env: 'DB_QUERY_TIMEOUT_MS',
      default: 30_000,
      min: 0,
      max: 3_600_000,
      doc: "longest wait for a PostgreSQL answer, on the client: a query without one fails and its connection is destroyed, not reused (a server-side `statement_timeout` cannot help when the answer is lost on the way). Keep it above `GRAPHQL_OPERATION_TIMEOUT_MS`. `0`: no deadline",
    }),
    tcpKeepAliveMs: integer({
      env: 'TCP_KEEPALIVE_MS',
      default: 10_000,
      min: 0,
      max: 3_600_000,
      doc: 'idle time before TCP keepalive probes start on every PostgreSQL and Redis connection: the second line behind the deadlines, for peers that vanished. `0`: off',
    }),
    redisCommandTimeoutMs: integer({
      env: 'REDIS_COMMAND_TIMEOUT_MS',
      default: 5_000,
      min: 0,
      max: 600_000,
      doc: 'longest wait for the answer to a Redis command (a publish, a subscribe, a rate-limit count); then it fails and the connection is replaced. `0`: no deadline',
    }),
    redisConnectTimeoutMs: integer({
      env: 'REDIS_CONNECT_TIMEOUT_MS',
      default: 5_000,
      min: 100,
      max: 600_000,
      doc: 'longest wait for a new Redis connection before it is retried',
    }),
    redisPingIntervalMs: integer({
      env: 'REDIS_PING_INTERVAL_MS',
      default: 5_000,
      min: 0,
      max: 600_000,
      doc: "the subscribing Redis connection sends nothing of its own, so it is pinged this often; without an answer within `REDIS_COMMAND_TIMEOUT_MS` it is replaced and live streams fill the gap from the database. `0`: off",
    }),
  },
  shutdownDrainMs: integer({
    env: 'SHUTDOWN_DRAIN_MS',
    default: 0,
    min: 0,
    max: 60_000,
    doc: "on SIGTERM, how long to keep serving with `/health/ready` already 503, so load balancers stop routing here first (in Kubernetes at least the readiness probe's period × failure threshold)",
  }),
  outbox: {
    enabled: boolean({
      env: 'OUTBOX_PUBLISHER_ENABLED',
      default: true,
      doc: 'run an OutboxPublisher in this process. Any number of processes may run one against the same database',
    }),
    wake: choice({
      env: 'OUTBOX_WAKE',
      choices: OUTBOX_WAKE_MODES,
      default: 'all',
      doc: "how the publisher learns of new events besides polling. `all`: right after a commit in this process, and on PostgreSQL also by LISTEN/NOTIFY from other processes. `in-process`: only this process's commits (behind PgBouncer in transaction mode, where LISTEN cannot work; other processes' events wait for the poll). `poll`: polling alone (for measuring)",
    }),
    batchSize: integer({
      env: 'OUTBOX_BATCH_SIZE',
      default: 500,
      min: 1,
      max: 10_000,
      doc: 'most events claimed per cycle; one claim, one publish call and one "published" update per batch',
    }),
    pollIntervalMs: integer({
      env: 'OUTBOX_POLL_INTERVAL_MS',
      default: 1_000,
      min: 10,
      max: 3_600_000,
      doc: 'the publisher looks for due events at least this often, whatever wake-ups arrive; it is also the longest wait for a retry that has become due',
    }),
    maxAttempts: integer({
      env: 'OUTBOX_MAX_ATTEMPTS',
      default: 10,
      min: 1,
      max: 1_000,
      doc: 'publish attempts before an event is marked `failed`',
    }),
    backoffBaseMs: integer({
      env: 'OUTBOX_BACKOFF_BASE_MS',
      default: 500,
      min: 1,
      max: 3_600_000,
      doc: 'delay before the first retry; it doubles with each attempt, with jitter',
    }),
    backoffMaxMs: integer({
      env: 'OUTBOX_BACKOFF_MAX_MS',
      default: 300_000,
      min: 1,
      max: 86_400_000,
      doc: 'longest retry delay (5 minutes)',
    }),
    claimLeaseMs: integer({
      env: 'OUTBOX_CLAIM_LEASE_MS',
      default: 30_000,
      min: 100,
      max: 3_600_000,
      doc: "how long a claim holds an event. A dead publisher's events are claimed again after this. Keep it well above the time one publish call takes",
    }),
    cycleTimeoutMs: integer({
      env: 'OUTBOX_CYCLE_TIMEOUT_MS',
      default: 10_000,
      min: 0,
      max: 3_600_000,
      doc: "longest one publisher cycle (claim, publish, mark) may take. One that runs past it is abandoned: its connections are destroyed, its claimed events wait for their lease (`OUTBOX_CLAIM_LEASE_MS`), the next cycle runs on a fresh connection, and `/health/ready` fails until a cycle completes in time. Keep it below the lease and below `DB_QUERY_TIMEOUT_MS`. `0`: no deadline",
    }),
    listenPingMs: integer({
      env: 'OUTBOX_LISTEN_PING_MS',
      default: 10_000,
      min: 0,
      max: 3_600_000,
      doc: 'the LISTEN connection only receives, so it runs `select 1` this often; without an answer within `DB_CONNECT_TIMEOUT_MS` (or 5 s) it is replaced and the publisher sweeps for what it missed. `0`: off',
    }),
    preparedStatements: optionalBoolean({
      env: 'OUTBOX_PREPARED_STATEMENTS',
      defaultText: '`DB_PREPARED_STATEMENTS`',
      doc: '**deprecated**, to be removed in the next release: use `DB_PREPARED_STATEMENTS`. Set, it decides for the publisher alone; `false` with `DB_PREPARED_STATEMENTS` unset also turns prepared statements off for the API, as behind a pooler it must',
    }),
  },
  subscriptions: {
    bufferSize: integer({
      env: 'SUBSCRIPTION_BUFFER_SIZE',
      default: 1_000,
      min: 1,
      max: 1_000_000,
      doc: 'events one subscription may hold for a client that is not keeping up; one more ends the subscription with `SLOW_CONSUMER`',
    }),
    authRecheckMs: integer({
      env: 'SUBSCRIPTION_AUTH_RECHECK_MS',
      default: 5_000,
      min: 0,
      max: 3_600_000,
      doc: "re-check a subscriber's project membership on an event when the last check is older than this when the event arrives (one read of the project's member list version, shared by its subscribers on the instance; the list itself only when the version moved); `0` checks on every event. The token's expiry is checked on every event regardless",
    }),
    writeTimeoutMs: integer({
      env: 'SUBSCRIPTION_WRITE_TIMEOUT_MS',
      default: 15_000,
      min: 0,
      max: 3_600_000,
      doc: 'a graphql-ws socket or SSE response whose queued output neither drains nor shrinks for this long is cut (its peer stopped reading, or the connection is half-open); the client resumes with `after`. `0` turns it off',
    }),
    keepAliveMs: integer({
      env: 'WS_KEEPALIVE_MS',
      default: 12_000,
      min: 0,
      max: 3_600_000,
      doc: "graphql-ws: WebSocket ping interval; a socket that has not answered by the next ping is terminated. `0` turns it off. (SSE keep-alive is yoga's fixed 12 s comment line)",
    }),
  },
  eventRetentionHours: integer({
    env: 'EVENT_RETENTION_HOURS',
    default: 0,
    min: 0,
    max: 876_000,
    doc: 'events older than this (by `created_at`) are removed from the event log, in batches, once they are delivered and folded into the analytics rollups; `0` keeps every event. Clients resuming from an older cursor get `CURSOR_EXPIRED` ([operations.md](operations.md#retention))',
  }),
  eventRetentionBatchSize: integer({
    env: 'EVENT_RETENTION_BATCH_SIZE',
    default: 5_000,
    min: 1,
    max: 1_000_000,
    doc: 'most events one retention statement removes (it looks at no more than four times this many of the oldest events)',
  }),
  eventRetentionIntervalMs: integer({
    env: 'EVENT_RETENTION_INTERVAL_MS',
    default: 60_000,
    min: 1_000,
    max: 86_400_000,
    doc: 'pause of the retention worker once nothing more has expired',
  }),
  analyticsRollupIntervalMs: integer({
    env: 'ANALYTICS_ROLLUP_INTERVAL_MS',
    default: 1_000,
    min: 0,
    max: 3_600_000,
    doc: 'pause of the analytics rollup worker once it has caught up; `0` turns it off. Analytics stay exact without it (they read unfolded events directly); the worker keeps that remainder small so `projectAnalytics` stays fast ([analytics.md](analytics.md))',
  }),
  analyticsRollupBatchSize: integer({
    env: 'ANALYTICS_ROLLUP_BATCH_SIZE',
    default: 5_000,
    min: 100,
    max: 1_000_000,
    doc: 'most events the rollup worker folds into the running totals in one transaction',
  }),
  /** The agent runtime: replies to committed user messages (docs/agents.md). */
  agents: {
    enabled: boolean({ env: 'AGENT_RUNTIME_ENABLED', default: true, doc: 'run the agent runtime in this process, so active agents answer committed user messages; several processes may run it' }),
    concurrency: integer({ env: 'AGENT_RUNTIME_CONCURRENCY', default: 8, min: 1, max: 256, doc: 'replies this process writes at once (one per session at a time); a slow agent holds one of them' }),
    pollIntervalMs: integer({ env: 'AGENT_RUNTIME_POLL_INTERVAL_MS', default: 500, min: 10, max: 60_000, doc: 'how often the runtime looks for new user messages and due retries when no local commit woke it' }),
    maxAttempts: integer({ env: 'AGENT_REPLY_MAX_ATTEMPTS', default: 3, min: 1, max: 20, doc: 'attempts at one reply (counted when an attempt starts, so a crash counts); after the last, a `system` message says the agent could not answer' }),
    backoffBaseMs: integer({ env: 'AGENT_REPLY_BACKOFF_BASE_MS', default: 1_000, min: 0, max: 600_000, doc: 'wait before the second attempt at a reply; doubles per attempt' }),
    backoffMaxMs: integer({ env: 'AGENT_REPLY_BACKOFF_MAX_MS', default: 30_000, min: 0, max: 3_600_000, doc: 'longest wait between attempts at a reply' }),
    leaseMs: integer({ env: 'AGENT_REPLY_LEASE_MS', default: 30_000, min: 200, max: 3_600_000, doc: 'how long a claimed reply stays with its process without a heartbeat; a process killed mid-reply has it retried from scratch after this' }),
    replyTimeoutMs: integer({ env: 'AGENT_REPLY_TIMEOUT_MS', default: 120_000, min: 100, max: 3_600_000, doc: 'longest one attempt at a reply may take (the adapter call, streaming included) before it is abandoned and retried' }),
    contextMessages: integer({ env: 'AGENT_CONTEXT_MESSAGES', default: 20, min: 1, max: 500, doc: "the session's most recent messages an agent is given, the one it answers included" }),
    contextMaxChars: integer({ env: 'AGENT_CONTEXT_MAX_CHARS', default: 16_000, min: 100, max: 1_000_000, doc: "character budget of those messages: the oldest are left out first (the one answered is always kept)" }),
    openai: {
      baseUrl: text({ env: 'AGENT_OPENAI_BASE_URL', default: 'https://api.openai.com/v1', doc: 'base URL of the OpenAI-compatible server that `openai-compatible` agents call' }),
      apiKey: secret({ env: 'AGENT_OPENAI_API_KEY', minLength: 1, defaultText: '*(unset)*: requests carry no key (local servers)', doc: 'API key for that server; never shown in responses or logs' }),
    },
  },
  /**
   * Abuse limits for an instance that faces the internet (`0` turns a count off). Rates are per
   * user and, with `REDIS_URL`, shared by every instance; concurrency limits are per instance and
   * released when the subscription or socket ends.
   */
  abuse: {
    mutationsPerMinute: integer({
      env: 'RATE_LIMIT_MUTATIONS_PER_MINUTE',
      default: 600,
      min: 0,
      max: 1_000_000,
      doc: 'mutation root fields one user may run per one-minute window, all instances together (five `sendMessage` fields cost five); over it: 429 `RATE_LIMITED`. `0`: off',
    }),
    subscribesPerMinute: integer({
      env: 'RATE_LIMIT_SUBSCRIBES_PER_MINUTE',
      default: 300,
      min: 0,
      max: 1_000_000,
      doc: 'subscriptions one user may start per one-minute window, WebSocket and SSE, all instances together; a user at `MAX_SUBSCRIPTIONS_PER_USER` can still resubscribe everything three times a minute. `0`: off',
    }),
    rateLimitKeyPrefix: text({
      env: 'RATE_LIMIT_KEY_PREFIX',
      default: 'chat-outbox:rate-limit',
      doc: 'prefix of the rate-limit counters in Redis: instances that share budgets share it; deployments sharing one Redis use different ones',
    }),
    subscriptionsPerConnection: integer({
      env: 'WS_MAX_SUBSCRIPTIONS_PER_CONNECTION',
      default: 50,
      min: 0,
      max: 100_000,
      doc: 'operations one graphql-ws connection may hold at once (open subscriptions and running queries); over it: `TOO_MANY_SUBSCRIPTIONS`. `0`: off',
    }),
    subscriptionsPerUser: integer({
      env: 'MAX_SUBSCRIPTIONS_PER_USER',
      default: 100,
      min: 0,
      max: 1_000_000,
      doc: 'subscriptions one user may hold open on this instance, over all its WebSocket connections and SSE streams; over it: `TOO_MANY_SUBSCRIPTIONS`. `0`: off',
    }),
    connectionsPerUser: integer({
      env: 'WS_MAX_CONNECTIONS_PER_USER',
      default: 20,
      min: 0,
      max: 100_000,
      doc: 'WebSocket connections one user may hold open on this instance; one more is closed with 4430. `0`: off',
    }),
    connectionInitTimeoutMs: integer({
      env: 'WS_CONNECTION_INIT_TIMEOUT_MS',
      default: 3_000,
      min: 100,
      max: 60_000,
      doc: 'how long a new WebSocket may wait before sending `connection_init`; then it is closed with 4408',
    }),
    maxMessageBytes: integer({
      env: 'WS_MAX_MESSAGE_BYTES',
      default: 65_536,
      min: 1_024,
      max: 16_777_216,
      doc: 'largest WebSocket message accepted; a larger one closes the socket with 1009. A maximal message body (8000 characters) fits',
    }),
  },
  /** What one operation may ask of the server; every operation in docs/ passes with room to spare. */
  operationLimits: {
    maxDepth: integer({ env: 'GRAPHQL_MAX_DEPTH', default: 12, min: 1, max: 1_000, doc: 'deepest selection nesting ([limits](#limits-and-security))' }),
    maxAliases: integer({ env: 'GRAPHQL_MAX_ALIASES', default: 20, min: 0, max: 10_000, doc: 'most aliased fields in one document' }),
    maxTokens: integer({ env: 'GRAPHQL_MAX_TOKENS', default: 2_000, min: 10, max: 1_000_000, doc: 'most lexical tokens in one document; the parser stops there' }),
    maxDirectives: integer({ env: 'GRAPHQL_MAX_DIRECTIVES', default: 20, min: 0, max: 10_000, doc: 'most directives in one document' }),
    maxCost: integer({
      env: 'GRAPHQL_MAX_COST',
      default: 10_000,
      min: 1,
      max: 100_000_000,
      doc: "highest cost of one operation: every field costs 1, and a connection's selection counts once per item of the page it asks for (`first` or `last`, default 20)",
    }),
    listSizeGuess: integer({ env: 'GRAPHQL_LIST_SIZE_GUESS', default: 10, min: 1, max: 10_000, doc: 'items assumed, in the cost, for a list that is not a paginated connection' }),
    maxMutationFields: integer({
      env: 'GRAPHQL_MAX_MUTATION_FIELDS',
      default: 3,
      min: 1,
      max: 1_000,
      doc: 'most mutation root fields in one request, so one request is a bounded number of writes',
    }),
    maxBodyBytes: integer({
      env: 'HTTP_MAX_BODY_BYTES',
      default: 131_072,
      min: 1_024,
      max: 104_857_600,
      doc: 'largest HTTP request body (128 KiB); larger is 413 `PAYLOAD_TOO_LARGE`',
    }),
    operationTimeoutMs: integer({
      env: 'OPERATION_TIMEOUT_MS',
      default: 10_000,
      min: 0,
      max: 3_600_000,
      doc: "deadline of one query or mutation: past it the operation is answered with `TIMEOUT` and aborted; also the request pool's `statement_timeout`. `0`: none",
    }),
  },
  /** Persisted documents: APQ, or only an allow-list of documents ([limits](#limits-and-security)). */
  persistedDocuments: {
    mode: choice({
      env: 'GRAPHQL_PERSISTED_DOCUMENTS',
      choices: ['off', 'automatic', 'trusted'],
      default: 'off',
      doc: '`automatic`: automatic persisted queries (clients may send a hash instead of the document; any document still runs). `trusted`: only the documents of `GRAPHQL_TRUSTED_DOCUMENTS_FILE` run, anything else is 400 `PERSISTED_QUERY_ONLY`',
    }),
    trustedDocumentsFile: optionalText({
      env: 'GRAPHQL_TRUSTED_DOCUMENTS_FILE',
      defaultText: '*(unset)*; required with `trusted`',
      doc: 'the allow-list: a JSON object mapping each sha256 (hex) to its document, as `npm run documents:extract` writes it; read at start-up',
    }),
    apqCacheSize: integer({
      env: 'GRAPHQL_APQ_CACHE_SIZE',
      default: 1_000,
      min: 1,
      max: 1_000_000,
      doc: 'documents one instance remembers in `automatic` mode (least recently used dropped; a client whose hash was dropped resends the document once)',
    }),
  },
};

/** A tree of declarations, nested as the config is. */
type Declarations = { readonly [key: string]: Setting<any> | Declarations };

/** What a tree of declarations reads as: each `Setting<T>` becomes its `T`. */
export type SettingValues<D> = { -readonly [K in keyof D]: D[K] extends Setting<infer T> ? T : SettingValues<D[K]> };

type Parsed = SettingValues<typeof SETTINGS>;

export type DatabaseConfig =
  /** `preparedStatements`: DB_PREPARED_STATEMENTS (default true). */
  | { kind: 'postgresql'; url: string; preparedStatements?: boolean }
  | { kind: 'pglite'; dataDir: string };

/** The parsed settings, with the fields that cross-field rules settle replaced by their outcome. */
export interface AppConfig extends Omit<Parsed, 'database' | 'seedDemo' | 'auth' | 'cors' | 'tracing' | 'outbox'> {
  /** `DATABASE_URL` (PostgreSQL) or, without it, embedded PGlite in `PGLITE_DATA_DIR`. */
  database: DatabaseConfig;
  /** The publisher's settings; `preparedStatements` settled from DB_PREPARED_STATEMENTS and its deprecated alias. */
  outbox: Omit<Parsed['outbox'], 'preparedStatements'> & { preparedStatements: boolean };
  /** SEED_DEMO, defaulting to on for PGlite only. */
  seedDemo: boolean;
  auth: AuthConfig;
  cors: CorsConfig;
  tracing: TracingConfig;
}

/** OpenTelemetry tracing, from the standard `OTEL_*` variables (docs/operations.md#tracing). */
export interface TracingConfig {
  /** Off: no provider is registered, every span is the API's no-op. */
  enabled: boolean;
  /** Where the OTLP/HTTP exporter sends spans (null when off). */
  url: string | null;
  serviceName: string;
  sampler: TraceSampler;
  /** For the `*traceidratio` samplers. */
  ratio: number;
}

export type OutboxPublisherOptions = AppConfig['outbox'];
export type SubscriptionOptions = AppConfig['subscriptions'];
export type OperationLimits = AppConfig['operationLimits'];
export type AbuseLimitOptions = AppConfig['abuse'];

/**
 * How bearer tokens are checked. At least one of `secret` and `jwks` is set for a server: HS256
 * tokens are checked with the secret, tokens signed with `jwks.algorithms` against the provider's
 * keys, chosen by the token header's `alg`, so a token can never pick the other kind of key.
 */
export interface AuthConfig {
  /** The HS256 secret; the published DEV_JWT_SECRET only for the embedded loopback demo; null: HS256 refused. */
  secret: string | null;
  /** The secret in use is the published development one: fine for the demo, nothing else. */
  usingDevSecret: boolean;
  /** An OpenID Connect provider's signing keys; null: only HS256 tokens. */
  jwks: JwksConfig | null;
  issuer: string;
  audience: string[] | null;
  clockToleranceS: number;
}

export interface JwksConfig {
  url: URL;
  algorithms: string[];
  cooldownMs: number;
  cacheMaxAgeMs: number;
}

/** `*`, or the exact origins allowed; credentials (cookies) are never allowed. */
export interface CorsConfig {
  origins: '*' | string[];
}

/** Asymmetric JWS algorithms a JWKS key may verify; HS* (a shared secret) and `none` are not among them. */
export const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
const DEFAULT_JWKS_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'];

function readAll<D extends Declarations>(declarations: D, env: Env): SettingValues<D> {
  const values: Record<string, unknown> = {};
  for (const [key, declaration] of Object.entries(declarations)) {
    values[key] = declaration instanceof Setting ? declaration.read(env) : readAll(declaration, env);
  }
  return values as SettingValues<D>;
}

/** Every declared setting, in declaration order (for the docs table and its test). */
export function listSettings(declarations: Declarations = SETTINGS): Setting<unknown>[] {
  return Object.values(declarations).flatMap((declaration) => (declaration instanceof Setting ? [declaration] : listSettings(declaration)));
}

export interface LoadOptions {
  /**
   * Default true: refuse to start without a way to check tokens. Tools that neither serve nor sign
   * (the outbox CLI, migrations) pass false and may get `auth` with neither a secret nor JWKS.
   */
  requireAuth?: boolean;
}

export function loadConfig(env: Env = process.env, options: LoadOptions = {}): AppConfig {
  const { database: db, seedDemo, auth, cors, tracing, outbox, ...rest } = readAll(SETTINGS, env);

  // OUTBOX_PREPARED_STATEMENTS (deprecated) was the only switch: a deployment behind a pooler that
  // set it to false must not find the API's statements prepared after an upgrade.
  const preparedStatements = db.preparedStatements ?? outbox.preparedStatements ?? true;
  const database: DatabaseConfig = db.url ? { kind: 'postgresql', url: db.url, preparedStatements } : { kind: 'pglite', dataDir: db.pgliteDataDir };

  return {
    ...rest,
    database,
    outbox: { ...outbox, preparedStatements: outbox.preparedStatements ?? preparedStatements },
    seedDemo: seedDemo ?? database.kind === 'pglite',
    auth: settleAuth(auth, { nodeEnv: rest.nodeEnv, database, host: rest.host }, options),
    cors: settleCors(cors.origins),
    tracing: settleTracing(tracing),
    persistedDocuments: settlePersistedDocuments(rest.persistedDocuments),
  };
}

/** The OpenTelemetry rules: on with an OTLP exporter, which an endpoint implies; off otherwise. */
function settleTracing(raw: Parsed['tracing']): TracingConfig {
  const exporter = raw.exporter?.trim().toLowerCase() ?? null;
  if (exporter !== null && exporter !== 'otlp' && exporter !== 'none') {
    throw new ConfigError(`OTEL_TRACES_EXPORTER must be otlp or none, got "${raw.exporter}"`);
  }
  let ratio = 1;
  if (raw.samplerArg !== null) {
    ratio = Number(raw.samplerArg);
    if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
      throw new ConfigError(`OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1, got "${raw.samplerArg}"`);
    }
  }
  const endpointSet = raw.tracesEndpoint !== null || raw.endpoint !== null;
  const enabled = !raw.sdkDisabled && (exporter === 'otlp' || (exporter === null && endpointSet));
  // The OTLP default for a collector on this host, as the exporter itself would pick.
  const base = (raw.endpoint ?? 'http://localhost:4318').replace(/\/+$/, '');
  return {
    enabled,
    url: enabled ? (raw.tracesEndpoint ?? `${base}/v1/traces`) : null,
    serviceName: raw.serviceName,
    sampler: raw.sampler,
    ratio,
  };
}

function settlePersistedDocuments(raw: Parsed['persistedDocuments']): Parsed['persistedDocuments'] {
  if (raw.mode === 'trusted' && !raw.trustedDocumentsFile) {
    throw new ConfigError('GRAPHQL_TRUSTED_DOCUMENTS_FILE is required with GRAPHQL_PERSISTED_DOCUMENTS=trusted: the allow-list that npm run documents:extract writes');
  }
  return raw;
}

/** 127.0.0.0/8, ::1 and `localhost`: what only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127(\.\d{1,3}){3}$/.test(bare) || bare === '::ffff:127.0.0.1';
}

function settleAuth(raw: Parsed['auth'], where: { nodeEnv: string; database: DatabaseConfig; host: string }, options: LoadOptions): AuthConfig {
  const jwks = settleJwks(raw.jwks);
  // The demo secret is printed in this file: only a setup nobody else can reach may use it.
  const exposure =
    where.nodeEnv === 'production'
      ? 'NODE_ENV=production'
      : where.database.kind === 'postgresql'
        ? 'DATABASE_URL is set'
        : isLoopbackHost(where.host)
          ? null
          : `HOST=${where.host} is reachable from other machines`;
  let secret = raw.secret;
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
  // A provider signs tokens for every application it serves: without both checks, a token it
  // issued to another application (or another tenant) would be accepted here.
  if (jwks && !raw.issuer) throw new ConfigError('JWT_ISSUER is required with JWT_JWKS_URL: the provider\'s issuer, exactly as in its tokens\' "iss"');
  if (jwks && !raw.audience) throw new ConfigError('JWT_AUDIENCE is required with JWT_JWKS_URL: the "aud" your provider puts in tokens for this API');

  return {
    secret,
    usingDevSecret: secret === DEV_JWT_SECRET,
    jwks,
    issuer: raw.issuer ?? 'chat-outbox',
    audience: raw.audience,
    clockToleranceS: raw.clockToleranceS,
  };
}

function settleJwks(raw: Parsed['auth']['jwks']): JwksConfig | null {
  if (!raw.url) return null;
  let url: URL;
  try {
    url = new URL(raw.url);
  } catch {
    throw new ConfigError(`JWT_JWKS_URL must be a URL, got "${raw.url}"`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    throw new ConfigError('JWT_JWKS_URL must be an https:// URL (http:// only to a loopback address)');
  }
  const algorithms = raw.algorithms ?? DEFAULT_JWKS_ALGORITHMS;
  for (const alg of algorithms) {
    if (!(JWKS_ALGORITHMS as readonly string[]).includes(alg)) {
      throw new ConfigError(`JWT_JWKS_ALGORITHMS may list only ${JWKS_ALGORITHMS.join(', ')} (HS256 tokens are checked with JWT_SECRET), got "${alg}"`);
    }
  }
  return { url, algorithms, cooldownMs: raw.cooldownMs, cacheMaxAgeMs: raw.cacheMaxAgeMs };
}

function settleCors(origins: string[] | null): CorsConfig {
  if (!origins) return { origins: [] };
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

/** The settings table of docs/operations.md, as `npm run docs:settings` writes it. */
export function settingsTable(declarations: Declarations = SETTINGS): string {
  const cell = (text: string) => text.replaceAll('|', '\\|');
  const rows = listSettings(declarations).map((setting) => {
    const fallback = setting.allowedText ? `${setting.defaultText} (${setting.allowedText})` : setting.defaultText;
    return `| \`${setting.env}\` | ${cell(fallback)} | ${cell(setting.doc)} |`;
  });
  return ['| variable | default (allowed) | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

/** `.env.example` as `npm run docs:settings` writes it: every setting with its default, by section. */
export function envExample(declarations: Declarations = SETTINGS): string {
  const lines = [
    '# Every setting of chat-outbox with its default, generated from src/platform/config.ts by',
    '# `npm run docs:settings`. Copy to .env (compose.yaml reads it) or export them. Allowed values',
    '# are in docs/operations.md#configuration-reference. An empty value means the default.',
    '# A JWT_SECRET: node -e "console.log(require(\'crypto\').randomBytes(32).toString(\'base64url\'))"',
  ];
  const write = (tree: Declarations, section: string) => {
    const own = Object.values(tree).filter((d): d is Setting<unknown> => d instanceof Setting);
    if (own.length) lines.push('', `# --- ${section} `.padEnd(96, '-'));
    for (const setting of own) {
      const fallback = setting.fallback;
      const value = fallback === null ? '' : Array.isArray(fallback) ? fallback.join(',') : String(fallback);
      lines.push(`# ${setting.doc.replaceAll('`', '')}`, `${setting.env}=${value}`);
    }
    for (const [key, nested] of Object.entries(tree)) if (!(nested instanceof Setting)) write(nested, key);
  };
  write(declarations, 'process');
  return `${lines.join('\n')}\n`;
}
