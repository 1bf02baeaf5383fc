import { systemClock, type Clock } from '../platform/clock.ts';
import { dbOf } from '../platform/db/database.ts';
import { forkEm, type Orm } from '../platform/db/orm.ts';
import type { Logger } from '../platform/logger.ts';
import { expireEvents } from './sql/expire-events.sql.ts';

export interface EventRetentionOptions {
  /** EVENT_RETENTION_HOURS; 0 keeps everything (the worker never starts). */
  retentionHours: number;
  /** EVENT_RETENTION_BATCH_SIZE. */
  batchSize: number;
  /** EVENT_RETENTION_INTERVAL_MS: the pause once nothing more has expired. */
  intervalMs: number;
}

export interface EventRetentionWorker {
  start(): void;
  /** Stops the loop; waits for a batch in progress. */
  stop(): Promise<void>;
  /** Removes expired batches until none is left; returns how many events were removed. */
  runOnce(): Promise<number>;
}

/**
 * Keeps the event log within its retention window: removes expired, delivered, folded events in
 * bounded batches (one short statement each, never one unbounded DELETE), one batch after the
 * other while any is left, then waits `intervalMs`. The cutoff is taken on the injected clock.
 */
export function createEventRetentionWorker(deps: { orm: Orm; logger: Logger; options: EventRetentionOptions; clock?: Clock }): EventRetentionWorker {
  const { orm, logger, options } = deps;
  const clock = deps.clock ?? systemClock;
  let running = false;
  let cancel: (() => void) | null = null;
  let cycle: Promise<unknown> = Promise.resolve();

  async function runOnce(): Promise<number> {
    if (options.retentionHours <= 0) return 0;
    let total = 0;
    for (;;) {
      const cutoff = new Date(clock.now() - options.retentionHours * 3_600_000);
      const { rows } = await dbOf(forkEm(orm)).executeQuery(expireEvents.bind({ cutoff, batch: options.batchSize }));
      const removed = rows[0]?.removed ?? 0;
      total += removed;
      if (removed < options.batchSize) return total;
    }
  }

  function schedule() {
    if (!running) return;
    cancel = clock.setTimeout(() => {
      cancel = null;
      cycle = cycle.then(async () => {
        if (!running) return;
        try {
          const removed = await runOnce();
          if (removed > 0) logger.info({ removed, retentionHours: options.retentionHours }, 'expired events removed from the event log');
        } catch (error) {
          logger.error({ err: error }, 'event retention failed; retrying at the next interval');
        }
        schedule();
      });
    }, options.intervalMs);
  }

  return {
    start() {
      if (running || options.retentionHours <= 0) return;
      running = true;
      schedule();
    },
    async stop() {
      running = false;
      cancel?.();
      cancel = null;
      await cycle;
    },
    runOnce,
  };
}
