import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Logger } from '../logger.ts';
import { openRedisConnection, type RedisDeadlines } from '../redis-connection.ts';

/** What a rate limit answers: go ahead, or wait `retryAfterMs` (when the user's window ends). */
export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

/** A per-key budget of points per window. */
export interface RateLimit {
  /** Takes `points` from `key`'s budget. Refused attempts count too, so hammering does not shorten the wait. */
  consume(key: string, points: number): Promise<RateDecision>;
}

export interface RateLimits {
  /** Mutation root fields per user; null when off. */
  mutations: RateLimit | null;
  /** Subscription starts per user; null when off. */
  subscribes: RateLimit | null;
  close(): Promise<void>;
}

export interface RateLimitOptions {
  mutationsPerMinute: number;
  subscribesPerMinute: number;
  /** Prefix of the counters' keys in Redis. */
  keyPrefix: string;
  /** Share budgets between instances through this Redis; in memory (this instance only) when null. */
  redisUrl: string | null;
  /** Command and connect deadlines of that connection: a check that times out falls back to memory. */
  redisDeadlines?: RedisDeadlines;
  logger: Logger;
}

const WINDOW_SECONDS = 60;

/**
 * The per-user rate limits, on rate-limiter-flexible: a fixed one-minute window per user, counted
 * atomically in Redis (one Lua INCRBY + PTTL per check) so that every instance draws on one budget.
 *
 * When Redis does not answer, each instance falls back to an in-memory window of the same size
 * (the library's insurance limiter) rather than refusing all writes or letting them through
 * unlimited: limits then hold per instance until Redis is back.
 */
export function createRateLimits(options: RateLimitOptions): RateLimits {
  let redis: Redis | null = null;
  if (options.redisUrl && (options.mutationsPerMinute > 0 || options.subscribesPerMinute > 0)) {
    // No offline queue and one try: while Redis is away a check fails at once and the in-memory
    // fallback answers, instead of requests waiting on a reconnect.
    redis = openRedisConnection(options.redisUrl, 'chat-outbox:rate-limit', { enableOfflineQueue: false, maxRetriesPerRequest: 1 }, options.redisDeadlines);
    let warned = false;
    redis.on('error', (error: Error) => {
      if (warned) return;
      warned = true;
      options.logger.warn({ err: error.message }, 'rate-limit Redis unavailable; limits hold per instance until it is back');
    });
    redis.on('ready', () => {
      warned = false;
    });
  }

  const limit = (name: string, points: number): RateLimit | null => {
    if (points <= 0) return null;
    const keyPrefix = `${options.keyPrefix}:${name}`;
    const memory = new RateLimiterMemory({ keyPrefix, points, duration: WINDOW_SECONDS });
    const limiter: RateLimiterAbstract = redis
      ? new RateLimiterRedis({ storeClient: redis, keyPrefix, points, duration: WINDOW_SECONDS, rejectIfRedisNotReady: true, insuranceLimiter: memory })
      : memory;
    return {
      async consume(key, cost) {
        try {
          await limiter.consume(key, cost);
          return { allowed: true };
        } catch (rejection) {
          if (rejection instanceof RateLimiterRes) return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(rejection.msBeforeNext)) };
          throw rejection;
        }
      },
    };
  };

  return {
    mutations: limit('mutations', options.mutationsPerMinute),
    subscribes: limit('subscribes', options.subscribesPerMinute),
    async close() {
      redis?.disconnect();
    },
  };
}
