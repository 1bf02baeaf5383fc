import { Migration } from '@mikro-orm/migrations';

/**
 * What external agent runtimes need (docs/agents.md#external-agent-runtimes):
 *
 * - `agent.kind` may be `external`: the in-process runtime never answers for such an agent; a
 *   runtime outside the server does, with a credential.
 * - `agent_credential`: bearer credentials that authenticate as one agent. Only the SHA-256 of
 *   the secret is stored (the secret is 32 random bytes, so a fast hash is enough: there is
 *   nothing to guess). `project_id` is the agent's, kept on the row so every check is one lookup.
 *   A revoked credential keeps its row (`revoked_at`) so owners see what existed and when.
 */
export class Migration20261201120000_agent_credentials extends Migration {
  override up(): void {
    this.addSql(`alter table agent drop constraint if exists agent_kind_check`);
    this.addSql(`alter table agent add constraint agent_kind_check check (kind in ('echo', 'openai-compatible', 'external'))`);
    this.addSql(`
      create table agent_credential (
        id uuid primary key,
        agent_id uuid not null references agent (id) on delete cascade,
        project_id uuid not null references project (id) on delete cascade,
        secret_hash bytea not null check (length(secret_hash) = 32),
        created_by_user_id varchar(200) not null,
        created_at timestamptz not null default now(),
        last_used_at timestamptz null,
        revoked_at timestamptz null
      )`);
    this.addSql(`create index agent_credential_agent_id_idx on agent_credential (agent_id, created_at)`);
  }

  override down(): void {
    this.addSql(`drop table if exists agent_credential`);
    this.addSql(`update agent set kind = 'echo' where kind = 'external'`);
    this.addSql(`alter table agent drop constraint if exists agent_kind_check`);
    this.addSql(`alter table agent add constraint agent_kind_check check (kind in ('echo', 'openai-compatible'))`);
  }
}
