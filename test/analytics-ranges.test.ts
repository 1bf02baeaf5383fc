import { describe, expect, it } from 'vitest';
import { binValueMs, percentileMs, RESPONSE_BIN_GROWTH } from '../src/domain/analytics/response-time.histogram.ts';
import { DAY_MS, HOUR_MS, PERIOD_DAYS, splitRange } from '../src/domain/analytics/range-pieces.ts';

describe('splitRange', () => {
  it('cuts any range into whole days, whole hours of single days and at most two partial hours, exactly', () => {
    let seed = 7;
    const next = () => (seed = (seed * 48_271) % 2_147_483_647) / 2_147_483_647;
    const ms = (day: string) => Date.parse(`${day}T00:00:00Z`);
    for (let i = 0; i < 3_000; i++) {
      const from = Date.UTC(2025, 0, 1) + Math.floor(next() * 400 * DAY_MS);
      const to = from + 1 + Math.floor(next() ** 3 * 366 * DAY_MS);
      for (const wholeDays of [true, false]) {
        if (!wholeDays && to - from > 45 * DAY_MS) continue;
        const split = splitRange(new Date(from), new Date(to), wholeDays);
        const pieces = [
          ...(split.days ? [{ start: ms(split.days.start), end: ms(split.days.end) }] : []),
          ...split.hours.map((piece) => {
            expect(piece.fromHour).toBeGreaterThanOrEqual(0);
            expect(piece.toHour).toBeLessThanOrEqual(24);
            expect(piece.fromHour).toBeLessThan(piece.toHour);
            return { start: ms(piece.day) + piece.fromHour * HOUR_MS, end: ms(piece.day) + piece.toHour * HOUR_MS };
          }),
          ...split.raw.map((piece) => ({ start: piece.start.getTime(), end: piece.end.getTime() })),
        ].sort((a, b) => a.start - b.start);
        expect(pieces[0]!.start).toBe(from);
        expect(pieces.at(-1)!.end).toBe(to);
        for (let k = 1; k < pieces.length; k++) expect(pieces[k]!.start).toBe(pieces[k - 1]!.end);
        // Raw events are read only for the partial hours at the ends.
        expect(split.raw.length).toBeLessThanOrEqual(2);
        expect(split.raw.reduce((sum, r) => sum + r.end.getTime() - r.start.getTime(), 0)).toBeLessThan(2 * HOUR_MS);
        if (wholeDays) expect(split.hours.length).toBeLessThanOrEqual(2);
        else expect(split.days).toBeNull();
      }
    }
    expect(PERIOD_DAYS).toBe(64);
  });
});

describe('percentileMs', () => {
  it('reads the nearest-rank percentile from a histogram, within the bin error', () => {
    const samples = [0, 3, 250, 251, 1_000, 4_000, 65_000, 65_000, 900_000, 3_600_000];
    const histogram = new Map<number, number>();
    for (const ms of samples) {
      const bin = ms < 1 ? 0 : 1 + Math.floor(Math.log(ms) / Math.log(RESPONSE_BIN_GROWTH));
      histogram.set(bin, (histogram.get(bin) ?? 0) + 1);
    }
    const exact = (p: number) => samples[Math.ceil(p * samples.length) - 1]!;
    for (const p of [0.1, 0.5, 0.9, 1]) {
      const reported = percentileMs(histogram, p)!;
      if (exact(p) === 0) expect(reported).toBe(0);
      else expect(Math.abs(reported / exact(p) - 1)).toBeLessThanOrEqual(Math.sqrt(RESPONSE_BIN_GROWTH) - 1 + 1e-12);
    }
    expect(percentileMs(new Map(), 0.5)).toBeNull();
    expect(binValueMs(0)).toBe(0);
  });
});
