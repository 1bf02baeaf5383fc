/**
 * Time as the process's own loops see it: the publisher's poll and back-off, the LISTEN reconnect
 * delay, the analytics rollup's pause, a subscription's token-expiry timer and membership re-check.
 * Passed in as a dependency, so tests drive those paths with a fake clock instead of real sleeps.
 *
 * Not for deciding which outbox events are due: that is the database's clock (`now()` in SQL), so
 * that publishers on hosts whose clocks disagree still agree on it.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Calls `callback` once after `ms`; the returned function cancels it (a no-op once it ran). */
  setTimeout(callback: () => void, ms: number): () => void;
}

/** Node's timer limit: a longer delay fires at once (with a warning) instead of late. */
const MAX_TIMER_MS = 2_147_483_647;

/** The real clock. Delays beyond Node's timer limit are waited in steps, so they fire on time. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(callback, ms) {
    let timer: NodeJS.Timeout;
    const due = Date.now() + ms;
    const arm = (wait: number) => {
      timer = setTimeout(() => {
        const left = due - Date.now();
        if (left > 0) arm(left);
        else callback();
      }, Math.min(Math.max(wait, 0), MAX_TIMER_MS));
    };
    arm(ms);
    return () => clearTimeout(timer);
  },
};

/**
 * Resolves after `ms` on `clock`, or as soon as `signal` aborts (then without waiting further);
 * never rejects, so a loop can check its own state after it.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const cancel = clock.setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
