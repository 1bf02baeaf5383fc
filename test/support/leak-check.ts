/**
 * What a test file leaves open, compared with a baseline taken when the file started: handles
 * Node still holds (sockets, servers, child processes: `process.getActiveResourcesInfo()`), timers
 * the file set and neither cleared nor saw fire, and listeners on `process`. Each test file runs
 * in a process of its own (vitest's forks pool), so everything above the baseline is the file's.
 *
 * Timers are tracked by wrapping the global timer functions (`trackTimers`), not counted from
 * `getActiveResourcesInfo()`: vitest's own timers come and go during hooks and would blur the
 * count, and a tracked timer can say where it was set.
 */
export interface OpenThings {
  /** Count per handle type, e.g. TCPWRAP (a socket: a pool's connection, a client), TCPServerWrap (a listening server), ProcessWrap (a child process). */
  handles: Map<string, number>;
  /** Count per event name of listeners on `process`. */
  processListeners: Map<string, number>;
  /** Timers set since `trackTimers` that still keep the process alive, by where they were set. */
  timers: Map<string, number>;
}

const TIMER_TYPES = new Set(['Timeout', 'Immediate']);

function countBy(values: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

/** Live timers set through the wrapped globals, with the place that set each. */
const liveTimers = new Map<NodeJS.Timeout, string>();
let tracking = false;

/** Frames of timer plumbing, skipped to name the code that asked for the timer. */
const PLUMBING = ['leak-check.ts', 'node:internal', '/src/platform/clock.ts'];

/** The first stack frame outside timer plumbing: where a timer was set. */
function caller(): string {
  const frames = (new Error().stack ?? '').split('\n').slice(1).map((line) => line.trim());
  const frame = frames.find((line) => !PLUMBING.some((part) => line.includes(part)));
  return frame?.replace(/^at /, '') ?? 'unknown place';
}

/** Wraps setTimeout/setInterval so that `openThings` sees the timers set from now on. Idempotent. */
export function trackTimers(): void {
  if (tracking) return;
  tracking = true;
  const { setTimeout: realSetTimeout, setInterval: realSetInterval, clearTimeout: realClearTimeout, clearInterval: realClearInterval } = globalThis;
  globalThis.setTimeout = Object.assign(
    (callback: (...args: any[]) => void, ms?: number, ...args: any[]) => {
      const timer: NodeJS.Timeout = realSetTimeout(
        (...inner: any[]) => {
          liveTimers.delete(timer);
          callback(...inner);
        },
        ms,
        ...args,
      );
      liveTimers.set(timer, caller());
      return timer;
    },
    { __promisify__: (realSetTimeout as any).__promisify__ },
  ) as typeof setTimeout;
  globalThis.setInterval = ((callback: (...args: any[]) => void, ms?: number, ...args: any[]) => {
    const timer = realSetInterval(callback, ms, ...args);
    liveTimers.set(timer, caller());
    return timer;
  }) as typeof setInterval;
  globalThis.clearTimeout = ((timer?: NodeJS.Timeout | string | number) => {
    if (timer && typeof timer === 'object') liveTimers.delete(timer);
    realClearTimeout(timer);
  }) as typeof clearTimeout;
  globalThis.clearInterval = ((timer?: NodeJS.Timeout | string | number) => {
    if (timer && typeof timer === 'object') liveTimers.delete(timer);
    realClearInterval(timer);
  }) as typeof clearInterval;
}

export function openThings(): OpenThings {
  return {
    handles: countBy(process.getActiveResourcesInfo().filter((type) => !TIMER_TYPES.has(type))),
    processListeners: new Map(process.eventNames().filter((name) => typeof name === 'string').map((name) => [name as string, process.listenerCount(name)])),
    // An unref'd timer does not hold the process; clearing it is still tidy, but not a leak.
    timers: countBy([...liveTimers].filter(([timer]) => timer.hasRef()).map(([, where]) => where)),
  };
}

/** What is open now beyond `baseline`, one line per kind, e.g. `2 × TCPWRAP`; empty when nothing. */
export function leakedSince(baseline: OpenThings, now: OpenThings = openThings()): string[] {
  const over = (before: Map<string, number>, after: Map<string, number>, label: (name: string) => string) =>
    [...after]
      .filter(([name, count]) => count > (before.get(name) ?? 0))
      .map(([name, count]) => `${count - (before.get(name) ?? 0)} × ${label(name)}`);
  return [
    ...over(baseline.handles, now.handles, (name) => name),
    ...over(baseline.timers, now.timers, (where) => `timer set at ${where}`),
    ...over(baseline.processListeners, now.processListeners, (name) => `process.on('${name}') listener`),
  ];
}

/**
 * Waits up to `graceMs` for handles that are closing (a server or socket whose close callback ran
 * before libuv released the handle) to go, and returns what is still leaked.
 */
export async function waitForLeaks(baseline: OpenThings, graceMs = 1_000): Promise<string[]> {
  const deadline = Date.now() + graceMs;
  for (;;) {
    const leaked = leakedSince(baseline);
    if (leaked.length === 0 || Date.now() >= deadline) return leaked;
    await new Promise<void>((resolve) => setImmediate(resolve));
    await new Promise<void>((resolve) => setTimeout(resolve, 20).unref());
  }
}
