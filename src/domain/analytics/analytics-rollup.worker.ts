import { systemClock, type Clock } from '../../platform/clock.ts';
import { forkEm, type Orm } from '../../platform/db/orm.ts';
import type { Logger } from '../../platform/logger.ts';
import { foldNextBatch, type FoldResult } from './analytics.repository.ts';

export interface AnalyticsRollupOptions {
  /** Pause between folds once caught up, in ms. Analytics read unfolded events directly, so this bounds query cost, not freshness. */
  intervalMs: number;
  /** Most events folded in one transaction: bounds how long a fold holds a transaction id and locks rollup rows. */
  batchSize: number;
}

export interface AnalyticsRollupWorker {
  start(): void;
  /** Stops the loop and waits for a fold in progress to commit or roll back. */
  stop(): Promise<void>;
  /** Folds now instead of at the next tick. */
  nudge(): void;
  /** Folds batches until every finished event is folded in (or another process holds the lock); returns the events folded. */
  catchUp(): Promise<number>;
  status(): AnalyticsRollupStatus;
}

export interface AnalyticsRollupStatus {
  /** When this process last completed a fold while holding the rollup lock (whether or not it found events). */
  lastFoldAt: Date | null;
}

/**
 * Keeps the analytics running totals up to date in the background: folds events whose transaction has
 * finished (below the snapshot horizon) and advances the watermark in the same transaction, so an
 * event is counted exactly once however late or out of order its transaction commits. Several
 * processes may run one; an advisory lock lets one fold at a time.
 */
export function createAnalyticsRollupWorker(deps: {
  orm: Orm;
  logger: Logger;
  options: AnalyticsRollupOptions;
  /** Times the pause between folds; default: the real clock. */
  clock?: Clock;
}): AnalyticsRollupWorker {
  const { orm, logger, options } = deps;
  const clock = deps.clock ?? systemClock;
  let running = false;
  /** Cancels the next scheduled fold. */
  let timer: (() => void) | null = null;
  let cycle: Promise<unknown> = Promise.resolve();
  let lastFoldAt: Date | null = null;

  async function foldOnce(): Promise<FoldResult> {
    const result = await forkEm(orm).transactional((tx) => foldNextBatch(tx, options.batchSize));
    if (result.locked) lastFoldAt = new Date(clock.now());
    return result;
  }

  async function catchUp(keepGoing: () => boolean = () => true): Promise<number> {
    let total = 0;
    for (;;) {
      const result = await foldOnce();
      total += result.events;
      if (!result.locked || result.caughtUp || !keepGoing()) return total;
    }
  }

  function schedule(delayMs: number) {
    if (!running) return;
    timer?.();
    timer = clock.setTimeout(tick, delayMs);
  }

  function tick() {
    timer = null;
    cycle = cycle.then(async () => {
      if (!running) return;
      try {
        // A long backlog is folded batch by batch; stop() need not wait for all of it.
        const events = await catchUp(() => running);
        if (events > 0) logger.debug({ events }, 'analytics rollup folded events');
      } catch (error) {
        logger.error({ err: error }, 'analytics rollup failed; retrying at the next interval');
      }
      schedule(options.intervalMs);
    });
  }

  return {
    start() {
      if (running) return;
      running = true;
      schedule(0);
    },
    async stop() {
      running = false;
      timer?.();
      timer = null;
      await cycle;
    },
    nudge() {
      schedule(0);
    },
    catchUp: () => catchUp(),
    status: () => ({ lastFoldAt }),
  };
}
