import { context, propagation, ROOT_CONTEXT, trace, type Context, type Link, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { TracingConfig } from '../config.ts';

/**
 * OpenTelemetry tracing for the whole process. Code that makes spans asks the OpenTelemetry API
 * (`tracer()`), never this module's state: while tracing is off nothing is registered, the API
 * hands out no-op spans, `context.active()` is always the root and no trace context is stored
 * with events, so the off path costs a few no-op calls and nothing else.
 *
 * When on, one provider is registered globally with an AsyncLocalStorage context manager (the
 * active span follows `await`s) and the W3C `traceparent`/`tracestate` propagator, which is also
 * the format a trace context is stored in with its outbox event (see `TraceCarrier`).
 */

/** The instrumentation scope of every span this service makes. */
export const TRACER_NAME = 'chat-outbox';

export const tracer = (): Tracer => trace.getTracer(TRACER_NAME);

/** A W3C trace context as HTTP headers carry it; stored with an outbox event and carried over the bus. */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string;
}

export interface Tracing {
  readonly enabled: boolean;
  /** Exports what is buffered (tests, benchmarks, shutdown). */
  forceFlush(): Promise<void>;
  /** Flushes, then unregisters everything: the API is back to no-op spans. */
  shutdown(): Promise<void>;
}

const OFF: Tracing = { enabled: false, forceFlush: async () => {}, shutdown: async () => {} };

export interface StartTracingOptions {
  /** Replaces the OTLP exporter's batch processor (tests and benchmarks pass an in-memory exporter). */
  spanProcessor?: SpanProcessor;
}

function samplerFor(config: Pick<TracingConfig, 'sampler' | 'ratio'>): Sampler {
  switch (config.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(config.ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.ratio) });
  }
}

/**
 * Registers tracing for the process when `config.enabled` (or a span processor is given); returns
 * a handle to flush and shut it down. Call once, before the server takes requests.
 */
export function startTracing(config: TracingConfig, options: StartTracingOptions = {}): Tracing {
  if (!config.enabled && !options.spanProcessor) return OFF;
  const spanProcessor = options.spanProcessor ?? new BatchSpanProcessor({ exporter: new OTLPTraceExporter(config.url ? { url: config.url } : {}) });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName }),
    sampler: samplerFor(config),
    spanProcessors: [spanProcessor],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  if (!context.setGlobalContextManager(contextManager) || !trace.setGlobalTracerProvider(provider) || !propagation.setGlobalPropagator(new W3CTraceContextPropagator())) {
    contextManager.disable();
    throw new Error('OpenTelemetry is already registered in this process: start tracing once');
  }
  return {
    enabled: true,
    forceFlush: () => provider.forceFlush(),
    async shutdown() {
      try {
        await provider.shutdown();
      } finally {
        trace.disable();
        context.disable();
        propagation.disable();
      }
    },
  };
}

/** The active trace context in W3C form, or null when there is none (tracing off, or no span). */
export function currentTraceCarrier(): TraceCarrier | null {
  if (!trace.getSpanContext(context.active())) return null;
  const carrier: Partial<TraceCarrier> = {};
  propagation.inject(context.active(), carrier);
  return typeof carrier.traceparent === 'string' ? (carrier as TraceCarrier) : null;
}

/** A context whose parent is the stored trace context (the root when there is none). */
export function contextFrom(carrier: TraceCarrier | null | undefined): Context {
  return carrier ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT;
}

/** A link to the stored trace context, or null when there is none or it does not parse. */
export function linkTo(carrier: TraceCarrier | null | undefined): Link | null {
  const spanContext = carrier && trace.getSpanContext(contextFrom(carrier));
  return spanContext ? { context: spanContext } : null;
}

/** Reads a stored or received trace context back; anything else is dropped (tracing is best effort). */
export function parseTraceCarrier(value: unknown): TraceCarrier | null {
  if (typeof value !== 'object' || value === null) return null;
  const { traceparent, tracestate } = value as Record<string, unknown>;
  if (typeof traceparent !== 'string' || traceparent.length > 256) return null;
  return typeof tracestate === 'string' && tracestate.length <= 512 ? { traceparent, tracestate } : { traceparent };
}

/**
 * Attribute names from OpenTelemetry's semantic conventions that are still "development" there:
 * copied rather than imported from `@opentelemetry/semantic-conventions/incubating`, as that
 * package advises, so a minor release of it cannot rename them under us.
 */
export const SEMCONV = {
  graphqlOperationName: 'graphql.operation.name',
  graphqlOperationType: 'graphql.operation.type',
  messagingSystem: 'messaging.system',
  messagingOperationType: 'messaging.operation.type',
  messagingOperationName: 'messaging.operation.name',
  messagingDestinationName: 'messaging.destination.name',
  messagingMessageId: 'messaging.message.id',
  messagingBatchMessageCount: 'messaging.batch.message_count',
} as const;
