import { sql } from 'kysely';
import type { Db } from '../platform/db/database.ts';

/**
 * Every statement the agent runtime runs, in one place (the tables are made by
 * migrations/Migration20261201100000_agent_replies.ts). Each takes the query builder of the
 * EntityManager it runs in, so it joins that EntityManager's transaction.
 */

/** An agent_reply_job row as the runtime reads it. */
export interface ReplyJobRow {
  reply_to_message_id: string;
  project_id: string;
  session_id: string;
  agent_id: string;
  user_id: string;
  session_sequence: number;
  attempts: number;
}

/**
 * Turns committed user `message_created` events into reply jobs, and moves the watermark past
 * them, in one statement (so in one transaction): a job exists for every such event below the
 * watermark, and for none above it.
 *
 * Only events whose transaction is below the snapshot horizon (`pg_snapshot_xmin`) are read, so a
 * transaction still in flight (one that may yet commit or roll back) is never passed over: a
 * rolled-back message leaves no event, hence no job. The job is keyed by the message it answers
 * (`on conflict do nothing`), so two runtimes filling the same range at once, or a range filled
 * twice, give one job. The agent is the one active in the author's worker space at this moment;
 * a user with none, or with an `external` agent, gets no job. At most about `batchSize` events are read per call.
 */
export async function fillReplyJobs(db: Db, batchSize: number): Promise<{ jobs: number; more: boolean }> {
  const { rows } = await sql<{ jobs: string; more: boolean }>`
    with state as (
      select transaction_id from agent_runtime_state where id = 1 for update
    ),
    horizon as (
      select pg_snapshot_xmin(pg_current_snapshot()) as xid
    ),
    -- The end of this batch: the transaction of the (batchSize + 1)-th event, or the horizon. One
    -- transaction with more events than that is read whole rather than never.
    batch_end as (
      select coalesce(
        (select e.transaction_id from event_outbox e, state, horizon
         where e.transaction_id >= state.transaction_id and e.transaction_id < horizon.xid
           and e.transaction_id > state.transaction_id
         order by e.transaction_id offset ${batchSize} limit 1),
        (select xid from horizon)
      ) as xid
    ),
    inserted as (
      insert into agent_reply_job (reply_to_message_id, project_id, session_id, agent_id, user_id, session_sequence)
      select m.id, e.project_id, e.aggregate_id, ws.active_agent_id, e.user_id, e.sequence
      from event_outbox e
      cross join state
      cross join batch_end
      join message m on m.id = (e.payload->>'messageId')::uuid
      join worker_space ws on ws.project_id = e.project_id and ws.user_id = e.user_id and ws.active_agent_id is not null
      -- An external agent's replies come from its own runtime (agentInbox / postAgentReply).
      join agent a on a.id = ws.active_agent_id and a.kind <> 'external'
      where e.transaction_id >= state.transaction_id and e.transaction_id < batch_end.xid
        and e.event_type = 'message_created' and e.payload->>'role' = 'user'
      on conflict (reply_to_message_id) do nothing
      returning 1
    ),
    advanced as (
      update agent_runtime_state set transaction_id = batch_end.xid, updated_at = now()
      from batch_end
      where id = 1 and agent_runtime_state.transaction_id < batch_end.xid
      returning 1
    )
    select (select count(*) from inserted) as jobs,
           (select batch_end.xid < horizon.xid from batch_end, horizon) as more,
           (select count(*) from advanced) as advanced`.execute(db);
  return { jobs: Number(rows[0]?.jobs ?? 0), more: rows[0]?.more ?? false };
}

/**
 * Claims up to `limit` due jobs under `token` for `leaseMs`, counting the attempt now (a process
 * that dies mid-reply has used it). Per session, only the job of the oldest pending message can
 * be claimed, so one session's replies are written in the order of its messages, while other
 * sessions go on: a slow or failing agent holds back its own session only. SKIP LOCKED: runtimes
 * in several processes never claim the same job.
 */
export async function claimReplyJobs(db: Db, options: { limit: number; token: string; leaseMs: number }): Promise<ReplyJobRow[]> {
  const { rows } = await sql<ReplyJobRow>`
    update agent_reply_job j
    set attempts = j.attempts + 1,
        claimed_until = now() + make_interval(secs => ${options.leaseMs / 1000}::float8),
        claim_token = ${options.token}::uuid
    from (
      select c.reply_to_message_id
      from agent_reply_job c
      where c.status = 'pending' and c.next_attempt_at <= now() and (c.claimed_until is null or c.claimed_until <= now())
        and not exists (
          select 1 from agent_reply_job o
          where o.session_id = c.session_id and o.status = 'pending' and o.session_sequence < c.session_sequence
        )
      order by c.next_attempt_at, c.created_at
      limit ${options.limit}
      for update of c skip locked
    ) picked
    where j.reply_to_message_id = picked.reply_to_message_id
    returning j.reply_to_message_id, j.project_id, j.session_id, j.agent_id, j.user_id, j.session_sequence, j.attempts`.execute(db);
  return rows;
}

/** Extends the lease of jobs still held under `token`; returns the ids still held. */
export async function extendLeases(db: Db, ids: readonly string[], token: string, leaseMs: number): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const { rows } = await sql<{ reply_to_message_id: string }>`
    update agent_reply_job
    set claimed_until = now() + make_interval(secs => ${leaseMs / 1000}::float8)
    where reply_to_message_id = any(${ids}::uuid[]) and claim_token = ${token}::uuid
    returning reply_to_message_id`.execute(db);
  return new Set(rows.map((row) => row.reply_to_message_id));
}

/** The job is answered (by this process or, after a lapsed lease, another): it is never claimed again. */
export async function markJobFinished(db: Db, id: string, status: 'done' | 'failed', error: string | null = null): Promise<void> {
  await sql`
    update agent_reply_job
    set status = ${status}, finished_at = now(), claimed_until = null, claim_token = null, last_error = ${error}
    where reply_to_message_id = ${id}::uuid`.execute(db);
}

/** An attempt failed and another follows after `retryInMs`. Only while the claim is still ours. */
export async function scheduleRetry(db: Db, id: string, token: string, retryInMs: number, error: string): Promise<void> {
  await sql`
    update agent_reply_job
    set next_attempt_at = now() + make_interval(secs => ${retryInMs / 1000}::float8), last_error = ${error},
        claimed_until = null, claim_token = null
    where reply_to_message_id = ${id}::uuid and claim_token = ${token}::uuid`.execute(db);
}

/** Gives a job back without counting the attempt (the process is stopping, not failing). */
export async function releaseJob(db: Db, id: string, token: string): Promise<void> {
  await sql`
    update agent_reply_job
    set attempts = greatest(attempts - 1, 0), claimed_until = null, claim_token = null
    where reply_to_message_id = ${id}::uuid and claim_token = ${token}::uuid`.execute(db);
}
