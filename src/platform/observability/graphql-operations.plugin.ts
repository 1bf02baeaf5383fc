import type { IncomingMessage } from 'node:http';
import { getOperationAST, type DocumentNode, type GraphQLError } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { DomainError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics, OperationOutcome, OperationType, SubscriptionTransport } from './metrics.ts';
import { ANONYMOUS_OPERATION, OTHER_OPERATION, plainOperationName } from './operation-name-label.ts';
import { requestRecordFor, type RequestRecord } from './request-context.ts';

/** Where one operation is, from its parse to its result. Keyed by the operation's context object,
 * which envelop keeps the same from parse through execute (it extends it in place). */
interface OperationState {
  startedAt: number;
  done: boolean;
}

/**
 * Counts and times every GraphQL operation, over HTTP, SSE and graphql-ws alike (they all run
 * through yoga's envelop), and tells the request log which operation a request carried:
 * - `graphql_operations_total{operation_name, operation_type, outcome}` once per operation: at a
 *   parse or validation failure, at the result of a query or mutation, or when a subscription
 *   starts (or is refused);
 * - `graphql_operation_duration_seconds` for queries and mutations, parse → result;
 * - `graphql_active_subscriptions{transport}` up while a subscription stream is open.
 * graphql-ws operations get their own log lines (no HTTP request line covers them).
 */
export function useOperationObservability(deps: { metrics: Metrics; logger: Logger }): Plugin {
  const { graphql, subscriptions } = deps.metrics;
  const states = new WeakMap<object, OperationState>();

  const stateOf = (context: object): OperationState => {
    let state = states.get(context);
    if (!state) {
      state = { startedAt: performance.now(), done: false };
      states.set(context, state);
    }
    return state;
  };

  const recordOf = (context: object): RequestRecord | null => {
    const req = (context as { req?: IncomingMessage }).req;
    return req ? requestRecordFor(req, deps.logger) : null;
  };

  function finish(
    context: object,
    operation: { name: string | null | undefined; type: OperationType; outcome: OperationOutcome; admitName: boolean },
  ): { record: RequestRecord | null; logFields: Record<string, unknown> } | null {
    const state = stateOf(context);
    if (state.done) return null;
    state.done = true;
    const durationSeconds = (performance.now() - state.startedAt) / 1000;
    const label = graphql.operationNames.label(operation.name, { admit: operation.admitName });
    graphql.operations.inc({ operation_name: label, operation_type: operation.type, outcome: operation.outcome });
    if (operation.type === 'query' || operation.type === 'mutation') {
      graphql.operationDuration.observe({ operation_name: label, operation_type: operation.type }, durationSeconds);
    }
    // Logs have no cardinality limit, so they show the real name (when it is a plain identifier).
    const logName = operation.name ? (plainOperationName(operation.name) ?? OTHER_OPERATION) : ANONYMOUS_OPERATION;
    const record = recordOf(context);
    if (record?.transport === 'http') record.operation = { name: logName, type: operation.type, outcome: operation.outcome };
    const logFields = {
      operationName: logName,
      operationType: operation.type,
      outcome: operation.outcome,
      durationMs: Math.round(durationSeconds * 10_000) / 10,
    };
    if (record?.transport === 'ws' && operation.type !== 'subscription') {
      const level = operation.outcome === 'server_error' ? 'warn' : 'info';
      record.log[level](logFields, 'graphql operation completed');
    }
    return { record, logFields };
  }

  const operationOf = (document: DocumentNode, operationName: string | null | undefined) => {
    const ast = getOperationAST(document, operationName);
    return { name: ast?.name?.value ?? operationName, type: (ast?.operation ?? 'unknown') as OperationType };
  };

  return {
    onParse({ context }) {
      stateOf(context);
      return ({ result }) => {
        if (result instanceof Error) {
          const name = (context as { params?: { operationName?: string | null } }).params?.operationName;
          finish(context, { name, type: 'unknown', outcome: 'client_error', admitName: false });
        }
      };
    },
    onValidate({ context, params }) {
      return ({ valid }) => {
        if (valid) return;
        const requested = (context as { params?: { operationName?: string | null } }).params?.operationName;
        const operation = operationOf(params.documentAST, requested);
        finish(context, { ...operation, outcome: 'client_error', admitName: false });
      };
    },
    onExecute({ args }) {
      return {
        onExecuteDone({ result }) {
          const operation = operationOf(args.document, args.operationName);
          // Incremental delivery (defer/stream) is not enabled; a stream would count as started.
          const outcome = isAsyncIterable(result) ? 'success' : outcomeOf(result.errors);
          finish(args.contextValue, { ...operation, outcome, admitName: true });
        },
      };
    },
    onSubscribe({ args }) {
      const context = args.contextValue as object;
      const operation = operationOf(args.document, args.operationName);
      let end: (() => void) | null = null;
      return {
        onSubscribeResult({ result }) {
          if (!isAsyncIterable(result)) {
            finish(context, { ...operation, outcome: outcomeOf(result.errors), admitName: true });
            return;
          }
          const finished = finish(context, { ...operation, outcome: 'success', admitName: true });
          const transport: SubscriptionTransport = finished?.record?.transport === 'ws' ? 'ws' : 'sse';
          const startedAt = performance.now();
          subscriptions.active.inc({ transport });
          if (finished?.record?.transport === 'ws') finished.record.log.info(finished.logFields, 'subscription started');
          let ended = false;
          end = () => {
            if (ended) return;
            ended = true;
            subscriptions.active.dec({ transport });
            if (finished?.record?.transport === 'ws') {
              const durationMs = Math.round(performance.now() - startedAt);
              finished.record.log.info({ ...finished.logFields, durationMs }, 'subscription ended');
            }
          };
          return { onEnd: () => end?.() };
        },
        // A source stream that throws never reaches onEnd; without this the gauge would leak.
        onSubscribeError() {
          end?.();
        },
      };
    },
  };
}

/**
 * client_error when every error is the client's doing: a domain error or another error with a
 * client-facing code, or an error about the request itself (no path: variable coercion). Anything
 * else, masked or not yet masked, is ours.
 */
export function outcomeOf(errors: readonly GraphQLError[] | undefined): OperationOutcome {
  if (!errors || errors.length === 0) return 'success';
  return errors.every(isClientError) ? 'client_error' : 'server_error';
}

function isClientError(error: GraphQLError): boolean {
  const original = error.originalError;
  if (original instanceof DomainError) return true;
  const code = error.extensions?.code;
  if (typeof code === 'string') return code !== 'INTERNAL_SERVER_ERROR';
  return error.path === undefined && original === undefined;
}
