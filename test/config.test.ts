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
