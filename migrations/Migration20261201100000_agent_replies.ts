import { Migration } from '@mikro-orm/migrations';

/**
 * What the agent runtime needs (docs/agents.md):
 *
 * - `agent.kind` / `agent.settings`: which adapter answers for the agent, and its settings (model,
 *   instructions, temperature, ...). Existing agents become `echo` agents.
 * - `message.reply_to_id`: the user message an agent (or the runtime's `system` failure notice)
 *   answers. Unique: a second answer to the same message cannot commit, whatever crashed, ran
 *   twice or was delivered twice. This constraint is the exactly-once guarantee; everything else
 *   only avoids wasted work.
 * - `agent_reply_job`: one row per user message that has an agent to answer it, keyed by that
 *   message. It is filled from committed `message_created` events (never from the request path),
 *   claimed with a lease and SKIP LOCKED, and retried with backoff.
 * - `agent_runtime_state`: how far the runtime has turned committed events into jobs, as a
 *   transaction id (the same horizon rule as analytics_rollup_state: an event whose transaction
 *   is below `pg_snapshot_xmin` can no longer commit behind the watermark). It starts at this
 *   migration's transaction, so the history before it asks for no replies.
 */
export class Migration20261201100000_agent_replies extends Migration {
  override up(): void {
    this.addSql(`alter table agent add column kind varchar(32) not null default 'echo' check (kind in ('echo', 'openai-compatible'))`);
    this.addSql(`alter table agent add column settings jsonb not null default '{}'::jsonb check (jsonb_typeof(settings) = 'object')`);

    this.addSql(`alter table message add column reply_to_id uuid references message (id) on delete set null`);
    this.addSql(`create unique index message_reply_to_id_key on message (reply_to_id) where reply_to_id is not null`);

    this.addSql(`
      create table agent_reply_job (
        reply_to_message_id uuid primary key references message (id) on delete cascade,
        project_id uuid not null references project (id) on delete cascade,
        session_id uuid not null references chat_session (id) on delete cascade,
        -- The agent that was active when the message committed: switching agent later does not
        -- change who answers it.
        agent_id uuid not null references agent (id) on delete cascade,
        user_id varchar(200) not null,
        -- The user message's position in its session: replies in one session are written in this order.
        session_sequence integer not null,
        status varchar(16) not null default 'pending' check (status in ('pending', 'done', 'failed')),
        attempts integer not null default 0,
        next_attempt_at timestamptz not null default now(),
        claimed_until timestamptz,
        claim_token uuid,
        last_error text,
        created_at timestamptz not null default now(),
        finished_at timestamptz,
        check ((claimed_until is null) = (claim_token is null))
      )`);
    this.addSql(`create index agent_reply_job_pending_idx on agent_reply_job (session_id, session_sequence) where status = 'pending'`);

    this.addSql(`
      create table agent_runtime_state (
        id smallint primary key check (id = 1),
        -- Every user message event whose transaction id is below this one has been looked at.
        transaction_id xid8 not null,
        updated_at timestamptz not null default now()
      )`);
    this.addSql(`insert into agent_runtime_state (id, transaction_id) values (1, pg_current_xact_id())`);
  }

  override down(): void {
    this.addSql('drop table if exists agent_runtime_state');
    this.addSql('drop table if exists agent_reply_job');
    this.addSql('drop index if exists message_reply_to_id_key');
    this.addSql('alter table message drop column if exists reply_to_id');
    this.addSql('alter table agent drop column if exists settings');
    this.addSql('alter table agent drop column if exists kind');
  }
}
