import { SpanKind, SpanStatusCode, type Context, type Link } from '@opentelemetry/api';
import { ATTR_DB_OPERATION_NAME, ATTR_DB_SYSTEM_NAME, DB_SYSTEM_NAME_VALUE_POSTGRESQL } from '@opentelemetry/semantic-conventions';
import { contextFrom, linkTo, parseTraceCarrier, SEMCONV, tracer, type TraceCarrier } from '../platform/observability/tracing.ts';
import type { OutboxRow } from './outbox.sql.ts';

/**
 * The publisher's spans. A batch carries events of many requests, each with the trace context it
 * was written under (event_outbox.trace_context), so each span links to every one of them; when
 * the whole batch comes from one trace (one mutation's events, the usual case while traffic is
 * light) the span is also a child in that trace, which then reads mutation → transaction →
 * claim → publish → delivery in one view.
 */

/** The SDK keeps at most this many links per span by default; a batch can hold more events. */
const MAX_LINKS = 128;

function batchTrace(rows: readonly OutboxRow[]): { parent: Context; links: Link[] } {
  const carriers = new Map<string, TraceCarrier>();
  for (const row of rows) {
    const carrier = parseTraceCarrier(row.trace_context);
    if (carrier && carriers.size < MAX_LINKS) carriers.set(carrier.traceparent, carrier);
  }
  const links = [...carriers.values()].map(linkTo).filter((link): link is Link => link !== null);
  const traceIds = new Set(links.map((link) => link.context.traceId));
  const only = traceIds.size === 1 && links.length === carriers.size ? [...carriers.values()][0] : undefined;
  return { parent: contextFrom(only), links };
}

const now = () => performance.timeOrigin + performance.now();

/**
 * Runs the claim and, when it claimed events, records an `outbox claim` span for it afterwards (with
 * the claim's start time). An empty claim (every poll of an idle publisher) makes no span: it would
 * only bury the traces that matter.
 */
export async function tracedClaim<T extends { rows: OutboxRow[] }>(claim: () => Promise<T>): Promise<T> {
  const startTime = now();
  const result = await claim();
  if (result.rows.length === 0) return result;
  const { parent, links } = batchTrace(result.rows);
  tracer()
    .startSpan('outbox claim', {
      kind: SpanKind.CLIENT,
      startTime,
      links,
      attributes: {
        [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
        [ATTR_DB_OPERATION_NAME]: 'claim',
        [SEMCONV.messagingBatchMessageCount]: result.rows.length,
      },
    }, parent)
    .end();
  return result;
}

/**
 * Runs one publish call of a batch inside an `outbox publish` span; an event the bus refused marks
 * it failed. Not an async function: a bus that throws at once still throws at once, as it would
 * untraced (the publisher treats that as a failed cycle, not as refused events).
 */
export function tracedPublish(rows: readonly OutboxRow[], publish: () => Promise<(Error | null)[]>): Promise<(Error | null)[]> {
  const { parent, links } = batchTrace(rows);
  const span = tracer().startSpan('outbox publish', {
    kind: SpanKind.PRODUCER,
    links,
    attributes: {
      [SEMCONV.messagingOperationType]: 'send',
      [SEMCONV.messagingOperationName]: 'publish',
      [SEMCONV.messagingBatchMessageCount]: rows.length,
    },
  }, parent);
  if (!span.isRecording()) return publish();
  const failed = (error: unknown) => {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  };
  let pending: Promise<(Error | null)[]>;
  try {
    pending = publish();
  } catch (error) {
    failed(error);
    throw error;
  }
  return pending.then(
    (results) => {
      const refused = results.find((result) => result !== null);
      if (refused) span.setStatus({ code: SpanStatusCode.ERROR, message: refused.message });
      span.end();
      return results;
    },
    (error: unknown) => {
      failed(error);
      throw error;
    },
  );
}
