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
        created_at: createdAt,
      };
    });
    await db.query(
      `insert into event_outbox (id, event_type, aggregate_type, aggregate_id, sequence, project_sequence, project_id, user_id,
                                 session_id, payload, created_at)
       select id, event_type, aggregate_type, aggregate_id, sequence, project_sequence, project_id, user_id,
              session_id, payload, created_at
       from jsonb_to_recordset($1::jsonb) as r(id uuid, event_type text, aggregate_type text, aggregate_id uuid, sequence int,
         project_sequence int, project_id uuid, user_id text, session_id uuid, payload jsonb, created_at timestamptz)`,
      [JSON.stringify(rows)],
    );
  }
  // Delivery states other than "pending, never tried" live in the aggregate's position.
  const states = new Map<string, { event: NewDomainEvent; deliveredThrough: number; head?: SeedEvent }>();
  for (const seed of events) {
    const status = seed.status ?? 'pending';
    if (status === 'pending' && !seed.attempts && !seed.lastError) continue;
    const state = states.get(seed.event.aggregate.id) ?? { event: seed.event, deliveredThrough: 0 };
    if (status === 'published') state.deliveredThrough = Math.max(state.deliveredThrough, seed.sequence);
    else if (!state.head || seed.sequence < state.head.sequence) state.head = seed;
    states.set(seed.event.aggregate.id, state);
  }
  const positions = [...states].map(([aggregateId, state]) => {
    if (state.head && state.head.sequence !== state.deliveredThrough + 1) throw new Error('seed: only the event after the published ones can be failed or retried');
    return { aggregateId, deliveredThrough: state.deliveredThrough, attempts: state.head?.attempts ?? 0, lastError: state.head?.lastError ?? null, failed: state.head?.status === 'failed' };
  });
  for (let start = 0; start < positions.length; start += CHUNK) await setDeliveryStates(db, positions.slice(start, start + CHUNK));
  return ids;
}

/**
 * Sets an aggregate's delivery position and its head's bookkeeping, as the publisher would have
 * left them: events up to `deliveredThrough` published, the next one failed or waiting with
 * `attempts` and `lastError`, the rest pending.
 */
export async function setDeliveryState(db: pg.Client, aggregateId: string, state: DeliveryState): Promise<void> {
  await setDeliveryStates(db, [{ aggregateId, ...state }]);
}

export interface DeliveryState {
  deliveredThrough: number;
  attempts?: number;
  lastError?: string | null;
  failed?: boolean;
  retryInSeconds?: number;
}

/** Many at once, locking rows in key order as the relay does (docs/design-notes.md#lock-order): safe beside a running relay. */
export async function setDeliveryStates(db: pg.Client, states: readonly (DeliveryState & { aggregateId: string })[]): Promise<void> {
  const rows = states.map((state) => ({
    aggregate_id: state.aggregateId,
    delivered_through: state.deliveredThrough,
    attempts: state.attempts ?? 0,
    last_error: state.lastError ?? null,
    failed: state.failed ?? false,
    retry_in_seconds: state.retryInSeconds ?? 0,
  }));
  await db.query(
    `insert into outbox_delivery as d (aggregate_id, aggregate_type, project_id, written_through, delivered_through, attempts, last_error, failed_at, next_retry_at, delivered_at)
     select e.aggregate_id, min(e.aggregate_type), (array_agg(e.project_id))[1], greatest(max(e.sequence), min(s.delivered_through)), min(s.delivered_through),
            min(s.attempts), min(s.last_error), case when bool_or(s.failed) then now() end,
            now() + make_interval(secs => min(s.retry_in_seconds)), case when min(s.delivered_through) > 0 then now() end
     from jsonb_to_recordset($1::jsonb) as s(aggregate_id uuid, delivered_through int, attempts int, last_error text, failed boolean, retry_in_seconds float8)
     join event_outbox e on e.aggregate_id = s.aggregate_id
     group by e.aggregate_id
     order by e.aggregate_id
     on conflict (aggregate_id) do update set written_through = greatest(d.written_through, excluded.written_through),
       delivered_through = excluded.delivered_through, attempts = excluded.attempts, last_error = excluded.last_error,
       failed_at = excluded.failed_at, next_retry_at = excluded.next_retry_at, delivered_at = excluded.delivered_at,
       claimed_until = null, claim_token = null, claimed_through = null`,
    [JSON.stringify(rows)],
  );
}

/** Every event of the aggregates matching `where` (on event_outbox) published, as the publisher leaves them. */
export async function deliverAll(db: pg.Client, where = 'true', params: unknown[] = []): Promise<void> {
  const { rows } = await db.query<{ aggregate_id: string; through: number }>(
    `select aggregate_id, max(sequence)::int as through from event_outbox where ${where} group by aggregate_id`,
    params,
  );
  for (let start = 0; start < rows.length; start += CHUNK) {
    await setDeliveryStates(db, rows.slice(start, start + CHUNK).map((row) => ({ aggregateId: row.aggregate_id, deliveredThrough: row.through })));
  }
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
