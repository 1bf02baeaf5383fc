import type pg from 'pg';
import { forkEm, type Em, type Orm } from '../../src/platform/db/orm.ts';
import type { GqlResult, TestApp } from './app.ts';

export const PROJECT_EVENTS = `
  query($projectId: ID!, $filter: ProjectEventsFilter, $order: EventOrder, $first: Int, $after: String) {
    projectEventHistory(projectId: $projectId, filter: $filter, order: $order, first: $first, after: $after) {
      edges { cursor node { eventId type sequence occurredAt projectId sessionId userId } }
      pageInfo { hasNextPage endCursor }
    }
  }`;

export const SESSION_EVENTS = `
  query($projectId: ID!, $sessionId: ID!, $first: Int, $after: String) {
    sessionEventHistory(projectId: $projectId, sessionId: $sessionId, first: $first, after: $after) {
      edges { cursor node { eventId type sequence projectId sessionId userId ... on MessageCreatedEvent { message { body role } } } }
      pageInfo { hasNextPage endCursor }
    }
  }`;

export interface EventNode {
  eventId: string;
  type: 'MESSAGE_CREATED' | 'AGENT_SWITCHED';
  sequence: number;
  occurredAt: string;
  projectId: string;
  sessionId: string | null;
  userId: string;
  message?: { body: string; role: string };
}

interface Connection {
  edges: { cursor: string; node: EventNode }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** One page; throws with the errors when the query failed, so walks fail loudly. */
export async function eventPage(
  t: TestApp,
  as: string,
  field: 'projectEventHistory' | 'sessionEventHistory',
  variables: Record<string, unknown>,
): Promise<Connection> {
  const result: GqlResult<Record<string, Connection>> = await t.gql(field === 'projectEventHistory' ? PROJECT_EVENTS : SESSION_EVENTS, variables, { as });
  if (result.errors || !result.data?.[field]) throw new Error(`${field} failed: ${JSON.stringify(result.errors)}`);
  return result.data[field]!;
}

/** Follows endCursor until hasNextPage is false; `between` runs after each page (to write meanwhile). */
export async function walk(
  t: TestApp,
  as: string,
  field: 'projectEventHistory' | 'sessionEventHistory',
  variables: Record<string, unknown>,
  between: (pageIndex: number) => Promise<void> = async () => {},
): Promise<EventNode[]> {
  const nodes: EventNode[] = [];
  let after: string | null = null;
  for (let pageIndex = 0; ; pageIndex++) {
    // A walk that keeps growing while events are written is the bug under test: fail, don't hang.
    if (pageIndex === 500) throw new Error(`${field} walk did not end after 500 pages`);
    const page = await eventPage(t, as, field, { ...variables, after });
    nodes.push(...page.edges.map((edge) => edge.node));
    if (!page.pageInfo.hasNextPage) return nodes;
    after = page.pageInfo.endCursor;
    await between(pageIndex);
  }
}

export { eventually } from './until.ts';

export interface StoredEvent {
  id: string;
  event_type: string;
  project_id: string;
  session_id: string | null;
  aggregate_id: string;
  sequence: number;
  user_id: string;
  created_at: Date;
  payload: Record<string, any>;
  status: string;
}

/** A project's events as stored, oldest first by (created_at, id): what the test wrote. */
export async function storedEvents(db: pg.Client, projectId: string): Promise<StoredEvent[]> {
  const { rows } = await db.query<StoredEvent>(
    `select e.id, e.event_type, e.project_id, e.session_id, e.aggregate_id, e.sequence, e.user_id, e.created_at, e.payload, s.status
     from event_outbox e join outbox_event_status s using (id) where e.project_id = $1 order by e.created_at, e.id`,
    [projectId],
  );
  return rows;
}

/**
 * Runs `work` in a transaction that stays open until `commit()` is called: an event written in it
 * gets its id and timestamp now but commits later, after events written meanwhile (docs/design-notes.md#cursors-that-skip-late-commits).
 */
export async function openTransaction<T>(orm: Orm, work: (tx: Em) => Promise<T>): Promise<{ result: T; commit(): Promise<void> }> {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let started!: (value: T) => void;
  let failed!: (error: unknown) => void;
  const result = new Promise<T>((resolve, reject) => {
    started = resolve;
    failed = reject;
  });
  const done = forkEm(orm)
    .transactional(async (tx) => {
      const value = await work(tx);
      await tx.flush();
      started(value);
      await gate;
    })
    .catch((error) => failed(error));
  return {
    result: await result,
    async commit() {
      release();
      await done;
    },
  };
}
