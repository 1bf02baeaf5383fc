import type { Logger } from '../platform/logger.ts';
import type { Metrics } from '../platform/observability/metrics.ts';
import { logBatchClaimed, logFailed, logPublished, logRetryScheduled } from './outbox.log.ts';
import type { PublisherObserver } from './outbox.publisher.ts';
import type { OutboxRow } from './outbox.sql.ts';

/** Turns what the publisher reports into metrics and lifecycle log lines (never payloads). */
export function createPublisherObserver(deps: { metrics: Metrics; logger: Logger }): PublisherObserver {
  const { metrics, logger } = deps;
  return {
    batchClaimed(rows) {
      metrics.outbox.recordBatchClaimed(rows.length);
      logBatchClaimed(logger, { count: rows.length, eventIds: rows.map((row) => row.id) });
    },
    published(rows) {
      const now = new Date();
      for (const row of rows) {
        const createdAt = new Date(row.created_at);
        metrics.outbox.recordPublishAttempts(row.event_type, 'success');
        metrics.outbox.recordPublished({ eventType: row.event_type, createdAt }, now);
        logPublished(logger, row, { latencyMs: now.getTime() - createdAt.getTime() });
      }
    },
    retryScheduled(row, delayMs, error) {
      metrics.outbox.recordPublishAttempts(row.event_type, 'retry');
      logRetryScheduled(logger, row, { delayMs, error });
    },
    cycleAbandoned(_timeoutMs, severed) {
      metrics.outbox.recordCycleAbandoned();
      metrics.outbox.recordConnectionReplaced('publisher_db', severed);
    },
    failed(row, error) {
      metrics.outbox.recordPublishAttempts(row.event_type, 'failed');
      logFailed(logger, row, { error });
    },
  };
}
