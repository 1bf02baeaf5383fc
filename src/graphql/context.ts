import { bearerToken, type TokenService, type Viewer } from '../auth/token.ts';
import { forkEm, type Em, type Orm } from '../db/orm.ts';
import { DomainError, unauthenticated } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { createLoaders, type Loaders } from './loaders.ts';

export interface GraphQLContext {
  /** This operation's own EntityManager fork. */
  em: Em;
  loaders: Loaders;
  /** The authenticated user, or UNAUTHENTICATED. Resolvers that need a user call it. */
  viewer(): Viewer;
  /** The service logger bound to this request's `requestId`. Log ids and counts, never bodies or tokens. */
  log: Logger;
}

export interface ContextDeps {
  orm: Orm;
  tokens: TokenService;
}

/**
 * Builds an operation's context from its credentials: the `Authorization` header over HTTP/SSE,
 * or `connectionParams.authorization` over graphql-ws. A missing or bad token is not an error by
 * itself; it becomes UNAUTHENTICATED when a resolver asks for the viewer.
 */
export function createContextFactory(deps: ContextDeps) {
  return async (authorization: string | null | undefined, log: Logger): Promise<GraphQLContext> => {
    let viewer: Viewer | null = null;
    let authError: DomainError | null = null;
    try {
      const token = bearerToken(authorization);
      if (token) viewer = await deps.tokens.verify(token);
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      authError = error;
    }
    const em = forkEm(deps.orm);
    return {
      em,
      loaders: createLoaders(em),
      log,
      viewer() {
        if (viewer) return viewer;
        throw authError ?? unauthenticated();
      },
    };
  };
}
