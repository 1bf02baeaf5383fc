import { bearerToken, type TokenService, type Viewer } from '../auth/token.ts';
import { forkEm, type Em, type Orm } from '../db/orm.ts';
import { DomainError, unauthenticated } from '../errors.ts';
import type { EventStreams } from '../../subscriptions/event-subscription.service.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { createLoaders, type Loaders } from '../../domain/loaders.ts';

export interface GraphQLContext {
  /** This operation's own EntityManager fork (renewed per delivered event in subscriptions). */
  em: Em;
  loaders: Loaders;
  /** The authenticated user, or UNAUTHENTICATED. Resolvers that need a user call it. */
  viewer(): Viewer;
  /** Opens subscription streams; it cannot publish. */
  events: EventStreams;
  /**
   * Fresh EntityManager and DataLoaders. graphql-ws builds a context once per subscription, which
   * may live for hours; each delivered event calls this so it never reads a stale identity map
   * or loader cache (docs/design-notes.md#subscription-context-lifetime).
   */
  renew(): void;
  /** The process's instruments, for the few operator actions resolvers record (reprocessing). */
  metrics: Metrics;
  /** The service logger bound to this request's `requestId`. Log ids and counts, never bodies or tokens. */
  log: Logger;
}

export interface ContextDeps {
  orm: Orm;
  tokens: TokenService;
  events: EventStreams;
  metrics: Metrics;
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
    const context: GraphQLContext = {
      em,
      loaders: createLoaders(em),
      events: deps.events,
      metrics: deps.metrics,
      log,
      viewer() {
        if (viewer) return viewer;
        throw authError ?? unauthenticated();
      },
      renew() {
        context.em = forkEm(deps.orm);
        context.loaders = createLoaders(context.em);
      },
    };
    return context;
  };
}
