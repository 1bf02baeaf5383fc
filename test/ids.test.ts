import { describe, expect, it } from 'vitest';
import { isUuid, newId } from '../src/platform/db/ids.ts';

describe('the ids we mint', () => {
  it('are UUIDv7 (version 7, RFC variant), all different, and increase within a process, one millisecond or many', () => {
    const ids = Array.from({ length: 50_000 }, () => newId());
    for (const id of ids.slice(0, 100)) {
      expect(isUuid(id)).toBe(true);
      expect(id[14]).toBe('7');
      expect('89ab').toContain(id[19]);
    }
    expect(new Set(ids).size).toBe(ids.length);
    // 50,000 ids take a few milliseconds: most share a millisecond with the one before.
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true);
  });

  it('carry the time they were made in their first 48 bits', () => {
    const before = Date.now();
    const id = newId();
    const after = Date.now();
    const msecs = parseInt(id.replace(/-/g, '').slice(0, 12), 16);
    expect(msecs).toBeGreaterThanOrEqual(before);
    expect(msecs).toBeLessThanOrEqual(after);
  });

  it('use fresh randomness: the random tails of ids minted apart share nothing', () => {
    const tails = Array.from({ length: 1_000 }, () => newId().slice(-12));
    expect(new Set(tails).size).toBe(tails.length);
  });
});
