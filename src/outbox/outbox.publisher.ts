import { systemClock, type Clock } from '../platform/clock.ts';
import type { OutboxPublisherOptions } from '../platform/config.ts';
import { newId } from '../platform/db/ids.ts';
import { dbOf } from '../platform/db/database.ts';
import { forkEm, severCheckedOutConnections, type Orm } from '../platform/db/orm.ts';
import { eventFromRow, InvalidEventError, type DomainEvent } from '../events/domain-event.ts';
import type { Logger } from '../platform/logger.ts';
import type { PublisherStatus } from '../platform/observability/metrics.ts';
import type { EventBus } from '../bus/event-bus.ts';
import { backoffMs } from './backoff.ts';
import { tracedClaim, tracedPublish } from './outbox.tracing.ts';
import { logCycleAbandoned, logPublisherStarted, logPublisherStopped } from './outbox.log.ts';
import {
  claimBatch,
  markFailedAttempts,
  markPublished,
  releaseUnattempted,
  type ClaimOptions,
  type ClaimResult,
  type FailedPublish,
  type OutboxRow,
} from './outbox.sql.ts';

/** What the publisher reports as it works; metrics and logs hang off this. All optional. */
export interface PublisherObserver {
  batchClaimed?(events: readonly OutboxRow[]): void;
  published?(events: readonly OutboxRow[]): void;
  retryScheduled?(event: OutboxRow, delayMs: number, error: string): void;
  failed?(event: OutboxRow, error: string): void;
  cycleFailed?(error: unknown): void;
  /** A cycle ran past its deadline and was abandoned; `severed` of its connections were destroyed. */
  cycleAbandoned?(timeoutMs: number, severed: number): void;
}

/** A cycle that ran past `OUTBOX_CYCLE_TIMEOUT_MS`; what it was waiting for is not coming. */
export class CycleDeadlineError extends Error {
  override name = 'CycleDeadlineError';
  constructor(timeoutMs: number) {
    super(`publisher cycle did not complete within ${timeoutMs} ms`);
  }
}

interface PublishOutcome {
  published: OutboxRow[];
  failures: FailedPublish[];
  /** Claimed but not sent: they queue behind a refused event of the batch. */
  unattempted: string[];
  /** The bus took none of the events it was offered (it is down or does not answer). */
  busRefusedAll: boolean;
}

export interface OutboxPublisherDeps {
  orm: Orm;
  bus: EventBus;
  logger: Logger;
  options: Omit<OutboxPublisherOptions, 'enabled' | 'wake' | 'preparedStatements' | 'cycleTimeoutMs' | 'listenPingMs'> & {
    preparedStatements?: boolean;
    /** OUTBOX_CYCLE_TIMEOUT_MS; 0 or unset: cycles have no deadline. */
    cycleTimeoutMs?: number;
  };
  /** Whether a LISTEN connection is meant to wake this publisher (reported in status). */
  listenEnabled?: boolean;
  observer?: PublisherObserver;
  /** Source of randomness for backoff jitter (tests pin it). */
  random?: () => number;
  /** For the loop's own waits (poll interval, back-off after a failed cycle); default: the real clock. */
  clock?: Clock;
}

/** The wait before retrying an event's publish after its `attempt`th attempt failed (with jitter). */
export const retryDelayMs = (attempt: number, options: { backoffBaseMs: number; backoffMaxMs: number }, random: () => number) =>
  backoffMs(attempt, { baseMs: options.backoffBaseMs, maxMs: options.backoffMaxMs }, random);

/** From this many events, a batch is marked published alongside the next claim rather than by it. */
const MARK_ALONGSIDE_FROM = 100;

const describeError = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 1_000);

/** The event a claimed row carries, or why it must be failed without being sent. */
function sendableEvent(row: OutboxRow, maxAttempts: number): { event: DomainEvent } | { error: string } {
  if (row.attempts > maxAttempts) return { error: `abandoned: ${maxAttempts} attempts ended without a confirmed publish` };
  try {
    return { event: eventFromRow(row) };
  } catch (error) {
    if (error instanceof InvalidEventError) return { error: describeError(error) };
    throw error;
  }
}

/**
 * Moves committed events from the outbox to the bus: claim a batch (committing the claim and the
 * attempt count first), publish it, then mark what the bus accepted as published in one update.
 * Delivery is at-least-once: a crash between publishing and marking republishes with the same id.
 *
 * A long-running loop in the Graphile Worker style: `start`, `stop` (graceful: the batch in flight
 * is finished), `nudge` (run a cycle now). Polling every `pollIntervalMs` is the safety net for
 * lost wake-ups.
 */
export class OutboxPublisher {
  readonly #deps: OutboxPublisherDeps;
  readonly #random: () => number;
  readonly #clock: Clock;
  #running = false;
  #loop: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  #nudged = false;
  /** End of the last cycle that completed without an error (an empty one counts): a publisher whose cycles all fail is not cycling. */
  #lastCycleAt: Date | null = null;
  #listening = false;
  /** Since when the LISTEN connection has been down (start counts as down until it is up). */
  #listenDownSince: number = Date.now();
  /** When the loop started: a publisher that has never completed a cycle is measured from here. */
  #startedAt = 0;
  /** Since when every publish the bus was offered has been refused (null: it took the last one). */
  #busRefusedSince: number | null = null;
  /** Bumped when a cycle is abandoned: the abandoned cycle, should it ever resume, changes nothing. */
  #generation = 0;
  /** The last batch's events the bus accepted, counted as published by the next claim (see #cycle). */
  #handedOver: { token: string; rows: OutboxRow[] } | null = null;
  /** A large batch's "published" update, running beside the next claim. */
  #marking: Promise<void> | null = null;
  /** Where the next claim's walk over aggregates resumes (null: from the start). */
  #walkAfter: string | null = null;
  /** In a run of back-to-back claims that found nothing: where the walk began, and whether it has reached the end since. */
  #emptyWalk: { from: string | null; wrapped: boolean } | null = null;

  constructor(deps: OutboxPublisherDeps) {
    this.#deps = deps;
    this.#random = deps.random ?? Math.random;
    this.#clock = deps.clock ?? systemClock;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#startedAt = Date.now();
    this.#listenDownSince = Date.now();
    this.#loop = this.#run();
    const { batchSize, pollIntervalMs, maxAttempts, claimLeaseMs } = this.#deps.options;
    logPublisherStarted(this.#deps.logger, { batchSize, pollIntervalMs, maxAttempts, claimLeaseMs });
  }

  /** Stops claiming, lets the batch in flight finish (published or released), then resolves. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    this.#loop = null;
    logPublisherStopped(this.#deps.logger, { reason: 'stop requested' });
  }

  /** Run a cycle as soon as possible (after a commit, a NOTIFY, a reconnect, a reprocess). */
  nudge(): void {
    this.#nudged = true;
    this.#wake?.();
  }

  setListening(listening: boolean): void {
    if (listening === this.#listening) return;
    this.#listening = listening;
    if (!listening) this.#listenDownSince = Date.now();
  }

  status(): PublisherStatus {
    const status: PublisherStatus = {
      running: this.#running,
      lastCycleAt: this.#lastCycleAt,
      listening: this.#listening,
      listenEnabled: this.#deps.listenEnabled ?? false,
    };
    const limitMs = this.#stallLimitMs();
    if (limitMs === null || !this.#running) return status;
    // Real time, not the injected clock: these are about answers from the network that did not come.
    const now = Date.now();
    const lastCycle = this.#lastCycleAt ? Math.max(this.#lastCycleAt.getTime(), this.#startedAt) : this.#startedAt;
    status.stalled = now - lastCycle > limitMs || (this.#busRefusedSince !== null && now - this.#busRefusedSince > limitMs);
    status.listenDown = status.listenEnabled && !this.#listening && now - this.#listenDownSince > limitMs;
    return status;
  }

  /**
   * How long without a completed cycle means the publisher is stuck: a cycle's deadline plus the
   * longest sleep between cycles (the poll interval caps the back-off too). Null without a deadline.
   */
  #stallLimitMs(): number | null {
    const { cycleTimeoutMs, pollIntervalMs } = this.#deps.options;
    return cycleTimeoutMs ? cycleTimeoutMs + pollIntervalMs : null;
  }

  /** One claim-publish-record cycle; returns how many events it claimed. Exposed for tests and benchmarks. */
  async runOnce(): Promise<number> {
    const { claimed } = await this.#cycle();
    await this.#settle(true);
    return claimed;
  }

  /**
   * Claims and publishes a batch. The events the bus accepted are "handed over": the next claim
   * counts them as published already, so the next events of their sessions do not wait a cycle
   * for the bookkeeping. A small batch is also marked published by that next claim, in the same
   * statement (one statement per cycle under a steady trickle of events); a large one is marked
   * on a second connection while the next claim runs, so draining a backlog overlaps the two.
   * A batch the bus refused part of is recorded at once.
   *
   * Returns how many events it claimed, and whether another cycle may find more right away.
   */
  async #cycle(): Promise<{ claimed: number; more: boolean }> {
    const generation = this.#generation;
    const current = () => {
      if (generation !== this.#generation) throw new CycleDeadlineError(this.#deps.options.cycleTimeoutMs ?? 0);
    };
    const token = newId();
    const walkFrom = this.#walkAfter;
    const handedOver = this.#handedOver;
    const marking = this.#marking;
    const result = await tracedClaim(() => this.#claim(token, handedOver && { ids: handedOver.rows.map((row) => row.id), token: handedOver.token, mark: !marking }));
    current();
    this.#handedOver = null;
    if (handedOver && !marking) this.#reportPublished(handedOver.rows, result.marked);
    this.#walkAfter = result.walkAfter;
    const claimed = result.rows;
    if (claimed.length > 0) {
      this.#emptyWalk = null;
      const outcome = await this.#publish(claimed);
      current();
      // Cycles with nothing due still complete while the bus is down; readiness looks at this too.
      if (outcome.busRefusedAll) this.#busRefusedSince ??= Date.now();
      else if (outcome.published.length > 0) this.#busRefusedSince = null;
      await this.#settle(); // the previous large batch's update, if one is still running
      current();
      if (outcome.failures.length > 0 || outcome.unattempted.length > 0) {
        await this.#record(claimed, outcome, token);
        current();
      } else {
        this.#handedOver = { token, rows: outcome.published };
        if (outcome.published.length >= MARK_ALONGSIDE_FROM) {
          const marking = this.#markPublished(token, outcome.published);
          marking.catch(() => {}); // surfaced by #settle; never an unhandled rejection meanwhile
          this.#marking = marking;
        }
      }
      this.#lastCycleAt = new Date(this.#clock.now());
      return { claimed: claimed.length, more: true };
    }
    await this.#settle();
    current();
    this.#lastCycleAt = new Date(this.#clock.now());
    return { claimed: 0, more: this.#walkGoesOn(walkFrom, this.#walkAfter) };
  }

  /**
   * After a claim that found nothing: whether the walk over aggregates has parts left to look at
   * (it started after some aggregate, or stopped at its limit) that it has not looked at since it
   * last claimed something. Otherwise there is nothing due, and the loop can sleep.
   */
  #walkGoesOn(walkFrom: string | null, walkAfter: string | null): boolean {
    const empty = (this.#emptyWalk ??= { from: walkFrom, wrapped: false });
    let goesOn: boolean;
    if (walkAfter === null) {
      // Reached the end of the aggregates: round once more from the start, unless this empty run
      // began there or has been there already.
      goesOn = empty.from !== null && !empty.wrapped;
      empty.wrapped = true;
    } else {
      // Stopped at its limit: go on until it has come round past where the empty run began.
      goesOn = !(empty.wrapped && empty.from !== null && walkAfter >= empty.from);
    }
    if (!goesOn) this.#emptyWalk = null; // the next cycle (after a sleep) starts a new run
    return goesOn;
  }

  /**
   * Waits for a large batch's update; with `all`, also marks a handed-over small batch now, when
   * no claim follows to do it (stop, runOnce). Rethrows a failed update.
   */
  async #settle(all = false): Promise<void> {
    const marking = this.#marking;
    this.#marking = null;
    if (marking) {
      this.#handedOver = null;
      await marking;
    }
    const handedOver = this.#handedOver;
    if (all && handedOver) {
      this.#handedOver = null;
      await this.#markPublished(handedOver.token, handedOver.rows);
    }
  }

  async #markPublished(token: string, rows: OutboxRow[]): Promise<void> {
    this.#reportPublished(rows, await markPublished(dbOf(forkEm(this.#deps.orm)), rows.map((row) => row.id), token));
  }

  #reportPublished(rows: OutboxRow[], marked: number): void {
    if (marked < rows.length) {
      this.#deps.logger.warn({ claimed: rows.length, marked }, 'outbox claim lapsed before publish was recorded; events may be delivered twice');
    }
    this.#deps.observer?.published?.(rows);
  }

  async #run(): Promise<void> {
    let idleDelay = 0;
    let failedCycles = 0;
    while (this.#running) {
      this.#nudged = false;
      let more = false;
      try {
        ({ more } = await this.#cycleWithinDeadline());
        idleDelay = 0;
        failedCycles = 0;
      } catch (error) {
        // The database is unreachable or a statement failed: nothing was marked, leases lapse on
        // their own. Back off so a down database is not hammered.
        this.#deps.observer?.cycleFailed?.(error);
        this.#deps.logger.error({ err: describeError(error) }, 'outbox publisher cycle failed');
        idleDelay = backoffMs(++failedCycles, { baseMs: 100, maxMs: this.#deps.options.pollIntervalMs });
      }
      if (!this.#running) break;
      if (more && idleDelay === 0) continue;
      if (this.#nudged && idleDelay === 0) continue;
      await this.#sleep(idleDelay || this.#deps.options.pollIntervalMs);
    }
    // The last batch's bookkeeping lands before stop resolves: no event is left claimed.
    await this.#settle(true).catch((error: unknown) => {
      this.#deps.observer?.cycleFailed?.(error);
      this.#deps.logger.error({ err: describeError(error) }, 'outbox publisher could not record its last batch');
    });
  }

  /**
   * Runs a cycle under OUTBOX_CYCLE_TIMEOUT_MS. One that runs past it is abandoned: whatever it
   * waits for (an answer lost on a half-open connection) is not coming. Its connections are
   * destroyed rather than returned to the pool, so the next cycle runs on a fresh one; the events
   * it claimed stay claimed until their lease lapses, and the ones it handed over unmarked are
   * published again then (same eventId). Timed on the real clock: it measures the network.
   */
  async #cycleWithinDeadline(): Promise<{ claimed: number; more: boolean }> {
    const timeoutMs = this.#deps.options.cycleTimeoutMs ?? 0;
    if (!timeoutMs) return this.#cycle();
    const attempt = this.#cycle();
    let cancel = () => {};
    const expired = new Promise<null>((resolve) => {
      cancel = systemClock.setTimeout(() => resolve(null), timeoutMs);
    });
    try {
      const result = await Promise.race([attempt, expired]);
      if (result) return result;
    } finally {
      cancel();
    }
    attempt.catch(() => {}); // its own failure, if it ever comes, is this deadline's
    this.#generation += 1;
    this.#handedOver = null;
    this.#marking?.catch(() => {});
    this.#marking = null;
    this.#walkAfter = null;
    this.#emptyWalk = null;
    const severed = await severCheckedOutConnections(this.#deps.orm).catch(() => 0);
    this.#deps.observer?.cycleAbandoned?.(timeoutMs, severed);
    logCycleAbandoned(this.#deps.logger, { timeoutMs, severedConnections: severed, claimLeaseMs: this.#deps.options.claimLeaseMs });
    throw new CycleDeadlineError(timeoutMs);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const cancel = this.#clock.setTimeout(done, ms);
      const self = this;
      function done() {
        cancel();
        self.#wake = null;
        resolve();
      }
      this.#wake = done;
    });
  }

  #claim(token: string, handedOver: ClaimOptions['handedOver']): Promise<ClaimResult> {
    const { batchSize, claimLeaseMs, preparedStatements } = this.#deps.options;
    return claimBatch(this.#deps.orm, {
      limit: batchSize,
      token,
      leaseMs: claimLeaseMs,
      handedOver,
      walkAfter: this.#walkAfter,
      prepared: preparedStatements ?? true,
    });
  }

  /** Publishes a claimed batch and decides each event's fate; records nothing yet. */
  async #publish(claimed: OutboxRow[]): Promise<PublishOutcome> {
    const { observer, bus, options } = this.#deps;
    observer?.batchClaimed?.(claimed);
    const failures: FailedPublish[] = [];
    const unattempted: string[] = [];

    // Attempts are counted at claim, so an event claimed more than maxAttempts times was never
    // confirmed even once: its publishers died with it (a poison pill). Fail it unsent, and hold
    // back the rest of its aggregate behind it.
    // A row whose payload breaks the event contract can never be published either: it is failed
    // at once, the same way.
    const blocked = new Set<string>();
    const sendable: { row: OutboxRow; event: DomainEvent }[] = [];
    for (const row of claimed) {
      if (blocked.has(row.aggregate_id)) {
        unattempted.push(row.id);
        continue;
      }
      const verdict = sendableEvent(row, options.maxAttempts);
      if ('event' in verdict) {
        sendable.push({ row, event: verdict.event });
      } else {
        blocked.add(row.aggregate_id);
        failures.push({ id: row.id, retryInMs: null, error: verdict.error });
      }
    }

    // One call, in commit order within each project: subscribers of a project then receive its
    // events in order and need no database read to fill gaps. The bus stops at the first event it
    // refuses (prefix-closed), so nothing overtakes an event that did not go out.
    sendable.sort((a, b) => (a.event.projectId === b.event.projectId ? a.event.projectSequence - b.event.projectSequence : a.event.projectId < b.event.projectId ? -1 : 1));
    const results = sendable.length
      ? await tracedPublish(sendable.map((item) => item.row), () => bus.publish(sendable.map((item) => item.event))).catch((error: unknown) => sendable.map(() => error as Error))
      : [];
    const firstError = results.findIndex((result) => result !== null);
    const published = (firstError === -1 ? sendable : sendable.slice(0, firstError)).map((item) => item.row);
    if (firstError !== -1) {
      const failed = sendable[firstError]!.row;
      const giveUp = failed.attempts >= options.maxAttempts;
      failures.push({
        id: failed.id,
        retryInMs: giveUp ? null : retryDelayMs(failed.attempts, options, this.#random),
        error: describeError(results[firstError]),
      });
      // Not attempted: events queued behind the refusal; they go back without using an attempt.
      unattempted.push(...sendable.slice(firstError + 1).map((item) => item.row.id));
    }
    return { published, failures, unattempted, busRefusedAll: firstError === 0 };
  }

  /** Writes the outcome of a batch the bus refused part of: published, then retries/failures, then releases. */
  async #record(claimed: OutboxRow[], outcome: PublishOutcome, token: string): Promise<void> {
    const { observer } = this.#deps;
    const { published, failures, unattempted } = outcome;
    const db = dbOf(forkEm(this.#deps.orm));
    this.#reportPublished(published, await markPublished(db, published.map((row) => row.id), token));
    await markFailedAttempts(db, failures, token);
    await releaseUnattempted(db, unattempted, token);

    const byId = new Map(claimed.map((row) => [row.id, row]));
    for (const failure of failures) {
      const row = byId.get(failure.id)!;
      if (failure.retryInMs === null) observer?.failed?.(row, failure.error);
      else observer?.retryScheduled?.(row, failure.retryInMs, failure.error);
    }
  }
}
