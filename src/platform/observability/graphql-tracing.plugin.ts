import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import { getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { ATTR_ERROR_TYPE } from '@opentelemetry/semantic-conventions';
import { DomainError } from '../errors.ts';
import { SEMCONV, tracer } from './tracing.ts';

/** What propagation needs of a Fetch `Headers` (yoga's may be @whatwg-node's, not Node's own class). */
interface HeaderLike {
  get(name: string): string | null;
  keys(): Iterable<string>;
}

const headerGetter = {
  get: (headers: HeaderLike, key: string) => headers.get(key) ?? undefined,
  keys: (headers: HeaderLike) => [...headers.keys()],
};

/** The caller's trace, from a `traceparent` header over HTTP; the root otherwise (graphql-ws). */
function callerContext(operationContext: { request?: unknown }): Context {
  const headers = (operationContext.request as { headers?: Partial<HeaderLike> } | undefined)?.headers;
  return typeof headers?.get === 'function' && typeof headers.keys === 'function'
    ? propagation.extract(ROOT_CONTEXT, headers as HeaderLike, headerGetter)
    : ROOT_CONTEXT;
}

/**
 * One span per GraphQL operation, over HTTP, SSE and graphql-ws alike (all run through yoga's
 * envelop): `query viewer`, `mutation sendMessage`, `subscription sessionEvents`, with the
 * semantic conventions' `graphql.operation.*` attributes. The span is the active context while the
 * operation executes, so the database transactions it runs and the trace context stored with the
 * events it records hang under it. A subscription's span covers setting the stream up; each event
 * delivered on it has a span of its own, in the trace of the request that wrote the event.
 *
 * Written here rather than taken from `@envelop/opentelemetry`, which depends on the 1.x line of
 * the OpenTelemetry SDK (a second SDK beside the one we register) and traces every resolver; one
 * span per operation is what an operator reads. With tracing off, `tracer()` is the API's no-op.
 */
export function useOperationTracing(): Plugin {
  const spans = new WeakMap<object, Span>();

  const around = (kind: 'execute' | 'subscribe') => (payload: { context: Record<string, any> }, wrapped: () => unknown) => {
    const span = tracer().startSpan(`graphql.${kind}`, { kind: SpanKind.SERVER }, callerContext(payload.context));
    if (!span.isRecording()) return wrapped();
    spans.set(payload.context, span);
    const end = (error?: unknown) => {
      if (error !== undefined) {
        span.recordException(error instanceof Error ? error : String(error));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
    };
    try {
      const result = context.with(trace.setSpan(context.active(), span), wrapped);
      if (result instanceof Promise) return result.then(() => end(), (error: unknown) => (end(error), Promise.reject(error)));
      end();
      return result;
    } catch (error) {
      end(error);
      throw error;
    }
  };

  const name = (args: { document: any; operationName?: string | null | undefined; contextValue: unknown }) => {
    const span = spans.get(args.contextValue as object);
    if (!span) return;
    const operation = getOperationAST(args.document, args.operationName);
    const type = operation?.operation ?? 'query';
    const operationName = operation?.name?.value;
    span.setAttribute(SEMCONV.graphqlOperationType, type);
    if (operationName) span.setAttribute(SEMCONV.graphqlOperationName, operationName);
    // The semantic conventions' span name: the type, then the operation's name when it has one.
    span.updateName(operationName ? `${type} ${operationName}` : type);
    return span;
  };

  const failed = (span: Span | undefined, result: unknown) => {
    const errors = (result as { errors?: readonly { extensions?: Record<string, unknown>; originalError?: unknown }[] } | undefined)?.errors;
    if (!span || !errors?.length) return;
    // The stable code a client sees: a domain error's own, or one already set on the GraphQL error.
    const first = errors[0]!;
    const code = first.originalError instanceof DomainError ? first.originalError.code : first.extensions?.['code'];
    span.setAttribute(ATTR_ERROR_TYPE, typeof code === 'string' ? code : 'GRAPHQL_ERROR');
    span.setStatus({ code: SpanStatusCode.ERROR });
  };

  return {
    instrumentation: {
      execute: around('execute') as never,
      subscribe: around('subscribe') as never,
    },
    onExecute({ args }) {
      const span = name(args);
      return { onExecuteDone: ({ result }) => failed(span, result) };
    },
    onSubscribe({ args }) {
      const span = name(args);
      return { onSubscribeResult: ({ result }) => failed(span, result) };
    },
  };
}
