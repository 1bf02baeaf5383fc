import type pg from 'pg';

/**
 * Inserts `sessions` x `perSession` pending message_created events straight into the outbox, as
 * the write path would have numbered them, for exercising publishers at volume. Returns the
 * session (aggregate) ids.
 */
export async function seedPendingEvents(db: pg.Client, options: { sessions: number; perSession: number; projectId?: string }) {
  const projectId = options.projectId ?? crypto.randomUUID();
  const sessionIds = Array.from({ length: options.sessions }, () => crypto.randomUUID());
  await db.query(
    `insert into event_outbox (id, event_type, aggregate_type, aggregate_id, sequence, project_sequence, project_id,
                               user_id, session_id, payload, status, created_at, next_retry_at)
     select gen_random_uuid(), 'message_created', 'chat_session', s.id, n.seq,
            row_number() over (order by n.seq, s.ord) + coalesce((select max(project_sequence) from event_outbox where project_id = $1), 0),
            $1, 'seed-user', s.id,
            jsonb_build_object('messageId', gen_random_uuid(), 'sessionId', s.id, 'role', 'user', 'body', 'seeded', 'authorUserId', 'seed-user',
                               'createdAt', now()),
            'pending', now() + (n.seq * interval '1 microsecond'), now()
     from unnest($2::uuid[]) with ordinality as s(id, ord)
     cross join generate_series(1, $3::int) as n(seq)`,
    [projectId, sessionIds, options.perSession],
  );
  return { projectId, sessionIds };
}
