import { dbOf } from '../platform/db/database.ts';
import type { Em } from '../platform/db/orm.ts';
import type { Logger } from '../platform/logger.ts';
import { notifyPublishers } from '../events/event-log.repository.ts';
import { requeueFailed, type ReprocessedRow } from './outbox-delivery.repository.ts';
import { logReprocessed } from './outbox.log.ts';
import { wakePublisherAfterCommit } from './outbox.wakeups.ts';

export interface ReprocessRequest {
  /** Only this project's failed events. */
  projectId?: string;
  /** Only these failed events. */
  eventIds?: readonly string[];
  /** Who asked, for the log: the mutation or the CLI. */
  by: 'mutation' | 'cli';
  userId?: string;
  /** Runs first, in the same transaction (an owner check); throwing requeues nothing. */
  authorize?: (tx: Em) => Promise<unknown>;
}

/**
 * The one way failed events are requeued, for the `reprocessFailedEvents` mutation and
 * `npm run outbox -- reprocess`: they get their original eventId and a fresh set of attempts. The
 * publisher is woken only once the requeue has committed (a NOTIFY inside the transaction would
 * take the global commit lock, and would wake publishers before the rows are visible): this
 * process's publisher by the commit hook, the others by a NOTIFY sent after commit.
 */
export async function reprocessFailedEvents(em: Em, logger: Logger, request: ReprocessRequest): Promise<ReprocessedRow[]> {
  const rows = await em.transactional(async (tx) => {
    await request.authorize?.(tx);
    const requeued = await requeueFailed(dbOf(tx), {
      ...(request.projectId ? { projectId: request.projectId } : {}),
      ...(request.eventIds ? { eventIds: request.eventIds } : {}),
    });
    if (requeued.length > 0) wakePublisherAfterCommit(tx);
    return requeued;
  });
  if (rows.length > 0) {
    // A lost NOTIFY costs latency only: publishers poll.
    await notifyPublishers(dbOf(em.fork())).catch((error: unknown) => {
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'outbox NOTIFY after reprocessing failed; publishers will find the events by polling');
    });
  }
  for (const row of rows) logReprocessed(logger, row, { by: request.by, ...(request.userId ? { userId: request.userId } : {}) });
  return rows;
}
