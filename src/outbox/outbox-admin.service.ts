import { sql } from 'kysely';
import type { Em } from '../db/orm.ts';
import { badInput } from '../errors.ts';
import { requireMembership, requireOwner } from '../projects/project.service.ts';
import { requireId } from '../validation.ts';
import type { EventType } from '../events/domain-event.ts';
import { reprocessFailed, type ReprocessedRow } from './outbox.sql.ts';
import { wakePublisherAfterCommit } from './outbox.wakeups.ts';

export const MAX_FAILED_EVENTS_LISTED = 100;
export const MAX_REPROCESS_IDS = 1_000;

export interface FailedEventInfo {
  eventId: string;
  type: EventType;
  sequence: number;
  sessionId: string | null;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
}

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
  const db = em.getKysely();
  const counts = await sql<{ pending: string; failed: string; oldest: string | null }>`
    select count(*) filter (where status = 'pending') as pending,
           count(*) filter (where status = 'failed') as failed,
           min(created_at) filter (where status = 'pending') as oldest
    from event_outbox where project_id = ${projectId} and status <> 'published'`.execute(db);
  const failed = await sql<{ id: string; event_type: EventType; sequence: number; session_id: string | null; attempts: number; last_error: string | null; created_at: string }>`
    select id, event_type, sequence, session_id, attempts, last_error, created_at
    from event_outbox where project_id = ${projectId} and status = 'failed'
    order by created_at limit ${MAX_FAILED_EVENTS_LISTED}`.execute(db);
  const row = counts.rows[0];
  return {
    projectId,
    pending: Number(row?.pending ?? 0),
    failed: Number(row?.failed ?? 0),
    // Raw SQL returns timestamps as strings; the DateTime scalar wants Dates.
    oldestPendingAt: row?.oldest ? new Date(row.oldest) : null,
    failedEvents: failed.rows.map((f) => ({
      eventId: f.id,
      type: f.event_type,
      sequence: f.sequence,
      sessionId: f.session_id,
      attempts: f.attempts,
      lastError: f.last_error,
      createdAt: new Date(f.created_at),
    })),
  };
}

/**
 * Puts a project's failed events (all, or the listed ones) back to pending with their original
 * eventId and a fresh set of attempts. Owners only. Returns the ids it requeued.
 */
export async function reprocessFailedEvents(
  em: Em,
  userId: string,
  input: { projectId: string; eventIds?: readonly string[] | null },
): Promise<ReprocessedRow[]> {
  const projectId = requireId('projectId', input.projectId);
  if (input.eventIds && input.eventIds.length > MAX_REPROCESS_IDS) {
    throw badInput('eventIds', `At most ${MAX_REPROCESS_IDS} eventIds at a time`);
  }
  const eventIds = input.eventIds?.map((id) => requireId('eventIds', id));
  return em.transactional(async (tx) => {
    await requireOwner(tx, userId, projectId);
    wakePublisherAfterCommit(tx);
    return reprocessFailed(tx.getKysely(), { projectId, ...(eventIds ? { eventIds } : {}) });
  });
}
