import type pg from 'pg';
import { messageCreated, type NewDomainEvent } from '../../src/events/domain-event.ts';
import type { OutboxStatus } from '../../src/outbox/outbox-event.entity.ts';

/**
 * An event to put straight into event_outbox, bypassing the write path: built with the event
 * contract's constructors (so its payload is what the write path would store), numbered by the
 * caller as the write path would have numbered it.
 */
export interface SeedEvent {
  event: NewDomainEvent;
  sequence: number;
  projectSequence: number;
  id?: string;
  status?: OutboxStatus;
  attempts?: number;
  lastError?: string | null;
  createdAt?: Date;
  /** Defaults to now() for published events. */
  publishedAt?: Date | null;
}

/** Rows per statement: one JSON parameter each, so a large seed stays a few round trips. */
const CHUNK = 5_000;

/** Inserts the events in order, in as few statements as it can; returns their ids. */
export async function insertEvents(db: pg.Client, events: readonly SeedEvent[]): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < events.length; start += CHUNK) {
    const rows = events.slice(start, start + CHUNK).map((seed) => {
      const id = seed.id ?? crypto.randomUUID();
      ids.push(id);
      const status = seed.status ?? 'pending';
      const createdAt = (seed.createdAt ?? new Date()).toISOString();
      return {
        id,
        event_type: seed.event.type,
        aggregate_type: seed.event.aggregate.type,
        aggregate_id: seed.event.aggregate.id,
        sequence: seed.sequence,
        project_sequence: seed.projectSequence,
        project_id: seed.event.projectId,
        user_id: seed.event.userId,
        session_id: seed.event.sessionId,
        payload: seed.event.payload,
        status,
        attempts: seed.attempts ?? 0,
        last_error: seed.lastError ?? null,
        created_at: createdAt,
        published_at: status === 'published' ? (seed.publishedAt ?? new Date()).toISOString() : null,
      };
    });
    await db.query(
      `insert into event_outbox (id, event_type, aggregate_type, aggregate_id, sequence, project_sequence, project_id, user_id,
                                 session_id, payload, status, attempts, last_error, created_at, next_retry_at, published_at)
       select id, event_type, aggregate_type, aggregate_id, sequence, project_sequence, project_id, user_id,
              session_id, payload, status, attempts, last_error, created_at, now(), published_at
       from jsonb_to_recordset($1::jsonb) as r(id uuid, event_type text, aggregate_type text, aggregate_id uuid, sequence int,
         project_sequence int, project_id uuid, user_id text, session_id uuid, payload jsonb, status text, attempts int,
         last_error text, created_at timestamptz, published_at timestamptz)`,
      [JSON.stringify(rows)],
    );
  }
  return ids;
}

/** A user's message_created event in `sessionId`, as the write path records it. */
export function seedMessage(projectId: string, sessionId: string, options: { body?: string; authorUserId?: string; createdAt?: Date } = {}) {
  return messageCreated(projectId, {
    messageId: crypto.randomUUID(),
    sessionId,
    authorUserId: options.authorUserId ?? 'seed-user',
    role: 'user',
    body: options.body ?? 'seeded',
    createdAt: (options.createdAt ?? new Date()).toISOString(),
  });
}

/**
 * Inserts `sessions` x `perSession` pending message_created events straight into the outbox, as
 * the write path would have numbered them, for exercising publishers at volume. Returns the
 * session (aggregate) ids.
 */
export async function seedPendingEvents(db: pg.Client, options: { sessions: number; perSession: number; projectId?: string }) {
  const projectId = options.projectId ?? crypto.randomUUID();
  const sessionIds = Array.from({ length: options.sessions }, () => crypto.randomUUID());
  const { rows } = await db.query<{ last: number }>('select coalesce(max(project_sequence), 0)::int as last from event_outbox where project_id = $1', [projectId]);
  let projectSequence = rows[0]!.last;
  const start = Date.now();
  const events: SeedEvent[] = [];
  for (let sequence = 1; sequence <= options.perSession; sequence++) {
    for (const sessionId of sessionIds) {
      // Created in sequence order, a millisecond apart, all in the past: every one is due.
      const createdAt = new Date(start - options.perSession + sequence);
      events.push({ event: seedMessage(projectId, sessionId, { createdAt }), sequence, projectSequence: ++projectSequence, createdAt });
    }
  }
  await insertEvents(db, events);
  return { projectId, sessionIds };
}
