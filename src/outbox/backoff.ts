/**
 * The one backoff rule: `baseMs` doubled per attempt after the first, capped at `maxMs`. With
 * `random`, "equal jitter": between half and all of that delay, so retries of many events that
 * failed together spread out instead of arriving together.
 */
export function backoffMs(attempt: number, options: { baseMs: number; maxMs: number }, random?: () => number): number {
  const capped = Math.min(options.maxMs, options.baseMs * 2 ** Math.max(0, attempt - 1));
  return random ? Math.round(capped / 2 + (capped / 2) * random()) : capped;
}
