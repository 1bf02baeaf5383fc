import { systemClock, type Clock } from '../platform/clock.ts';
import type { OutboxPublisherOptions } from '../platform/config.ts';
import { newId } from '../platform/db/ids.ts';
import { severCheckedOutConnections, type Orm } from '../platform/db/orm.ts';
import { eventFromRow, InvalidEventError, type DomainEvent } from '../events/domain-event.ts';
import type { Logger } from '../platform/logger.ts';
import type { PublisherStatus } from '../platform/observability/metrics.ts';
import type { EventBus } from '../bus/event-bus.ts';
import { backoffMs } from './backoff.ts';
import { tracedClaim, tracedPublish } from './outbox.tracing.ts';
import { logCycleAbandoned, logPublisherStarted, logPublisherStopped } from './outbox.log.ts';
import { claimBatch, discoverNewEvents, recordDiscoverAndClaim, recordOutcomes, type ClaimOptions, type ClaimResult, type DeliveredBatch, type OutboxRow, type RunOutcome } from './outbox.sql.ts';

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
  /** Per claimed aggregate: its new position and the state of its new head. */
  outcomes: RunOutcome[];
  published: OutboxRow[];
  retries: { row: OutboxRow; delayMs: number; error: string }[];
  failures: { row: OutboxRow; error: string }[];
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

/** From this many events, a batch's record runs beside the next claim instead of before it. */
const RECORD_ALONGSIDE_FROM = 100;

/** How long a delivered small batch waits for the next cycle to record it before it is recorded alone. */
const RECORD_DEFERRAL_MS = 25;

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
  /** The last batch's record, running beside the next claim (it never touches the aggregates that claim can take). */
  #recording: Promise<void> | null = null;
  /** The last small batch, delivered in full: recorded by the next cycle's first statement (or by #settle). */
  #deferred: DeliveredBatch | null = null;

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

  /** One discover-claim-publish-record cycle; returns how many events it claimed. Exposed for tests and benchmarks. */
  async runOnce(): Promise<number> {
    const { claimed } = await this.#cycle();
    await this.#settle();
    return claimed;
  }

  /**
   * Registers newly committed events, claims a batch of aggregates and their runs, publishes it,
   * and records one new position per aggregate. A large batch's record runs on a second
   * connection beside the next cycle's claim: the claim cannot take an aggregate that is still
   * held, so the two never touch the same row, and draining a backlog overlaps them. A small one
   * (a trickle) that the bus took in full is recorded by the statement the next cycle starts with,
   * which also registers new events and claims at once the aggregates they made due: under a
   * trickle, a cycle is that one statement, and the claim statement runs only when something else
   * may be due (record-discover-claim.sql.ts). Until then its aggregates stay claimed, so nothing
   * can overtake them; with no commit within RECORD_DEFERRAL_MS the publisher runs that cycle
   * anyway, and stop records it before it resolves. A batch with a retry or a failure is recorded
   * at once.
   *
   * Returns how many events it claimed, and whether another cycle may find more right away.
   */
  async #cycle(): Promise<{ claimed: number; more: boolean }> {
    const generation = this.#generation;
    const current = () => {
      if (generation !== this.#generation) throw new CycleDeadlineError(this.#deps.options.cycleTimeoutMs ?? 0);
    };
    const { orm, options } = this.#deps;
    const prepared = options.preparedStatements ?? true;
    const deferred = this.#deferred;
    this.#deferred = null;
    const token = newId();
    const claim: ClaimOptions = { limit: options.batchSize, token, leaseMs: options.claimLeaseMs, prepared };
    const { start } = await tracedClaim(async () => {
      const start = await recordDiscoverAndClaim(orm, deferred, claim, prepared);
      return { rows: start.claimed.rows, start };
    }).catch((error: unknown) => {
      // Nothing was written: the batch is still to be recorded.
      if (generation === this.#generation) this.#deferred ??= deferred;
      throw error;
    });
    if (deferred) this.#reportLapsed(deferred.runs.length, start.recorded);
    current();
    // Under a trickle the first statement claimed what its events made due; the claim statement
    // runs when it claimed nothing and something else may be due.
    let result = start.claimed;
    let more = start.claimMore;
    if (result.runs.length === 0 && start.claimMore) {
      result = await tracedClaim(() => claimBatch(orm, claim));
      more = result.rows.length >= options.batchSize;
      current();
    }
    if (result.runs.length === 0) {
      await this.#settle();
      current();
      this.#lastCycleAt = new Date(this.#clock.now());
      return { claimed: 0, more: false };
    }
    const outcome = await this.#publish(result);
    current();
    // Cycles with nothing due still complete while the bus is down; readiness looks at this too.
    if (outcome.busRefusedAll) this.#busRefusedSince ??= Date.now();
    else if (outcome.published.length > 0) this.#busRefusedSince = null;
    await this.#settle(); // the previous batch's record, if it is still running
    current();
    const inFull = outcome.retries.length === 0 && outcome.failures.length === 0 && outcome.published.length === result.rows.length;
    if (inFull && result.rows.length < RECORD_ALONGSIDE_FROM && result.runs.every((run) => run.rows.length > 0)) {
      this.#deps.observer?.published?.(outcome.published);
      this.#deferred = { token, runs: outcome.outcomes.map((o) => ({ aggregateId: o.aggregateId, deliveredThrough: o.deliveredThrough })) };
      this.#lastCycleAt = new Date(this.#clock.now());
      // Less than a full batch and nothing else due: nothing else was claimable. A commit meanwhile nudges another cycle.
      return { claimed: result.rows.length, more };
    }
    const recording = this.#record(token, result, outcome);
    if (inFull && result.rows.length >= RECORD_ALONGSIDE_FROM) {
      recording.catch(() => {}); // surfaced by #settle; never an unhandled rejection meanwhile
      this.#recording = recording;
    } else {
      await recording;
      current();
    }
    this.#lastCycleAt = new Date(this.#clock.now());
    return { claimed: result.rows.length, more: true };
  }

  /** Waits for a batch's record running beside the claim, and records a deferred one; rethrows a failure. */
  async #settle(): Promise<void> {
    const recording = this.#recording;
    this.#recording = null;
    if (recording) await recording;
    const deferred = this.#deferred;
    this.#deferred = null;
    if (deferred) {
      const generation = this.#generation;
      const { recorded } = await discoverNewEvents(this.#deps.orm, this.#deps.options.preparedStatements ?? true, deferred).catch((error: unknown) => {
        if (generation === this.#generation) this.#deferred ??= deferred;
        throw error;
      });
      this.#reportLapsed(deferred.runs.length, recorded);
    }
  }

  #reportLapsed(claimed: number, recorded: number): void {
    if (recorded < claimed) {
      this.#deps.logger.warn({ claimed, recorded }, 'outbox claim lapsed before its outcome was recorded; events may be delivered twice');
    }
  }

  async #record(token: string, claim: ClaimResult, outcome: PublishOutcome): Promise<void> {
    const { observer, orm, options } = this.#deps;
    const recorded = await recordOutcomes(orm, token, outcome.outcomes, options.preparedStatements ?? true);
    this.#reportLapsed(claim.runs.length, recorded);
    if (outcome.published.length > 0) observer?.published?.(outcome.published);
    for (const retry of outcome.retries) observer?.retryScheduled?.(retry.row, retry.delayMs, retry.error);
    for (const failure of outcome.failures) observer?.failed?.(failure.row, failure.error);
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
      if (this.#deferred && idleDelay === 0) {
        // Give the next commit a moment to carry the deferred record; otherwise the next cycle
        // records it all the same (and claims what committed meanwhile), so what outboxStatus
        // shows lags delivery by this much at most. Real time: it bounds staleness.
        await this.#sleep(RECORD_DEFERRAL_MS, systemClock);
        continue;
      }
      await this.#sleep(idleDelay || this.#deps.options.pollIntervalMs);
    }
    // The last batch's bookkeeping lands before stop resolves: no event is left claimed.
    await this.#settle().catch((error: unknown) => {
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
  async #cycleWithinDeadline(work: () => Promise<{ claimed: number; more: boolean }> = () => this.#cycle()): Promise<{ claimed: number; more: boolean }> {
    const timeoutMs = this.#deps.options.cycleTimeoutMs ?? 0;
    if (!timeoutMs) return work();
    const attempt = work();
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
    this.#recording?.catch(() => {});
    this.#recording = null;
    this.#deferred = null; // its claim lapses; the events go out again with the same eventId
    const severed = await severCheckedOutConnections(this.#deps.orm).catch(() => 0);
    this.#deps.observer?.cycleAbandoned?.(timeoutMs, severed);
    logCycleAbandoned(this.#deps.logger, { timeoutMs, severedConnections: severed, claimLeaseMs: this.#deps.options.claimLeaseMs });
    throw new CycleDeadlineError(timeoutMs);
  }

  #sleep(ms: number, clock: Clock = this.#clock): Promise<void> {
    // Stopped while no sleep was there to wake (during the deferred record, say): no poll-interval
    // wait before stop resolves, and none for ever on a clock that does not move.
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => {
      const cancel = clock.setTimeout(done, ms);
      const self = this;
      function done() {
        cancel();
        self.#wake = null;
        resolve();
      }
      this.#wake = done;
    });
  }

  /** Publishes a claimed batch and decides each aggregate's new position and head; records nothing yet. */
  async #publish(claim: ClaimResult): Promise<PublishOutcome> {
    const { observer, bus, options } = this.#deps;
    observer?.batchClaimed?.(claim.rows);

    // Attempts are counted at claim, so a run claimed more than maxAttempts times was never
    // confirmed even once: its publishers died with it (a poison pill). Its head is failed unsent,
    // holding back the rest of its aggregate. A row whose payload breaks the event contract can
    // never be published either: it is failed at once, the same way, after the run before it.
    const unsendable = new Map<string, { row: OutboxRow; error: string }>();
    const sendable: { row: OutboxRow; event: DomainEvent }[] = [];
    for (const run of claim.runs) {
      for (const row of run.rows) {
        const verdict = sendableEvent(row, options.maxAttempts);
        if ('error' in verdict) {
          unsendable.set(run.aggregateId, { row, error: verdict.error });
          break;
        }
        sendable.push({ row, event: verdict.event });
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
    const refused = firstError === -1 ? null : { row: sendable[firstError]!.row, error: describeError(results[firstError]) };

    const deliveredThrough = new Map<string, number>();
    for (const row of published) deliveredThrough.set(row.aggregate_id, Math.max(deliveredThrough.get(row.aggregate_id) ?? 0, row.sequence));
    const outcomes: RunOutcome[] = [];
    const retries: PublishOutcome['retries'] = [];
    const failures: PublishOutcome['failures'] = [];
    for (const run of claim.runs) {
      const through = deliveredThrough.get(run.aggregateId) ?? run.deliveredThrough;
      const moved = through > run.deliveredThrough;
      const head = through + 1;
      const bad = unsendable.get(run.aggregateId);
      if (bad && bad.row.sequence === head) {
        failures.push(bad);
        outcomes.push({ aggregateId: run.aggregateId, deliveredThrough: through, attempts: moved ? 1 : run.attempts, retryInMs: 0, error: bad.error, failed: true });
      } else if (refused && refused.row.aggregate_id === run.aggregateId) {
        // The head the bus refused was attempted in this claim: once if the run moved past the old head.
        const attempts = moved ? 1 : run.attempts;
        const giveUp = attempts >= options.maxAttempts;
        const delayMs = giveUp ? 0 : retryDelayMs(attempts, options, this.#random);
        if (giveUp) failures.push(refused);
        else retries.push({ ...refused, delayMs });
        outcomes.push({ aggregateId: run.aggregateId, deliveredThrough: through, attempts, retryInMs: delayMs, error: refused.error, failed: giveUp });
      } else {
        // Delivered (due again at once, at the back of the line), or not attempted: queued behind
        // another aggregate's refusal, it goes back without using an attempt.
        outcomes.push({ aggregateId: run.aggregateId, deliveredThrough: through, attempts: moved ? 0 : Math.max(run.attempts - 1, 0), retryInMs: 0, error: null, failed: false });
      }
    }
    return { outcomes, published, retries, failures, busRefusedAll: firstError === 0 };
  }
}
