import type { Clock } from '../../src/platform/clock.ts';

interface Timer {
  at: number;
  order: number;
  callback: () => void;
}

/**
 * A clock that only moves when the test says so. Timers fire in `advance`, in due order (ties in
 * the order they were set), each with `now()` at its due time; a timer set by a firing callback
 * fires in the same `advance` when it falls due within it. Real I/O the callbacks start (a query)
 * still takes real time: wait for its outcome with `until`.
 */
export class FakeClock implements Clock {
  #now: number;
  #order = 0;
  readonly #timers = new Set<Timer>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): () => void {
    const timer = { at: this.#now + Math.max(0, ms), order: this.#order++, callback };
    this.#timers.add(timer);
    return () => void this.#timers.delete(timer);
  }

  /** Timers waiting to fire, and in how many ms from now, soonest first. */
  pending(): number[] {
    return [...this.#timers].sort(byDue).map((timer) => timer.at - this.#now);
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      const next = [...this.#timers].sort(byDue)[0];
      if (!next || next.at > target) break;
      this.#timers.delete(next);
      this.#now = next.at;
      next.callback();
      await settle(); // let promise chains the callback started take their next step
    }
    this.#now = target;
    await settle();
  }

  /** Resolves once at least `count` timers are waiting (the loop under test has gone to sleep). */
  async waitForTimers(count = 1, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#timers.size < count) {
      if (Date.now() > deadline) throw new Error(`${this.#timers.size} timers set, expected ${count} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

const byDue = (a: Timer, b: Timer) => a.at - b.at || a.order - b.order;

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
