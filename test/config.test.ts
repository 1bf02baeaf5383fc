import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEV_JWT_SECRET, envExample, listSettings, loadConfig, settingsTable } from '../src/platform/config.ts';
import { withSettingsTable } from '../scripts/settings-table.ts';

const SECRET = 'a-secret-of-at-least-thirty-two-characters';
const PROVIDER = { JWT_JWKS_URL: 'https://id.example.com/.well-known/jwks.json', JWT_ISSUER: 'https://id.example.com/', JWT_AUDIENCE: 'chat-api' };

describe('loadConfig', () => {
  it('runs on the embedded database with defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      database: { kind: 'pglite', dataDir: './.data/pglite' },
      migrateOnStart: true,
      seedDemo: true,
      port: 4000,
      host: '127.0.0.1',
      auth: { secret: DEV_JWT_SECRET, usingDevSecret: true, jwks: null, issuer: 'chat-outbox' },
      cors: { origins: [] },
    });
  });

  it('uses DATABASE_URL, and does not seed demo data into it unless asked', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://u@db:5432/app', MIGRATE_ON_START: 'false', JWT_SECRET: SECRET });
    expect(config).toMatchObject({ database: { kind: 'postgresql', url: 'postgres://u@db:5432/app' }, migrateOnStart: false, seedDemo: false, host: '127.0.0.1' });
  });

  it('prepares statements unless DB_PREPARED_STATEMENTS=false; the deprecated OUTBOX_PREPARED_STATEMENTS=false alone still turns them off everywhere', () => {
    const prepared = (env: Record<string, string>) => {
      const config = loadConfig({ DATABASE_URL: 'postgres://u@db:5432/app', JWT_SECRET: SECRET, ...env });
      return { api: config.database.kind === 'postgresql' && config.database.preparedStatements, publisher: config.outbox.preparedStatements };
    };
    expect(prepared({})).toEqual({ api: true, publisher: true });
    expect(prepared({ DB_PREPARED_STATEMENTS: 'false' })).toEqual({ api: false, publisher: false });
    // A deployment behind a pooler that set the old switch before upgrading.
    expect(prepared({ OUTBOX_PREPARED_STATEMENTS: 'false' })).toEqual({ api: false, publisher: false });
    expect(prepared({ DB_PREPARED_STATEMENTS: 'true', OUTBOX_PREPARED_STATEMENTS: 'false' })).toEqual({ api: true, publisher: false });
    expect(prepared({ DB_PREPARED_STATEMENTS: 'false', OUTBOX_PREPARED_STATEMENTS: 'true' })).toEqual({ api: false, publisher: true });
  });

  it.each([
    [{ PORT: 'eighty' }, /PORT/],
    [{ PORT: '70000' }, /PORT/],
    [{ MIGRATE_ON_START: 'maybe' }, /MIGRATE_ON_START/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL/],
    [{ JWT_SECRET: 'short' }, /JWT_SECRET/],
    [{ NODE_ENV: 'production' }, /set JWT_SECRET .* or JWT_JWKS_URL .*NODE_ENV=production/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
  ])('stops start-up on %o with a message naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});

describe('operability settings', () => {
  it('default to metrics on, a 2 s health check timeout and no drain', () => {
    expect(loadConfig({})).toMatchObject({ metricsEnabled: true, healthCheckTimeoutMs: 2000, shutdownDrainMs: 0 });
  });

  it('are read from the environment', () => {
    const config = loadConfig({ METRICS_ENABLED: 'false', HEALTH_CHECK_TIMEOUT_MS: '500', SHUTDOWN_DRAIN_MS: '10000' });
    expect(config).toMatchObject({ metricsEnabled: false, healthCheckTimeoutMs: 500, shutdownDrainMs: 10000 });
  });

  it.each([
    ['METRICS_ENABLED', 'maybe'],
    ['HEALTH_CHECK_TIMEOUT_MS', '0'],
    ['HEALTH_CHECK_TIMEOUT_MS', '2s'],
    ['SHUTDOWN_DRAIN_MS', '-1'],
    ['SHUTDOWN_DRAIN_MS', '600000'],
  ])('stop start-up with a message naming %s when it is %s', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });
});

describe('bearer token settings', () => {
  it.each([
    ['DATABASE_URL is set', { DATABASE_URL: 'postgres://u@db:5432/app' }, 'DATABASE_URL is set'],
    ['HOST is 0.0.0.0', { HOST: '0.0.0.0' }, 'HOST=0.0.0.0 is reachable'],
    ['HOST is ::', { HOST: '::' }, 'HOST=:: is reachable'],
    ['HOST is a LAN address', { HOST: '192.168.1.20' }, 'HOST=192.168.1.20 is reachable'],
    ['NODE_ENV is production', { NODE_ENV: 'production' }, 'NODE_ENV=production'],
    ['DATABASE_URL is set and HOST is 0.0.0.0', { DATABASE_URL: 'postgres://u@db:5432/app', HOST: '0.0.0.0' }, 'DATABASE_URL is set'],
  ])('refuse to start without JWT_SECRET or JWT_JWKS_URL when %s, in one line that says what to set and why', (_when, env, why) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(/^set JWT_SECRET \(a random string of at least 32 characters\) or JWT_JWKS_URL \(with JWT_ISSUER and JWT_AUDIENCE\): /);
    expect(() => loadConfig(env)).toThrow(why);
    expect(() => loadConfig(env)).not.toThrow(/\n/);
  });

  it.each([
    ['DATABASE_URL is set', { DATABASE_URL: 'postgres://u@db:5432/app' }],
    ['HOST is 0.0.0.0', { HOST: '0.0.0.0' }],
  ])('refuse the published development secret set explicitly when %s', (_when, env) => {
    expect(() => loadConfig({ ...env, JWT_SECRET: DEV_JWT_SECRET })).toThrow(/JWT_SECRET is the published development secret/);
  });

  it.each([['127.0.0.1'], ['localhost'], ['::1'], ['127.0.0.53']])('use the development secret for the embedded demo on loopback HOST=%s', (host) => {
    expect(loadConfig({ HOST: host }).auth).toMatchObject({ secret: DEV_JWT_SECRET, usingDevSecret: true });
  });

  it('start beyond loopback with a secret of their own, or with a provider alone', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@db/app', HOST: '0.0.0.0', JWT_SECRET: SECRET }).auth).toMatchObject({ secret: SECRET, usingDevSecret: false, jwks: null });
    const provider = loadConfig({ DATABASE_URL: 'postgres://u@db/app', HOST: '0.0.0.0', ...PROVIDER }).auth;
    expect(provider).toMatchObject({ secret: null, issuer: 'https://id.example.com/', audience: ['chat-api'], clockToleranceS: 30 });
    expect(provider.jwks).toMatchObject({ algorithms: ['RS256', 'ES256', 'EdDSA'], cooldownMs: 30_000, cacheMaxAgeMs: 600_000 });
    expect(provider.jwks?.url.href).toBe(PROVIDER.JWT_JWKS_URL);
  });

  it('do not fall back to the development secret when a provider is configured, even for the demo', () => {
    expect(loadConfig(PROVIDER).auth).toMatchObject({ secret: null, usingDevSecret: false });
  });

  it('read the provider options', () => {
    const auth = loadConfig({
      ...PROVIDER,
      JWT_SECRET: SECRET,
      JWT_AUDIENCE: 'chat-api, chat-web',
      JWT_JWKS_ALGORITHMS: 'ES384,PS256',
      JWT_CLOCK_TOLERANCE_S: '5',
      JWT_JWKS_COOLDOWN_MS: '1000',
      JWT_JWKS_CACHE_MAX_AGE_MS: '60000',
    }).auth;
    expect(auth).toMatchObject({ secret: SECRET, audience: ['chat-api', 'chat-web'], clockToleranceS: 5, jwks: { algorithms: ['ES384', 'PS256'], cooldownMs: 1000, cacheMaxAgeMs: 60000 } });
  });

  it('allow a plain-http JWKS URL only on loopback', () => {
    expect(loadConfig({ ...PROVIDER, JWT_JWKS_URL: 'http://127.0.0.1:8080/jwks' }).auth.jwks?.url.href).toBe('http://127.0.0.1:8080/jwks');
    expect(() => loadConfig({ ...PROVIDER, JWT_JWKS_URL: 'http://id.example.com/jwks' })).toThrow(/JWT_JWKS_URL must be an https/);
  });

  it.each([
    [{ JWT_JWKS_URL: 'not a url' }, /JWT_JWKS_URL must be a URL/],
    [{ JWT_ISSUER: '' }, /JWT_ISSUER is required with JWT_JWKS_URL/],
    [{ JWT_AUDIENCE: '' }, /JWT_AUDIENCE is required with JWT_JWKS_URL/],
    [{ JWT_AUDIENCE: ' , ' }, /JWT_AUDIENCE is required with JWT_JWKS_URL/],
    [{ JWT_JWKS_ALGORITHMS: 'RS256,HS256' }, /JWT_JWKS_ALGORITHMS may list only .*"HS256"/],
    [{ JWT_JWKS_ALGORITHMS: 'none' }, /JWT_JWKS_ALGORITHMS may list only .*"none"/],
    [{ JWT_CLOCK_TOLERANCE_S: '3600' }, /JWT_CLOCK_TOLERANCE_S/],
    [{ JWT_JWKS_COOLDOWN_MS: '-1' }, /JWT_JWKS_COOLDOWN_MS/],
  ])('stop start-up on a bad provider setting %o', (override, message) => {
    expect(() => loadConfig({ ...PROVIDER, ...override })).toThrow(ConfigError);
    expect(() => loadConfig({ ...PROVIDER, ...override })).toThrow(message);
  });

  it('let tools that neither serve nor sign load without any', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@db/app' }, { requireAuth: false }).auth).toMatchObject({ secret: null, jwks: null });
  });
});

describe('CORS_ORIGINS', () => {
  it('reads exact origins, or * alone', () => {
    expect(loadConfig({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' }).cors).toEqual({ origins: ['https://app.example.com', 'http://localhost:5173'] });
    expect(loadConfig({ CORS_ORIGINS: '*' }).cors).toEqual({ origins: '*' });
  });

  it.each([['https://app.example.com/'], ['https://app.example.com/path'], ['app.example.com'], ['*,https://app.example.com'], ['ftp://files.example.com']])(
    'stops start-up on %s',
    (value) => {
      expect(() => loadConfig({ CORS_ORIGINS: value })).toThrow(ConfigError);
      expect(() => loadConfig({ CORS_ORIGINS: value })).toThrow(/CORS_ORIGINS/);
    },
  );
});

describe('settings declarations', () => {
  it('declare each environment variable once', () => {
    const names = listSettings().map((setting) => setting.env);
    expect(names.length).toBeGreaterThan(20);
    expect(new Set(names).size).toBe(names.length);
  });

  it('give every setting a one-line doc', () => {
    for (const setting of listSettings()) expect(setting.doc, setting.env).toMatch(/^[^\n]+$/);
  });

  it('produce the committed .env.example (run `npm run docs:settings` if this fails)', () => {
    expect(envExample()).toBe(readFileSync(new URL('../.env.example', import.meta.url), 'utf8'));
  });

  it('produce the committed table in docs/operations.md (run `npm run docs:settings` if this fails)', () => {
    const committed = readFileSync(new URL('../docs/operations.md', import.meta.url), 'utf8');
    expect(withSettingsTable(committed, settingsTable())).toBe(committed);
  });

  it('read a declared default, and reject a value outside the declared range naming the variable', () => {
    for (const setting of listSettings()) {
      if (setting.env === 'JWT_SECRET') continue; // its default is the cross-field rule's
      expect(() => loadConfig({ JWT_SECRET: SECRET, [setting.env]: setting.env === 'DATABASE_URL' ? 'postgres://x/y' : '' })).not.toThrow();
    }
    expect(loadConfig({ SUBSCRIPTION_BUFFER_SIZE: '1000000' }).subscriptions.bufferSize).toBe(1_000_000);
    expect(() => loadConfig({ SUBSCRIPTION_BUFFER_SIZE: '1000001' })).toThrow('SUBSCRIPTION_BUFFER_SIZE must be an integer from 1 to 1000000, got "1000001"');
    expect(() => loadConfig({ OUTBOX_WAKE: 'sometimes' })).toThrow('OUTBOX_WAKE must be one of all, in-process, poll, got "sometimes"');
    expect(() => loadConfig({ REDIS_URL: 'http://cache' })).toThrow('REDIS_URL must be a redis:// or rediss:// URL');
  });

  it('leave secrets and connection URLs out of error messages', () => {
    expect(() => loadConfig({ JWT_SECRET: 'hunter2' })).toThrow(/^(?!.*hunter2)/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://user:pa55word@db' })).toThrow(/^(?!.*pa55word)/);
  });
});
