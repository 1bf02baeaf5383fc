import type { Logger } from '../logger.ts';
import type { AggregateType, EventType } from '../events/domain-event.ts';

/**
 * The log records of the outbox lifecycle, in one place so every line about an event has the same
 * fields (`eventId`, `eventType`, `projectId`, `attempts`, and where known `aggregateId` and
 * `sequence`) and none has the payload: these helpers copy named fields only, so passing a whole
 * row or entity is safe.
 *
 * Levels: per-event success lines are debug (thousands per second under load); a scheduled retry is
 * warn, a failed event is error, reprocessing and publisher start/stop are info.
 */

/** The part of an outbox row the logs use. An `IOutboxEvent` fits; so does a raw row mapped to these names. */
export interface OutboxLogEvent {
  id: string;
  eventType: EventType;
  projectId: string;
  attempts: number;
  aggregateType?: AggregateType;
  aggregateId?: string;
  sequence?: number;
}

export function outboxEventFields(event: OutboxLogEvent) {
  return {
    eventId: event.id,
    eventType: event.eventType,
    projectId: event.projectId,
    attempts: event.attempts,
    ...(event.aggregateType !== undefined ? { aggregateType: event.aggregateType } : {}),
    ...(event.aggregateId !== undefined ? { aggregateId: event.aggregateId } : {}),
    ...(event.sequence !== undefined ? { sequence: event.sequence } : {}),
  };
}

export function logPublisherStarted(logger: Logger, settings: Readonly<Record<string, string | number | boolean>> = {}): void {
  logger.info({ outbox: 'publisher_started', ...settings }, 'outbox publisher started');
}

/** `releasedEvents`: claimed but unpublished events handed back at stop (they stay pending). */
export function logPublisherStopped(logger: Logger, details: { reason?: string; releasedEvents?: number } = {}): void {
  logger.info({ outbox: 'publisher_stopped', ...details }, 'outbox publisher stopped');
}

export function logBatchClaimed(logger: Logger, batch: { count: number; eventIds?: readonly string[] }): void {
  if (!logger.isLevelEnabled('debug')) return;
  logger.debug({ outbox: 'batch_claimed', count: batch.count, ...(batch.eventIds ? { eventIds: batch.eventIds } : {}) }, 'outbox batch claimed');
}

export function logPublished(logger: Logger, event: OutboxLogEvent, details: { latencyMs?: number } = {}): void {
  if (!logger.isLevelEnabled('debug')) return;
  logger.debug({ outbox: 'published', ...outboxEventFields(event), ...details }, 'outbox event published');
}

/** `attempts` is the count including the attempt that just failed. */
export function logRetryScheduled(logger: Logger, event: OutboxLogEvent, details: { delayMs: number; error: unknown; nextRetryAt?: Date }): void {
  logger.warn(
    {
      outbox: 'retry_scheduled',
      ...outboxEventFields(event),
      delayMs: details.delayMs,
      ...(details.nextRetryAt ? { nextRetryAt: details.nextRetryAt.toISOString() } : {}),
      err: details.error,
    },
    'outbox publish failed; retry scheduled',
  );
}

export function logFailed(logger: Logger, event: OutboxLogEvent, details: { error: unknown }): void {
  logger.error({ outbox: 'failed', ...outboxEventFields(event), err: details.error }, 'outbox event failed after its last retry');
}

/** `by`: who asked (`mutation` with the user id, or `cli`). The event keeps its id: subscribers deduplicate by it. */
export function logReprocessed(logger: Logger, event: OutboxLogEvent, details: { by: 'mutation' | 'cli'; userId?: string }): void {
  logger.info({ outbox: 'reprocessed', ...outboxEventFields(event), ...details }, 'failed outbox event put back to pending');
}
