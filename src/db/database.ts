import type { ColumnType, Kysely, Selectable } from 'kysely';
import type { Em } from './orm.ts';

/**
 * The tables hand-written SQL reads and writes, as PostgreSQL returns them through `pg`: one row
 * type per table shape. The migrations are the source of truth; entities describe what the ORM
 * maps. `Generated` marks columns with a database default.
 */
type Generated<T> = ColumnType<T, T | undefined, T>;
/** timestamptz: read as a Date, written as a Date or an ISO string. */
type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** xid8: read as text (it does not fit a JS number). */
type Xid8 = ColumnType<string, string, string>;

export interface ProjectTable {
  id: string;
  name: string;
  event_sequence: Generated<number>;
  created_at: Generated<Timestamp>;
}

export interface ProjectMemberTable {
  project_id: string;
  user_id: string;
  role: 'owner' | 'member';
  created_at: Generated<Timestamp>;
}

export interface ChatSessionTable {
  id: string;
  project_id: string;
  title: string;
  created_by_user_id: string;
  event_sequence: Generated<number>;
  created_at: Generated<Timestamp>;
}

export interface WorkerSpaceTable {
  id: string;
  project_id: string;
  user_id: string;
  active_agent_id: string | null;
  event_sequence: Generated<number>;
  created_at: Generated<Timestamp>;
  updated_at: Generated<Timestamp>;
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
  status: Generated<'pending' | 'published' | 'failed'>;
  attempts: Generated<number>;
  next_retry_at: Generated<Timestamp>;
  last_error: string | null;
  claimed_until: Timestamp | null;
  claim_token: string | null;
  created_at: Generated<Timestamp>;
  published_at: Timestamp | null;
  transaction_id: Generated<Xid8>;
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
  transaction_id: Xid8;
  updated_at: Generated<Timestamp>;
}

export interface Database {
  project: ProjectTable;
  project_member: ProjectMemberTable;
  chat_session: ChatSessionTable;
  worker_space: WorkerSpaceTable;
  event_outbox: EventOutboxTable;
  analytics_counts_by_hour: AnalyticsCountsByHourTable;
  analytics_counts_by_day: AnalyticsCountsByDayTable;
  analytics_rollup_state: AnalyticsRollupStateTable;
}

/** The one query builder type for hand-written SQL. */
export type Db = Kysely<Database>;

/** `em`'s query builder: statements run in its transaction, if it has one. */
export const dbOf = (em: Em): Db => em.getKysely<Database>();
