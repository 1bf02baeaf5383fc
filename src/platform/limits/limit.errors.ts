import { GraphQLError } from 'graphql';
import type { ErrorCode } from '../errors.ts';

/**
 * The errors a limit answers with. They are plain GraphQL errors (not domain errors) because they
 * are raised around execution, not by a service; yoga's masking passes them through unchanged.
 *
 * Over HTTP, `extensions.http` makes yoga answer 429 with a `Retry-After` header, and yoga strips
 * it from the body; graphql-ws would send it verbatim, so it is only added for HTTP.
 */
export function rateLimitedError(what: string, retryAfterMs: number, overHttp: boolean): GraphQLError {
  const code: ErrorCode = 'RATE_LIMITED';
  return new GraphQLError(`Too many ${what}; try again in ${Math.ceil(retryAfterMs / 1000)} s`, {
    extensions: {
      code,
      retryAfterMs,
      ...(overHttp ? { http: { status: 429, headers: { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) } } } : {}),
    },
  });
}

export function tooManySubscriptionsError(scope: 'connection' | 'user', limit: number): GraphQLError {
  const code: ErrorCode = 'TOO_MANY_SUBSCRIPTIONS';
  const where = scope === 'connection' ? 'on this connection' : 'for this user';
  return new GraphQLError(`At most ${limit} subscriptions may be open ${where}; end one to start another`, {
    extensions: { code, limit, scope },
  });
}
