import type { ColumnType, Kysely, Selectable } from 'kysely';
import type { Em } from './orm.ts';

/**
 * The tables hand-written SQL reads and writes, as PostgreSQL returns them through `pg`: one row
 * type per table shape. The migrations are the source of truth; entities describe what the ORM
 * maps. `Generated` marks columns with a database default.
 */
type Generated<T> = ColumnType<T, T | undefined, T>;
/** timestamptz: the driver may hand it back as a Date or as text; written as either. */
type Timestamp = ColumnType<Date | string, Date | string, Date | string>;
/** timestamptz with a default (`now()`). */
type GeneratedTimestamp = ColumnType<Date | string, Date | string | undefined, Date | string>;
/** xid8: read as text (it does not fit a JS number); written by its default. */
type GeneratedXid8 = ColumnType<string, string | undefined, string>;

export interface ProjectTable {
  id: string;
  name: string;
  event_sequence: Generated<number>;
  created_at: GeneratedTimestamp;
}

export interface ProjectMemberTable {
  project_id: string;
  user_id: string;
  role: 'owner' | 'member';
  created_at: GeneratedTimestamp;
}

/** Raised by triggers in the transaction of every change to a project's members. */
export interface ProjectMemberVersionTable {
  project_id: string;
  /** int8: node-postgres returns it as a string. */
  version: string;
}

export interface ChatSessionTable {
  id: string;
  project_id: string;
  title: string;
  created_by_user_id: string;
  event_sequence: Generated<number>;
  created_at: GeneratedTimestamp;
}

export interface MessageTable {
  id: string;
  session_id: string;
  project_id: string;
  author_user_id: string;
  role: 'user' | 'agent' | 'system';
  body: string;
  reply_to_id: string | null;
  created_at: GeneratedTimestamp;
}

export interface WorkerSpaceTable {
  id: string;
  project_id: string;
  user_id: string;
  active_agent_id: string | null;
  event_sequence: Generated<number>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface EventOutboxTable {
  id: string;
  event_type: string;
  aggregate_type: string;
  aggregate_id: string;
  sequence: number;
  project_sequence: number;
  project_id: string;
  user_id: string;
  session_id: string | null;
  payload: unknown;
  created_at: GeneratedTimestamp;
  transaction_id: GeneratedXid8;
  /** The writing request's W3C trace context (`{traceparent, tracestate?}`), or null. */
  trace_context: unknown;
}

/** Per aggregate: how far the publisher has delivered, and its head's bookkeeping. */
export interface OutboxDeliveryTable {
  aggregate_id: string;
  aggregate_type: string;
  project_id: string;
  written_through: Generated<number>;
  delivered_through: Generated<number>;
  attempts: Generated<number>;
  next_retry_at: GeneratedTimestamp;
  last_error: string | null;
  failed_at: Timestamp | null;
  claimed_until: Timestamp | null;
  claim_token: string | null;
  claimed_through: number | null;
  delivered_at: Timestamp | null;
}

/** The view of each event's delivery state, derived from its aggregate's position. */
export interface OutboxEventStatusView
  extends Pick<EventOutboxTable, 'id' | 'event_type' | 'aggregate_type' | 'aggregate_id' | 'sequence' | 'project_sequence' | 'project_id' | 'user_id' | 'session_id'> {
  created_at: Timestamp;
  status: 'pending' | 'published' | 'failed';
  attempts: number;
  next_retry_at: Timestamp | null;
  last_error: string | null;
  claimed_until: Timestamp | null;
  claim_token: string | null;
  published_at: Timestamp | null;
}

/** An event_outbox row as a `select` returns it. */
export type EventOutboxRow = Selectable<EventOutboxTable>;

export interface AnalyticsCountsByHourTable {
  project_id: string;
  metric: string;
  day: string;
  key: string;
  subkey: Generated<string>;
  cumulative: number[];
}

export interface AnalyticsCountsByDayTable {
  project_id: string;
  metric: string;
  period_start: string;
  key: string;
  subkey: Generated<string>;
  cumulative: number[];
}

export interface AnalyticsRollupStateTable {
  id: number;
  transaction_id: string;
  updated_at: GeneratedTimestamp;
}

export interface AgentCredentialTable {
  id: string;
  agent_id: string;
  project_id: string;
  secret_hash: Buffer;
  created_by_user_id: string;
  created_at: GeneratedTimestamp;
  last_used_at: Timestamp | null;
  revoked_at: Timestamp | null;
}

export interface Database {
  project: ProjectTable;
  project_member: ProjectMemberTable;
  project_member_version: ProjectMemberVersionTable;
  chat_session: ChatSessionTable;
  message: MessageTable;
  worker_space: WorkerSpaceTable;
  event_outbox: EventOutboxTable;
  outbox_delivery: OutboxDeliveryTable;
  outbox_event_status: OutboxEventStatusView;
  analytics_counts_by_hour: AnalyticsCountsByHourTable;
  analytics_counts_by_day: AnalyticsCountsByDayTable;
  analytics_rollup_state: AnalyticsRollupStateTable;
  agent_credential: AgentCredentialTable;
}

/** The one query builder type for hand-written SQL. */
export type Db = Kysely<Database>;

/** `em`'s query builder: statements run in its transaction, if it has one. */
export const dbOf = (em: Em): Db => em.getKysely<Database>();
