import { dbOf } from '../../platform/db/database.ts';
import type { Em } from '../../platform/db/orm.ts';
import { badInput } from '../../platform/errors.ts';
import { deliveryCounts, failedEvents, type FailedEventInfo, type ReprocessedRow } from '../../outbox/outbox-delivery.repository.ts';
import { reprocessFailedEvents as reprocess } from '../../outbox/outbox-reprocessing.ts';
import type { Logger } from '../../platform/logger.ts';
import { requireMembership, requireOwner } from '../projects/project.service.ts';
import { requireId } from '../../platform/validation.ts';

export const MAX_FAILED_EVENTS_LISTED = 100;
export const MAX_REPROCESS_IDS = 1_000;

export type { FailedEventInfo };

export interface OutboxStatusReport {
  projectId: string;
  pending: number;
  failed: number;
  /** When the oldest pending (not failed) event of the project was committed, or null when none is. */
  oldestPendingAt: Date | null;
  failedEvents: FailedEventInfo[];
}

/** Pending and failed counts for one project, read from the partial indexes only. */
export async function getOutboxStatus(em: Em, userId: string, projectIdInput: string): Promise<OutboxStatusReport> {
  const projectId = requireId('projectId', projectIdInput);
  await requireMembership(em, userId, projectId);
  const db = dbOf(em);
  const counts = await deliveryCounts(db, projectId);
  return {
    projectId,
    pending: counts.pending,
    failed: counts.failed,
    oldestPendingAt: counts.oldestPendingAt,
    failedEvents: await failedEvents(db, projectId, MAX_FAILED_EVENTS_LISTED),
  };
}
/**
 * Puts a project's failed events (all, or the listed ones) back to pending with their original
 * eventId and a fresh set of attempts. Owners only. Returns the ids it requeued.
 */
export async function reprocessFailedEvents(
  em: Em,
  logger: Logger,
  userId: string,
  input: { projectId: string; eventIds?: readonly string[] | null },
): Promise<ReprocessedRow[]> {
  const projectId = requireId('projectId', input.projectId);
  if (input.eventIds && input.eventIds.length > MAX_REPROCESS_IDS) {
    throw badInput('eventIds', `At most ${MAX_REPROCESS_IDS} eventIds at a time`);
  }
  const eventIds = input.eventIds?.map((id) => requireId('eventIds', id));
  return reprocess(em, logger, {
    projectId,
    ...(eventIds ? { eventIds } : {}),
    by: 'mutation',
    userId,
    authorize: (tx) => requireOwner(tx, userId, projectId),
  });
}
