import { SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api';
import type { EventSubscriber, TransactionEventArgs } from '@mikro-orm/core';
import { ATTR_DB_OPERATION_NAME, ATTR_DB_SYSTEM_NAME, DB_SYSTEM_NAME_VALUE_POSTGRESQL } from '@opentelemetry/semantic-conventions';
import { tracer } from './tracing.ts';

/**
 * A span per database transaction (`db transaction`), from BEGIN to COMMIT or ROLLBACK, for
 * every `em.transactional` of the service: a mutation's unit of work, the outbox admin's
 * reprocess, the analytics rollup. It is a child of whatever is active when the transaction
 * starts (the GraphQL operation's span), and a rollback marks it as an error.
 *
 * Why transactions and not statements: `@opentelemetry/instrumentation-pg` would give a span per
 * statement, but it patches `pg` as it is loaded, which under Node's native ESM loading needs a
 * loader hook registered with `--import` before anything imports `pg`, in every entry point and
 * in the test runner's workers. The ORM's own transaction events need none of that. The
 * publisher's claim, its one statement that matters, has a span of its own (outbox.tracing.ts).
 */
export function transactionTracing(): EventSubscriber {
  // One EntityManager fork per transaction; a nested transactional() (a savepoint) stacks on it.
  const open = new WeakMap<object, Span[]>();

  const finish = (args: TransactionEventArgs, error: boolean) => {
    const span = open.get(args.em)?.pop();
    if (!span) return;
    if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: 'rolled back' });
    span.end();
  };

  return {
    beforeTransactionStart(args) {
      const nested = args.transaction !== undefined;
      const span = tracer().startSpan(nested ? 'db savepoint' : 'db transaction', {
        kind: SpanKind.CLIENT,
        attributes: { [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_POSTGRESQL, [ATTR_DB_OPERATION_NAME]: nested ? 'SAVEPOINT' : 'BEGIN' },
      });
      if (!span.isRecording()) return;
      let stack = open.get(args.em);
      if (!stack) open.set(args.em, (stack = []));
      stack.push(span);
    },
    afterTransactionCommit: (args) => finish(args, false),
    afterTransactionRollback: (args) => finish(args, true),
  };
}

/**
 * The `db transaction` span of a write that is one statement and so its own transaction (no
 * BEGIN, no COMMIT: PostgreSQL commits it as it ends), like the spans of the ORM's transactions.
 * The span is not made active: what `work` computes beforehand (the trace context stored with an
 * event) stays the operation's.
 */
export async function traceStatementTransaction<T>(operation: string, work: () => Promise<T>): Promise<T> {
  const span = tracer().startSpan('db transaction', {
    kind: SpanKind.CLIENT,
    attributes: { [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_POSTGRESQL, [ATTR_DB_OPERATION_NAME]: operation },
  });
  if (!span.isRecording()) return work();
  try {
    return await work();
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'rolled back' });
    throw error;
  } finally {
    span.end();
  }
}
