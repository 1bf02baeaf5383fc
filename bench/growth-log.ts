import pg from 'pg';

/**
 * A large event log built with set-based SQL, for bench:relay's growth section: projects of
 * chat sessions and worker spaces with their events, numbered and placed as the write path would
 * have left them, and delivery positions as the publisher would have left them.
 *
 * A project of `sessions` sessions holds 100 events per session over the last 90 days: every 20th
 * event of the project (by `project_sequence`) an agent switch in one of its users' worker spaces
 * (one user and one worker space per 10 sessions, 50 switches each), the rest messages, 95 per
 * session, one session after another, a user message and the agent's reply in turn. Event `k` of a
 * project is its `project_sequence` and is created at `k / events` of the way through the 90
 * days (plus a per-project phase), so the project's sequence follows time, as commit order does.
 *
 * Events are written slice by slice of the 90 days, every project's events of one slice in one
 * statement and transaction, ordered by `created_at`: the table holds the projects' events
 * interleaved in time, as a live log would, and each transaction writes about SLICE_EVENTS events
 * (a live system writes one or two per transaction: the transaction-id index is smaller here than
 * it would be there). Payloads are built as the event contract's constructors build them and pass
 * its checks when read back. Ids are UUIDv7-like (their time part from `created_at`), as `newId`
 * makes them. The `message` table is not written: nothing measured reads it.
 */

/** Events per session of every seeded project. */
export const EVENTS_PER_SESSION = 100;
const MESSAGES_PER_SESSION = 95;
/** Each user has one session in ten (session s is user s % users's) and one worker space. */
const SESSIONS_PER_USER = 10;
const AGENTS_PER_PROJECT = 3;
/** Every 20th event of a project is a switch: 5 per session, 50 per user's worker space. */
const SWITCHES_PER_SPACE = (EVENTS_PER_SESSION / 20) * SESSIONS_PER_USER;
const DAYS = 90;
/** About this many events per statement (and transaction). */
const SLICE_EVENTS = 50_000;

/** The bench's own record of the projects it seeded: their numbers and sizes. */
const PROJECTS_TABLE = `
  create table if not exists growth_project (
    n int primary key,
    id uuid not null unique,
    sessions int not null,
    users int not null,
    events int not null,
    -- Where in each slice of time the project's events fall (0..1), so projects do not write in lockstep.
    phase float8 not null
  )`;

/** Ids derived from a project's number, so every statement finds the same rows without a lookup. */
const projectId = (n: string) => `md5('growth-project-' || ${n})::uuid`;
const sessionId = (n: string, s: string) => `md5('growth-session-' || ${n} || '-' || ${s})::uuid`;
const spaceId = (n: string, u: string) => `md5('growth-space-' || ${n} || '-' || ${u})::uuid`;
const agentId = (n: string, a: string) => `md5('growth-agent-' || ${n} || '-' || ${a})::uuid`;
const userId = (n: string, u: string) => `'user-' || ${n} || '-' || ${u}`;
/** A message's id from its event's project sequence. */
const messageId = (n: string, k: string) => `md5('growth-message-' || ${n} || '-' || ${k})::uuid`;
/** The project sequence of the project's m-th message (0-based): every 20th event is a switch. */
const messageK = (m: string) => `(${m}) + (${m}) / 19 + 1`;

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;

/**
 * The rows of the chosen projects' events with `k` in the slice, as event_outbox columns.
 * Parameters: $1 first project number, $2 last, $3 slice, $4 slices, $5 the start of the 90 days.
 */
const SLICE_EVENTS_SQL = `
  insert into event_outbox (id, event_type, aggregate_type, aggregate_id, sequence, project_sequence, project_id, user_id, session_id, payload, created_at)
  select
    -- UUIDv7: 48 bits of milliseconds, the version, then random bits (a v4's, past its own version).
    (lpad(to_hex((extract(epoch from e.created_at) * 1000)::bigint), 12, '0') || '7' || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid,
    case when e.switch then 'agent_switched' else 'message_created' end,
    case when e.switch then 'worker_space' else 'chat_session' end,
    case when e.switch then ${spaceId('e.n', 'w.u')} else m.session_id end,
    case when e.switch then w.sequence else m.sequence end,
    e.k, e.project_id,
    case when e.switch or m.role = 'user' then ${userId('e.n', 'coalesce(w.u, m.s % e.users)')} else 'agent:' || m.agent_id end,
    case when e.switch then null else m.session_id end,
    case when e.switch then jsonb_build_object(
      'workerSpaceId', ${spaceId('e.n', 'w.u')}::text,
      'fromAgentId', case when w.sequence > 1 then ${agentId('e.n', `((w.sequence - 2) % ${AGENTS_PER_PROJECT})`)}::text end,
      'fromAgentName', case when w.sequence > 1 then 'Agent ' || (w.sequence - 2) % ${AGENTS_PER_PROJECT} end,
      'toAgentId', ${agentId('e.n', `((w.sequence - 1) % ${AGENTS_PER_PROJECT})`)}::text,
      'toAgentName', 'Agent ' || (w.sequence - 1) % ${AGENTS_PER_PROJECT})
    else jsonb_build_object(
      'messageId', ${messageId('e.n', 'e.k')}::text,
      'sessionId', m.session_id::text,
      'authorUserId', case when m.role = 'user' then ${userId('e.n', '(m.s % e.users)')} else 'agent:' || m.agent_id end,
      'role', m.role,
      'body', case when m.role = 'user'
        then 'Could you go through item ' || e.k || ' of the release checklist and tell me what is still open before Friday?'
        else 'Item ' || e.k || ' is nearly done: the migration is merged and tested on staging, the docs still need the new settings, and '
             || 'the load test from Tuesday should be repeated once the index change is in. I would do the docs first.' end,
      'createdAt', to_char(e.created_at at time zone 'UTC', ${ISO}))
      || case when m.role = 'agent' then jsonb_build_object('agentId', m.agent_id::text, 'replyToMessageId', ${messageId('e.n', messageK('e.m - 1'))}::text) else '{}'::jsonb end
    end,
    e.created_at
  from (
    select p.n, p.id as project_id, p.users, k, k % 20 = 0 as switch, k - k / 20 - 1 as m,
           $5::timestamptz + ((k - 1) + p.phase) * (interval '${DAYS} days' / p.events) as created_at
    from growth_project p
    cross join lateral generate_series(p.events::bigint * $3 / $4 + 1, p.events::bigint * ($3 + 1) / $4) k
    where p.n between $1 and $2
  ) e
  left join lateral (
    select (e.k / 20 - 1) % e.users as u, (e.k / 20 - 1) / e.users + 1 as sequence where e.switch
  ) w on true
  left join lateral (
    select placed.s, ${sessionId('e.n', 'placed.s')} as session_id, placed.sequence,
           -- A session opens with a user message; each of its agent replies answers the message before it.
           case when placed.sequence % 2 = 1 then 'user' else 'agent' end as role, ${agentId('e.n', `(placed.s % ${AGENTS_PER_PROJECT})`)} as agent_id
    from (select e.m / ${MESSAGES_PER_SESSION} as s, e.m % ${MESSAGES_PER_SESSION} + 1 as sequence) placed where not e.switch
  ) m on true
  order by e.created_at`;

export interface SeededProject {
  n: number;
  id: string;
  sessions: number;
  events: number;
  /** A member of the project (its first user, the owner). */
  viewer: string;
}

/** Projects `first`..`last`, each of `sessions` sessions (EVENTS_PER_SESSION events per session). */
export interface ProjectGroup {
  first: number;
  last: number;
  sessions: number;
}

/**
 * Adds the groups' projects (numbered consecutively) with their members, agents, sessions, worker
 * spaces, events and delivery positions: everything delivered except the last `pendingPerSession`
 * events of each session. Counters (`project.event_sequence`, `chat_session.event_sequence`,
 * `worker_space.event_sequence`) are what the write path would have left. The events of every
 * group are written together, interleaved in time. Returns the projects.
 */
export async function seedProjects(client: pg.Client, url: string, groups: readonly ProjectGroup[], { pendingPerSession = 0 } = {}): Promise<SeededProject[]> {
  const first = Math.min(...groups.map((group) => group.first));
  const last = Math.max(...groups.map((group) => group.last));
  const start = new Date(Date.now() - DAYS * 86_400_000);
  await client.query(PROJECTS_TABLE);
  for (const group of groups) {
    await client.query(
      `insert into growth_project (n, id, sessions, users, events, phase)
       select n, ${projectId('n')}, $3, $4, $5, (n * 0.6180339887) % 1 from generate_series($1::int, $2::int) n`,
      [group.first, group.last, group.sessions, group.sessions / SESSIONS_PER_USER, group.sessions * EVENTS_PER_SESSION],
    );
  }
  const chosen = (series = '') => `from growth_project p ${series} where p.n between $1 and $2`;
  await client.query(`insert into project (id, name, event_sequence, created_at) select p.id, 'Growth ' || p.n, p.events, $3 ${chosen()}`, [first, last, start]);
  await client.query(
    `insert into project_member (project_id, user_id, role)
     select p.id, ${userId('p.n', 'u')}, case when u = 0 then 'owner' else 'member' end ${chosen('cross join generate_series(0, p.users - 1) u')}`,
    [first, last],
  );
  await client.query(
    `insert into agent (id, project_id, name) select ${agentId('p.n', 'a')}, p.id, 'Agent ' || a ${chosen(`cross join generate_series(0, ${AGENTS_PER_PROJECT - 1}) a`)}`,
    [first, last],
  );
  await client.query(
    `insert into chat_session (id, project_id, title, created_by_user_id, event_sequence, created_at)
     select ${sessionId('p.n', 's')}, p.id, 'Session ' || s, ${userId('p.n', '(s % p.users)')}, ${MESSAGES_PER_SESSION}, $3
     ${chosen('cross join generate_series(0, p.sessions - 1) s')}`,
    [first, last, start],
  );
  // Each worker space's last switch was to agent (switches - 1) % agents.
  await client.query(
    `insert into worker_space (id, project_id, user_id, active_agent_id, event_sequence)
     select ${spaceId('p.n', 'u')}, p.id, ${userId('p.n', 'u')}, ${agentId('p.n', `((${SWITCHES_PER_SPACE} - 1) % ${AGENTS_PER_PROJECT})`)}, ${SWITCHES_PER_SPACE}
     ${chosen('cross join generate_series(0, p.users - 1) u')}`,
    [first, last],
  );
  const events = groups.reduce((sum, group) => sum + (group.last - group.first + 1) * group.sessions * EVENTS_PER_SESSION, 0);
  const slices = Math.max(1, Math.round(events / SLICE_EVENTS));
  await writeSlices(url, slices, (writer, slice) => writer.query(SLICE_EVENTS_SQL, [first, last, slice, slices, start]));
  // Positions as the publisher leaves them: delivered through the aggregate's last event, or
  // through the one before its pending tail (its head due now, never tried).
  await client.query(
    `insert into outbox_delivery (aggregate_id, aggregate_type, project_id, written_through, delivered_through, next_retry_at, delivered_at)
     select s.id, 'chat_session', s.project_id, s.event_sequence, s.event_sequence - $3, now(), now()
     from chat_session s join growth_project p on p.id = s.project_id where p.n between $1 and $2
     union all
     select w.id, 'worker_space', w.project_id, w.event_sequence, w.event_sequence, now(), now()
     from worker_space w join growth_project p on p.id = w.project_id where p.n between $1 and $2
     order by 1`,
    [first, last, pendingPerSession],
  );
  const { rows } = await client.query<{ n: number; id: string; sessions: number; events: number }>(`select n, id, sessions, events ${chosen()} order by n`, [first, last]);
  return rows.map((row) => ({ ...row, viewer: `user-${row.n}-0` }));
}

/** Slices written at once, each on a connection of its own: index maintenance, not the database's locks, bounds one writer. */
const WRITERS = 2;

/** Runs `write` for slices 0..slices-1, WRITERS at a time, oldest first. */
async function writeSlices(url: string, slices: number, write: (writer: pg.ClientBase, slice: number) => Promise<unknown>) {
  const writers = new pg.Pool({ connectionString: url, max: WRITERS });
  const configured = new WeakSet<pg.ClientBase>();
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        for (let slice = next++; slice < slices; slice = next++) {
          const writer = await writers.connect();
          try {
            if (!configured.has(writer)) {
              // How the seed's WAL is written, not what it leaves behind: commits do not wait for the flush,
              // and full-page images are compressed (superuser only; without it the seed is only slower).
              await writer.query('set synchronous_commit = off');
              await writer.query('set wal_compression = on').catch(() => {});
              configured.add(writer);
            }
            await write(writer, slice);
          } finally {
            writer.release();
          }
        }
      }),
    );
  } finally {
    await writers.end();
  }
}

/**
 * Moves the relay's and the agent runtime's watermarks to the oldest transaction still running,
 * as they would stand once every seeded event was registered and looked at: the publisher does
 * not rediscover the seeded events, and the agent runtime does not answer seeded user messages.
 */
export async function settleWatermarks(client: pg.Client): Promise<void> {
  await client.query(`update outbox_relay_state set transaction_id = pg_snapshot_xmin(pg_current_snapshot()), updated_at = now()`);
  await client.query(`update agent_runtime_state set transaction_id = pg_snapshot_xmin(pg_current_snapshot()), updated_at = now()`);
}

/** The id of a seeded project's session `s` (0-based). */
export async function sessionOf(client: pg.Client, project: SeededProject, s: number): Promise<string> {
  const { rows } = await client.query<{ id: string }>(`select ${sessionId('$1::int', '$2::int')} as id`, [project.n, s]);
  return rows[0]!.id;
}
