import { GraphQLError } from 'graphql';
import { maskError as yogaMaskError } from 'graphql-yoga';
import { DomainError } from '../errors.ts';

/**
 * The one place domain errors become GraphQL errors. A DomainError keeps its message and gets its
 * code in `extensions.code`; anything else is masked (INTERNAL_SERVER_ERROR, no message, no stack,
 * no SQL), whatever NODE_ENV says.
 */
export function maskError(error: unknown, message: string): Error {
  const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
  if (original instanceof DomainError) {
    return new GraphQLError(original.message, {
      ...(error instanceof GraphQLError ? { nodes: error.nodes, source: error.source, positions: error.positions, path: error.path } : {}),
      extensions: { code: original.code, ...original.details },
    });
  }
  return yogaMaskError(error, message, false);
}
