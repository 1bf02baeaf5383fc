import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, listSettings, loadConfig, settingsTable } from '../src/config.ts';
import { withSettingsTable } from '../scripts/settings-table.ts';

describe('loadConfig', () => {
  it('runs on the embedded database with defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      database: { kind: 'pglite', dataDir: './.data/pglite' },
      migrateOnStart: true,
      seedDemo: true,
      port: 4000,
      host: '0.0.0.0',
    });
  });

  it('uses DATABASE_URL, and does not seed demo data into it unless asked', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://u@db:5432/app', MIGRATE_ON_START: 'false' });
    expect(config).toMatchObject({ database: { kind: 'postgresql', url: 'postgres://u@db:5432/app' }, migrateOnStart: false, seedDemo: false });
  });

  it.each([
    [{ PORT: 'eighty' }, /PORT/],
    [{ PORT: '70000' }, /PORT/],
    [{ MIGRATE_ON_START: 'maybe' }, /MIGRATE_ON_START/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL/],
    [{ JWT_SECRET: 'short' }, /JWT_SECRET/],
    [{ NODE_ENV: 'production' }, /JWT_SECRET is required/],
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

describe('settings declarations', () => {
  it('declare each environment variable once', () => {
    const names = listSettings().map((setting) => setting.env);
    expect(names.length).toBeGreaterThan(20);
    expect(new Set(names).size).toBe(names.length);
  });

  it('give every setting a one-line doc', () => {
    for (const setting of listSettings()) expect(setting.doc, setting.env).toMatch(/^[^\n]+$/);
  });

  it('produce the committed table in docs/operations.md (run `npm run docs:settings` if this fails)', () => {
    const committed = readFileSync(new URL('../docs/operations.md', import.meta.url), 'utf8');
    expect(withSettingsTable(committed, settingsTable())).toBe(committed);
  });

  it('read a declared default, and reject a value outside the declared range naming the variable', () => {
    for (const setting of listSettings()) {
      if (setting.env === 'JWT_SECRET') continue; // its default is the cross-field rule's
      expect(() => loadConfig({ [setting.env]: setting.env === 'DATABASE_URL' ? 'postgres://x/y' : '' })).not.toThrow();
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
