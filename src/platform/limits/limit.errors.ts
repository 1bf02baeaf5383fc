import { GraphQLError } from 'graphql';
import type { ErrorCode } from '../errors.ts';
import { forTransport, requestRefusal } from '../graphql/errors.ts';

/** Over HTTP: 429 with a `Retry-After` header (seconds); `retryAfterMs` on every transport. */
export function rateLimitedError(what: string, retryAfterMs: number, context: unknown): GraphQLError {
  const seconds = Math.ceil(retryAfterMs / 1000);
  const error = requestRefusal('RATE_LIMITED', `Too many ${what}; try again in ${seconds} s`, { status: 429, headers: { 'retry-after': String(seconds) } }, { retryAfterMs });
  return forTransport(error, context);
}

export function tooManySubscriptionsError(scope: 'connection' | 'user', limit: number): GraphQLError {
  const code: ErrorCode = 'TOO_MANY_SUBSCRIPTIONS';
  const where = scope === 'connection' ? 'on this connection' : 'for this user';
  return new GraphQLError(`At most ${limit} subscriptions may be open ${where}; end one to start another`, {
    extensions: { code, limit, scope },
  });
}
