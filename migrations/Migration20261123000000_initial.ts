import { Migration } from '@mikro-orm/migrations';

/**
 * The chat domain and the transactional outbox. Checks live in the database, not only in
 * TypeScript, so a bug or a hand-written query cannot store an event the publisher cannot handle.
 */
export class Migration20261123000000_initial extends Migration {
  override up(): void {
    this.addSql(`
      create table project (
        id uuid primary key,
        name varchar(200) not null check (length(btrim(name)) > 0),
        created_at timestamptz not null default now()
      )`);

    this.addSql(`
      create table project_member (
        project_id uuid not null references project (id) on delete cascade,
        user_id varchar(200) not null check (length(user_id) > 0),
        role text not null check (role in ('owner', 'member')),
        created_at timestamptz not null default now(),
        primary key (project_id, user_id)
      )`);
    // "My projects" is looked up by user.
    this.addSql(`create index project_member_user_id_idx on project_member (user_id)`);

    this.addSql(`
      create table chat_session (
        id uuid primary key,
        project_id uuid not null references project (id) on delete cascade,
        title varchar(200) not null check (length(btrim(title)) > 0),
        created_by_user_id varchar(200) not null,
        event_sequence integer not null default 0 check (event_sequence >= 0),
        created_at timestamptz not null default now()
      )`);
    this.addSql(`create index chat_session_project_id_created_at_idx on chat_session (project_id, created_at, id)`);

    this.addSql(`
      create table message (
        id uuid primary key,
        session_id uuid not null references chat_session (id) on delete cascade,
        project_id uuid not null references project (id) on delete cascade,
        author_user_id varchar(200) not null,
        role text not null check (role in ('user', 'agent', 'system')),
        body text not null check (length(body) > 0),
        created_at timestamptz not null default now()
      )`);
    this.addSql(`create index message_session_id_created_at_idx on message (session_id, created_at, id)`);
    this.addSql(`create index message_project_id_idx on message (project_id)`);

    this.addSql(`
      create table agent (
        id uuid primary key,
        project_id uuid not null references project (id) on delete cascade,
        name varchar(100) not null check (length(btrim(name)) > 0),
        created_at timestamptz not null default now(),
        unique (project_id, name)
      )`);

    this.addSql(`
      create table worker_space (
        id uuid primary key,
        project_id uuid not null references project (id) on delete cascade,
        user_id varchar(200) not null,
        active_agent_id uuid references agent (id) on delete set null,
        event_sequence integer not null default 0 check (event_sequence >= 0),
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        unique (project_id, user_id)
      )`);
    this.addSql(`create index worker_space_active_agent_id_idx on worker_space (active_agent_id)`);

    this.addSql(`
      create table event_outbox (
        id uuid primary key,
        event_type varchar(64) not null check (event_type in ('message_created', 'agent_switched')),
        aggregate_type varchar(32) not null check (aggregate_type in ('chat_session', 'worker_space')),
        aggregate_id uuid not null,
        sequence integer not null check (sequence > 0),
        project_id uuid not null,
        user_id varchar(200) not null,
        session_id uuid,
        payload jsonb not null check (jsonb_typeof(payload) = 'object'),
        status varchar(16) not null default 'pending' check (status in ('pending', 'published', 'failed')),
        attempts integer not null default 0 check (attempts >= 0),
        next_retry_at timestamptz not null default now(),
        last_error text,
        created_at timestamptz not null default now(),
        published_at timestamptz,
        -- Gapless per-aggregate order: a second event with the same number is a bug, not a retry.
        constraint event_outbox_aggregate_sequence_key unique (aggregate_id, sequence),
        constraint event_outbox_published_at_check check ((status = 'published') = (published_at is not null)),
        constraint event_outbox_session_check check ((aggregate_type = 'chat_session') = (session_id is not null))
      )`);
    // The publisher's claim reads only due pending rows. A partial index keeps that read as small
    // as the backlog, however many published rows the table keeps as the durable event log.
    this.addSql(`
      create index event_outbox_pending_idx on event_outbox (next_retry_at, created_at)
      where status = 'pending'`);
    // Failed events are few and looked up for reprocessing and outboxStatus; keep them indexed apart.
    this.addSql(`create index event_outbox_failed_idx on event_outbox (project_id, created_at) where status = 'failed'`);
    // (aggregate_id, created_at) from the seed is served by the unique (aggregate_id, sequence) key:
    // within an aggregate, sequence order is commit order, which is what readers need.
    this.addSql(`create index event_outbox_project_id_created_at_idx on event_outbox (project_id, created_at, id)`);
    this.addSql(`create index event_outbox_user_id_created_at_idx on event_outbox (user_id, created_at, id)`);
  }

  override down(): void {
    this.addSql('drop table if exists event_outbox');
    this.addSql('drop table if exists worker_space');
    this.addSql('drop table if exists agent');
    this.addSql('drop table if exists message');
    this.addSql('drop table if exists chat_session');
    this.addSql('drop table if exists project_member');
    this.addSql('drop table if exists project');
  }
}
