import { isAgentCredential, type AgentCredentialVerifier, type AgentPrincipal } from '../auth/agent-principal.ts';
import { bearerToken, type TokenService, type Viewer } from '../auth/token.ts';
import type { AgentActivity } from '../../events/agent-activity.ts';
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
  /**
   * The authenticated user, or UNAUTHENTICATED. Resolvers that need a user call it. An agent
   * credential is not a user: this throws for it too, so every user field refuses agents.
   */
  viewer(): Viewer;
  /**
   * The agent an agent credential authenticates, or UNAUTHENTICATED (a user token included): only
   * the fields for external agent runtimes call it (docs/agents.md#external-agent-runtimes).
   */
  agent(): AgentPrincipal;
  /** Hands an external runtime's transient reply activity to the bus; it is never stored. */
  publishActivity(activity: AgentActivity): void;
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

/** The principal's id for per-caller limits: the user, or `agent:<id>` for an agent credential. */
export function principalIdOf(context: GraphQLContext): string | null {
  for (const who of [() => context.viewer().userId, () => `agent:${context.agent().agentId}`]) {
    try {
      return who();
    } catch {
      // not this kind of principal
    }
  }
  return null;
}

export interface ContextDeps {
  orm: Orm;
  tokens: TokenService;
  events: EventStreams;
  metrics: Metrics;
  /** Checks agent credentials (`agc_…` bearer tokens). */
  verifyAgentCredential: (em: Em, secret: string) => Promise<AgentPrincipal>;
  /** Where external runtimes' reply activity goes (the bus's activity channel). */
  publishActivity(activity: AgentActivity): void;
}

/**
 * Builds an operation's context from its credentials: the `Authorization` header over HTTP/SSE,
 * or `connectionParams.authorization` over graphql-ws. A missing or bad token is not an error by
 * itself; it becomes UNAUTHENTICATED when a resolver asks for the viewer.
 */
export function createContextFactory(deps: ContextDeps) {
  /** `target`: the object to make the context (yoga passes its own; default a new one). */
  return async (authorization: string | null | undefined, log: Logger, target: object = {}): Promise<GraphQLContext> => {
    let viewer: Viewer | null = null;
    let agent: AgentPrincipal | null = null;
    let authError: DomainError | null = null;
    // Forked on first use: a subscription whose events render from their payload never needs
    // one, and ten thousand idle forks would be most of what a subscriber costs in memory.
    let em: Em | null = null;
    let loaders: Loaders | null = null;
    try {
      const token = bearerToken(authorization);
      // Told apart by prefix, so a JWT is never tried as a credential nor the other way round.
      if (token && isAgentCredential(token)) agent = await deps.verifyAgentCredential((em = forkEm(deps.orm)), token);
      else if (token) viewer = await deps.tokens.verify(token);
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      authError = error;
    }
    // Defined on `target` (yoga's own context object) rather than returned for yoga to copy:
    // copying would read `em` and `loaders` once, fork at once, and leave `renew` replacing
    // copies that no resolver reads.
    const context = target as GraphQLContext;
    Object.defineProperties(context, {
      em: {
        configurable: true,
        enumerable: true,
        get: () => (em ??= forkEm(deps.orm)),
        set: (value: Em) => {
          em = value;
          loaders = null;
        },
      },
      loaders: {
        configurable: true,
        enumerable: true,
        get: () => (loaders ??= createLoaders(context.em)),
        set: (value: Loaders) => {
          loaders = value;
        },
      },
    });
    Object.assign(context, {
      events: deps.events,
      metrics: deps.metrics,
      log,
      viewer() {
        if (viewer) return viewer;
        if (agent) throw unauthenticated('An agent credential can only be used by external agent runtimes (agentInbox, postAgentReply); this field needs a user token');
        throw authError ?? unauthenticated();
      },
      agent() {
        if (agent) return agent;
        if (viewer) throw unauthenticated('This field is for external agent runtimes: it needs an agent credential, not a user token');
        throw authError ?? unauthenticated('An agent credential is required');
      },
      publishActivity: deps.publishActivity,
      renew() {
        em = null;
        loaders = null;
      },
    } satisfies Omit<GraphQLContext, 'em' | 'loaders'>);
    return context;
  };
}
