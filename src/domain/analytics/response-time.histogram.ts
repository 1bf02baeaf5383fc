/**
 * Response times are kept as a histogram with logarithmic bins, so percentiles over any range can
 * be summed from running totals instead of sorting every sample. Bin 0 holds gaps under 1 ms; bin k >= 1
 * holds gaps in [GROWTH^(k-1), GROWTH^k) ms and is reported as its geometric middle, which is
 * within sqrt(GROWTH) - 1 (2.47%) of every value in the bin.
 */
export const RESPONSE_BIN_GROWTH = 1.05;

/** Largest relative error of a reported percentile against the exact sample value. */
export const RESPONSE_PERCENTILE_RELATIVE_ERROR = Math.sqrt(RESPONSE_BIN_GROWTH) - 1;

/** The bin's representative value in milliseconds. */
export function binValueMs(bin: number): number {
  return bin <= 0 ? 0 : RESPONSE_BIN_GROWTH ** (bin - 0.5);
}

/**
 * Nearest-rank percentile (the value at rank ceil(p * n) of the sorted samples) read from a
 * histogram of bin -> count; null when there are no samples.
 */
export function percentileMs(histogram: ReadonlyMap<number, number>, p: number): number | null {
  const bins = [...histogram.entries()].filter(([, count]) => count > 0).sort(([a], [b]) => a - b);
  const total = bins.reduce((sum, [, count]) => sum + count, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(p * total));
  let seen = 0;
  for (const [bin, count] of bins) {
    seen += count;
    if (seen >= rank) return binValueMs(bin);
  }
  return binValueMs(bins.at(-1)![0]);
}
