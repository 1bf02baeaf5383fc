import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

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
