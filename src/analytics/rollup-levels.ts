/**
 * Bucket widths of the analytics rollups and how a time range is covered by them.
 *
 * Every width divides the next and buckets are aligned to the Unix epoch, so a range is covered
 * by whole buckets of the widest width that fits, then narrower ones towards its ends, and raw
 * events only in the partial hours at either end. With a factor of 4 between widths, a 90-day
 * range is summed from at most ~3 buckets per width per end instead of 2,160 hourly ones.
 */
export const HOUR_MS = 3_600_000;

/** 1 hour, 1 day, 4 days, 16 days, 64 days; the migration's check constraint lists the same. */
export const ROLLUP_BUCKET_HOURS = [1, 24, 96, 384, 1536] as const;

export interface BucketRange {
  /** Width of the buckets, in hours. */
  hours: number;
  /** Start of the first bucket and end of the last (exclusive). */
  start: Date;
  end: Date;
}

export interface TimeRange {
  start: Date;
  end: Date;
}

export interface RangeCover {
  /** Contiguous runs of whole buckets, read from analytics_rollup. */
  buckets: BucketRange[];
  /** What no whole bucket covers (at most one partial hour at each end), read from raw events. */
  raw: TimeRange[];
}

const floorTo = (ms: number, width: number) => Math.floor(ms / width) * width;
const ceilTo = (ms: number, width: number) => Math.ceil(ms / width) * width;

/**
 * Covers [from, to) with whole buckets of the given widths (hours, any order) and raw remainders.
 * The pieces do not overlap and together are exactly [from, to).
 */
export function coverRange(from: Date, to: Date, widthsInHours: readonly number[]): RangeCover {
  const widths = [...widthsInHours].sort((a, b) => b - a).map((hours) => hours * HOUR_MS);
  const cover: RangeCover = { buckets: [], raw: [] };
  const visit = (start: number, end: number, level: number) => {
    if (start >= end) return;
    const width = widths[level];
    if (width === undefined) {
      cover.raw.push({ start: new Date(start), end: new Date(end) });
      return;
    }
    const first = ceilTo(start, width);
    const last = floorTo(end, width);
    if (first >= last) return visit(start, end, level + 1);
    visit(start, first, level + 1);
    cover.buckets.push({ hours: width / HOUR_MS, start: new Date(first), end: new Date(last) });
    visit(last, end, level + 1);
  };
  visit(from.getTime(), to.getTime(), 0);
  return cover;
}

/** Start of the bucket of `width` hours that holds `at`. */
export function bucketStart(at: Date, hours: number): Date {
  return new Date(floorTo(at.getTime(), hours * HOUR_MS));
}
