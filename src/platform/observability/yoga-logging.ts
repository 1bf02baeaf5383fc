import { GraphQLError } from 'graphql';
import { DomainError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { currentRequestLogger } from './request-context.ts';

const isDomainError = (value: unknown) =>
  value instanceof DomainError || (value instanceof GraphQLError && value.originalError instanceof DomainError);

/**
 * yoga's `logging` option. yoga logs an error every time masking replaces one, which includes our
 * own domain errors (NOT_FOUND, BAD_USER_INPUT, ...): those are the client's, go to debug. The
 * rest are ours and go to error, with the request id when an HTTP request is being handled, and
 * through the error serializer that drops database error details.
 */
export function yogaLogging(logger: Logger) {
  const target = () => currentRequestLogger() ?? logger;
  return {
    debug: (...args: unknown[]) => target().debug({ args }, 'yoga'),
    info: (...args: unknown[]) => target().info({ args }, 'yoga'),
    warn: (...args: unknown[]) => target().warn({ args }, 'yoga'),
    error: (...args: unknown[]) => {
      for (const arg of args) {
        if (isDomainError(arg)) target().debug({ err: arg }, 'client error');
        else if (arg instanceof Error) target().error({ err: arg }, 'unexpected error while handling a GraphQL request');
        else target().error({ args: [String(arg)] }, 'unexpected error while handling a GraphQL request');
      }
    },
  };
}
