import { getOperationAST } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { principalIdOf, type GraphQLContext } from '../graphql/context.ts';
import { rootFieldCount } from '../graphql/root-fields.ts';
import { rateLimitedError, tooManySubscriptionsError } from './limit.errors.ts';
import type { RateLimits } from './rate-limiter.ts';

export interface UserLimitsOptions {
  rates: Pick<RateLimits, 'mutations' | 'subscribes'>;
  /** Subscriptions one user may hold open on this instance, all transports together (0: no limit). */
  subscriptionsPerUser: number;
}

/**
 * Per-user limits on what reaches the resolvers, over HTTP, SSE and graphql-ws alike (they all run
 * through yoga's envelop):
 * - a mutation costs one point per root field, all taken before anything runs, so a refused
 *   request changes nothing;
 * - starting a subscription costs one point of its own budget, and needs a free place among the
 *   user's open subscriptions on this instance; the place is given back when the stream ends,
 *   whatever ends it.
 *
 * Operations without a valid viewer are not counted: every mutation and subscription refuses them
 * (UNAUTHENTICATED) before doing any work, and the only per-source key they offer, the peer
 * address, is the load balancer's behind one. Limit anonymous traffic per address at the edge.
 *
 * Registered after the observability plugin, so refused operations are still counted and logged
 * as client errors.
 */
export function useUserLimits(options: UserLimitsOptions): Plugin {
  const { mutations, subscribes } = options.rates;
  const openSubscriptions = new Map<string, number>();

  const reserve = (userId: string): (() => void) | null => {
    const open = openSubscriptions.get(userId) ?? 0;
    if (open >= options.subscriptionsPerUser) return null;
    openSubscriptions.set(userId, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (openSubscriptions.get(userId) ?? 1) - 1;
      if (left > 0) openSubscriptions.set(userId, left);
      else openSubscriptions.delete(userId);
    };
  };

  return {
    // Not async: queries pass through without waiting a tick.
    onExecute({ args, setResultAndStopExecution }) {
      if (!mutations) return;
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'mutation') return;
      const userId = viewerIdOf(args.contextValue);
      if (!userId) return;
      const cost = rootFieldCount(args.document, operation.selectionSet);
      if (cost === 0) return;
      return mutations.consume(userId, cost).then((decision) => {
        if (!decision.allowed) {
          setResultAndStopExecution({ errors: [rateLimitedError('mutations', decision.retryAfterMs, args.contextValue)] });
        }
      });
    },

    async onSubscribe({ args, subscribeFn, setSubscribeFn, setResultAndStopExecution }) {
      const userId = viewerIdOf(args.contextValue);
      if (!userId) return;
      if (subscribes) {
        const decision = await subscribes.consume(userId, 1);
        if (!decision.allowed) {
          setResultAndStopExecution({ errors: [rateLimitedError('subscriptions started', decision.retryAfterMs, args.contextValue)] });
          return;
        }
      }
      if (options.subscriptionsPerUser <= 0) return;
      // Taken synchronously after the last await, so concurrent subscribes cannot overshoot.
      const release = reserve(userId);
      if (!release) {
        setResultAndStopExecution({ errors: [tooManySubscriptionsError('user', options.subscriptionsPerUser)] });
        return;
      }
      // A subscribe function that throws never reaches the result hooks below.
      setSubscribeFn(async (subscribeArgs) => {
        try {
          return await subscribeFn(subscribeArgs);
        } catch (error) {
          release();
          throw error;
        }
      });
      return {
        onSubscribeResult({ result }) {
          // Refused before it streamed (bad arguments, UNAUTHENTICATED, NOT_FOUND): nothing is open.
          if (!isAsyncIterable(result)) {
            release();
            return;
          }
          return { onEnd: release };
        },
        // A source stream that throws never reaches onEnd.
        onSubscribeError: release,
      };
    },
  };
}

/** The authenticated user of an operation's context, or null. */
export function viewerIdOf(context: unknown): string | null {
  // An agent credential draws on budgets of its own (`agent:<id>`), like a user.
  return principalIdOf(context as GraphQLContext);
}

