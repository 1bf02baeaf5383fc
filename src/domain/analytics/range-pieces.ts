/**
 * How projectAnalytics splits a time range [from, to) into pieces it can count cheaply.
 *
 * Counts are kept per key as running totals (docs/analytics.md): by hour within each UTC day, and
 * by day within each 64-day period. Any run of whole days inside one period, or of whole hours
 * inside one day, is then one subtraction per key. So a range is cut into its whole days, the
 * whole hours of the partial days at its ends, and the partial hours at its very ends, which are
 * read from raw events.
 */
export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
/** Days per running-total period; the migration's check constraint uses the same number. */
export const PERIOD_DAYS = 64;

export interface TimeRange {
  start: Date;
  end: Date;
}

export interface HourPiece {
  /** UTC day, YYYY-MM-DD. */
  day: string;
  /** Whole hours [fromHour, toHour) of that day, 0 <= fromHour < toHour <= 24. */
  fromHour: number;
  toHour: number;
}

export interface RangePieces {
  /** Whole UTC days [start, end) as YYYY-MM-DD, or null when the range holds no whole day. */
  days: { start: string; end: string } | null;
  hours: HourPiece[];
  /** Partial hours, read from raw events; at most one at each end. */
  raw: TimeRange[];
}

const floorTo = (ms: number, width: number) => Math.floor(ms / width) * width;
const ceilTo = (ms: number, width: number) => Math.ceil(ms / width) * width;
export const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * Splits [from, to) into pieces that do not overlap and together are exactly [from, to). With
 * `wholeDays` false, whole days are split into hours too (for an hourly series).
 */
export function splitRange(from: Date, to: Date, wholeDays: boolean): RangePieces {
  const pieces: RangePieces = { days: null, hours: [], raw: [] };
  // Whole hours of [start, end), which lies within one UTC day, and raw minutes at its ends.
  const withinDay = (start: number, end: number) => {
    if (start >= end) return;
    const firstHour = ceilTo(start, HOUR_MS);
    const lastHour = floorTo(end, HOUR_MS);
    if (firstHour >= lastHour) {
      pieces.raw.push({ start: new Date(start), end: new Date(end) });
      return;
    }
    if (start < firstHour) pieces.raw.push({ start: new Date(start), end: new Date(firstHour) });
    const day = floorTo(start, DAY_MS);
    pieces.hours.push({ day: utcDay(day), fromHour: (firstHour - day) / HOUR_MS, toHour: (lastHour - day) / HOUR_MS });
    if (lastHour < end) pieces.raw.push({ start: new Date(lastHour), end: new Date(end) });
  };
  const start = from.getTime();
  const end = to.getTime();
  const firstDay = ceilTo(start, DAY_MS);
  const lastDay = floorTo(end, DAY_MS);
  if (firstDay > lastDay) {
    withinDay(start, end);
  } else {
    withinDay(start, firstDay);
    if (wholeDays) {
      if (firstDay < lastDay) pieces.days = { start: utcDay(firstDay), end: utcDay(lastDay) };
    } else {
      for (let day = firstDay; day < lastDay; day += DAY_MS) withinDay(day, day + DAY_MS);
    }
    withinDay(lastDay, end);
  }
  pieces.raw.sort((a, b) => a.start.getTime() - b.start.getTime());
  return pieces;
}

/** Start of the bucket of `hours` hours (aligned to the Unix epoch) that holds `at`. */
export function bucketStart(at: Date, hours: number): Date {
  return new Date(floorTo(at.getTime(), hours * HOUR_MS));
}
