import { describe, expect, it } from 'vitest';
import { sleep, systemClock } from '../src/platform/clock.ts';
import { FakeClock } from './support/fake-clock.ts';

describe('sleep', () => {
  it('resolves after the delay on the clock it is given', async () => {
    const clock = new FakeClock();
    let woke = false;
    const sleeping = sleep(clock, 1_000).then(() => (woke = true));
    await clock.advance(999);
    expect(woke).toBe(false);
    await clock.advance(1);
    await sleeping;
    expect(woke).toBe(true);
  });

  it('resolves at once when aborted, and cancels its timer', async () => {
    const clock = new FakeClock();
    const wake = new AbortController();
    const sleeping = sleep(clock, 60_000, wake.signal);
    expect(clock.pending()).toEqual([60_000]);
    wake.abort();
    await sleeping;
    expect(clock.pending()).toEqual([]);
    await sleep(clock, 60_000, wake.signal); // already aborted: no wait at all
  });

  it('waits real time on the system clock', async () => {
    const started = performance.now();
    await sleep(systemClock, 30);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
  });
});

describe('systemClock', () => {
  it('cancels a timer', async () => {
    let fired = false;
    const cancel = systemClock.setTimeout(() => (fired = true), 10);
    cancel();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(fired).toBe(false);
  });
});

describe('FakeClock', () => {
  it('fires due timers in due order with now() at their due time, including ones set while advancing', async () => {
    const clock = new FakeClock(1_000);
    const fired: [string, number][] = [];
    clock.setTimeout(() => fired.push(['b', clock.now()]), 20);
    clock.setTimeout(() => {
      fired.push(['a', clock.now()]);
      clock.setTimeout(() => fired.push(['a2', clock.now()]), 5);
    }, 10);
    clock.setTimeout(() => fired.push(['late', clock.now()]), 100);
    await clock.advance(30);
    expect(fired).toEqual([['a', 1_010], ['a2', 1_015], ['b', 1_020]]);
    expect(clock.now()).toBe(1_030);
    expect(clock.pending()).toEqual([70]);
  });
});
