import type { Logger } from '../platform/logger.ts';
import type { EventType } from '../events/domain-event.ts';

/**
 * The log records of the outbox lifecycle, in one place so every line about an event has the same
 * fields (`eventId`, `eventType`, `projectId`, `attempts`, and where known `aggregateId` and
 * `sequence`) and none has the payload: these helpers copy named fields only, so passing a whole
 * row or entity is safe.
 *
 * Levels: per-event success lines are debug (thousands per second under load); a scheduled retry is
 * warn, a failed event is error, reprocessing and publisher start/stop are info.
 */

/** The columns of an event_outbox row the logs use: a claimed or a reprocessed row fits as it is. */
export interface OutboxLogEvent {
  id: string;
  event_type: EventType;
  project_id: string;
  attempts: number;
  aggregate_type?: string;
  aggregate_id?: string;
  sequence?: number;
}

/** The one mapping from a row to the fields of a log record. */
export function outboxEventFields(row: OutboxLogEvent) {
  return {
    eventId: row.id,
    eventType: row.event_type,
    projectId: row.project_id,
    attempts: row.attempts,
    ...(row.aggregate_type !== undefined ? { aggregateType: row.aggregate_type } : {}),
    ...(row.aggregate_id !== undefined ? { aggregateId: row.aggregate_id } : {}),
    ...(row.sequence !== undefined ? { sequence: row.sequence } : {}),
  };
}

export function logPublisherStarted(logger: Logger, settings: Readonly<Record<string, string | number | boolean>> = {}): void {
  logger.info({ outbox: 'publisher_started', ...settings }, 'outbox publisher started');
}

export function logPublisherStopped(logger: Logger, details: { reason?: string } = {}): void {
  logger.info({ outbox: 'publisher_stopped', ...details }, 'outbox publisher stopped');
}

/** A cycle ran past OUTBOX_CYCLE_TIMEOUT_MS: its connections were destroyed, its events wait for the lease. */
export function logCycleAbandoned(logger: Logger, details: { timeoutMs: number; severedConnections: number; claimLeaseMs: number }): void {
  logger.error({ outbox: 'cycle_abandoned', ...details }, 'outbox publisher cycle abandoned past its deadline; its connections were destroyed and its claimed events wait for their lease');
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
