import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

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
