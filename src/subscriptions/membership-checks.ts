import type { Clock } from '../platform/clock.ts';
import { notFound } from '../platform/errors.ts';
import { forkEm, type Orm } from '../platform/db/orm.ts';
import { projectMemberList, projectMemberListVersion } from '../domain/projects/project.service.ts';
import type { MemberList } from '../domain/projects/project.repository.ts';

/**
 * When something happened, on this instance: the clock's time for the re-check interval, and a
 * counter that orders moments within the same millisecond (a check "started after" an event).
 */
export interface Moment {
  at: number;
  seq: number;
}

/** Projects whose member list is kept; beyond it, lists too old to answer for anything are dropped. */
const MAX_SNAPSHOTS = 1_024;

export interface MembershipChecksDeps {
  orm: Orm;
  clock: Clock;
  /** A membership checked less than this long before an event arrived still stands for it (0: check after it arrived). */
  recheckMs: number;
  /** The reads behind a check; default: the project repository's, each on a fresh EntityManager fork. */
  reads?: MemberListReads;
}

export interface MemberListReads {
  /** The members and the list's version, read together. */
  list(projectId: string): Promise<MemberList>;
  /** The list's version alone: one row. */
  version(projectId: string): Promise<string>;
}

/**
 * Per-event membership checks for every subscriber of an instance, from one read of a project's
 * members. Before, each subscriber re-checked its own membership with its own query every
 * `authRecheckMs`; with ten thousand subscribers of a project that is ten thousand queries per
 * interval. Here the first subscriber that needs a fresh answer for an event reads the project's
 * member list, and every other subscriber of the project waiting on the same event shares that
 * read (and every later event within the interval does too).
 *
 * Fresh means: the read started less than `recheckMs` before the event arrived on this instance,
 * or after it arrived. A member removed before an event was committed is therefore refused that
 * event once the interval has passed (with `recheckMs` 0: always).
 *
 * A re-check first reads the list's version (one row; triggers raise it in the transaction of any
 * change to the project's members): when it has not moved, the list already held still answers,
 * and the project's ten thousand members are not read again every interval.
 */
export function createMembershipChecks(deps: MembershipChecksDeps) {
  let seq = 0;
  const now = (): Moment => ({ at: deps.clock.now(), seq: ++seq });
  /** Events seen on this instance, with when they arrived (the same object reaches every stream). */
  const arrivals = new WeakMap<object, Moment>();
  const reads: MemberListReads = deps.reads ?? {
    list: (projectId) => projectMemberList(forkEm(deps.orm), projectId),
    version: (projectId) => projectMemberListVersion(forkEm(deps.orm), projectId),
  };
  interface Snapshot {
    startedAt: Moment;
    members: Promise<MemberList>;
  }

  /** The list held before, when its version is still the current one; otherwise the list read anew. */
  async function confirmOrRead(projectId: string, held: Promise<MemberList>): Promise<MemberList> {
    // A held read still answering may yet fail: then this check reads on its own, not fail with it.
    const known = await held.catch(() => null);
    return known && (await reads.version(projectId)) === known.version ? known : reads.list(projectId);
  }
  /** The newest member-list read per project. */
  const snapshots = new Map<string, Snapshot>();

  const freshFor = (checkedAt: Moment, arrival: Moment) => checkedAt.at > arrival.at - deps.recheckMs || checkedAt.seq > arrival.seq;

  function read(projectId: string): Snapshot {
    // Failed reads are not kept: whatever is held here answered, or is still answering.
    const held = snapshots.get(projectId)?.members;
    const snapshot: Snapshot = { startedAt: now(), members: held ? confirmOrRead(projectId, held) : reads.list(projectId) };
    snapshots.set(projectId, snapshot);
    if (snapshots.size > MAX_SNAPSHOTS) {
      for (const [id, kept] of snapshots) if (!freshFor(kept.startedAt, snapshot.startedAt)) snapshots.delete(id);
    }
    // A failed read is not kept: the next check reads again. The caller sees the error.
    snapshot.members.catch(() => {
      if (snapshots.get(projectId) === snapshot) snapshots.delete(projectId);
    });
    return snapshot;
  }

  return {
    now,
    /** Records when an event arrived (first stream to see it wins: they all see it at once). */
    arrived(event: object): void {
      if (!arrivals.has(event)) arrivals.set(event, now());
    },
    /**
     * Throws NOT_FOUND (as subscribing does) unless `userId` is a member of `projectId` by a check
     * fresh for `event`. `own` is the subscriber's last passing check (at subscribe time, or a
     * shared read): when it is fresh, nothing is read. Returns the moment of the check that passed.
     */
    async require(projectId: string, userId: string, event: object | null, own: Moment): Promise<Moment> {
      const arrival = (event && arrivals.get(event)) ?? now();
      if (freshFor(own, arrival)) return own;
      let snapshot = snapshots.get(projectId);
      if (!snapshot || !freshFor(snapshot.startedAt, arrival)) snapshot = read(projectId);
      if (!(await snapshot.members).userIds.has(userId)) throw notFound('Project', projectId);
      return snapshot.startedAt;
    },
  };
}

export type MembershipChecks = ReturnType<typeof createMembershipChecks>;
