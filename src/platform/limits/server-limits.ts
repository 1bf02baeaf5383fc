import type { AbuseLimitOptions } from '../config.ts';
import type { RateLimits } from './rate-limiter.ts';

/** What the server enforces: the rate limits (shared through Redis or not) and the options of the rest. */
export interface ServerLimits {
  rates: RateLimits;
  options: AbuseLimitOptions;
}

/** For servers built without limits (in-process test servers): everything off, `ws`'s own 100 MiB message limit. */
export const NO_LIMITS: ServerLimits = {
  rates: { mutations: null, subscribes: null, close: async () => {} },
  options: {
    mutationsPerMinute: 0,
    subscribesPerMinute: 0,
    rateLimitKeyPrefix: '',
    subscriptionsPerConnection: 0,
    subscriptionsPerUser: 0,
    connectionsPerUser: 0,
    connectionInitTimeoutMs: 3_000,
    maxMessageBytes: 100 * 1024 * 1024,
  },
};
