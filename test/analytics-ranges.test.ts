import { describe, expect, it } from 'vitest';
import { binValueMs, percentileMs, RESPONSE_BIN_GROWTH } from '../src/analytics/response-time.histogram.ts';
import { coverRange, HOUR_MS, ROLLUP_BUCKET_HOURS } from '../src/analytics/rollup-levels.ts';

describe('coverRange', () => {
  it('covers any range exactly, without overlap, with aligned whole buckets and at most two raw pieces', () => {
    let seed = 7;
    const next = () => ((seed = (seed * 48_271) % 2_147_483_647) / 2_147_483_647);
    for (let i = 0; i < 2_000; i++) {
      const from = Date.UTC(2025, 0, 1) + Math.floor(next() * 400 * 24 * HOUR_MS);
      const to = from + 1 + Math.floor(next() ** 2 * 366 * 24 * HOUR_MS);
      const cover = coverRange(new Date(from), new Date(to), ROLLUP_BUCKET_HOURS);
      const pieces = [
        ...cover.buckets.map((b) => ({ start: b.start.getTime(), end: b.end.getTime(), width: b.hours * HOUR_MS })),
        ...cover.raw.map((r) => ({ start: r.start.getTime(), end: r.end.getTime(), width: 0 })),
      ].sort((a, b) => a.start - b.start);
      expect(pieces[0]!.start).toBe(from);
      expect(pieces.at(-1)!.end).toBe(to);
      for (let k = 1; k < pieces.length; k++) expect(pieces[k]!.start).toBe(pieces[k - 1]!.end);
      for (const piece of pieces) {
        expect(piece.end).toBeGreaterThan(piece.start);
        if (piece.width) {
          expect(piece.start % piece.width).toBe(0);
          expect((piece.end - piece.start) % piece.width).toBe(0);
        }
      }
      // Raw events are read only for the partial hours at the ends.
      expect(cover.raw.length).toBeLessThanOrEqual(2);
      expect(cover.raw.reduce((sum, r) => sum + r.end.getTime() - r.start.getTime(), 0)).toBeLessThan(2 * HOUR_MS);
      // Bounded work: at most 3 buckets per width per end, plus one run of the widest.
      const count = cover.buckets.reduce((sum, b) => sum + (b.end.getTime() - b.start.getTime()) / (b.hours * HOUR_MS), 0);
      const widest = cover.buckets.filter((b) => b.hours === 1536).reduce((sum, b) => sum + (b.end.getTime() - b.start.getTime()) / (1536 * HOUR_MS), 0);
      expect(count - widest).toBeLessThanOrEqual(2 * (23 + 3 + 3 + 3));
    }
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
