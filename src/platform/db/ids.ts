import { randomFillSync } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';

/**
 * Random bytes for ids, drawn 4 KiB at a time: uuid asks WebCrypto for 16 bytes per id, and that
 * call was 2 % of the server's CPU under `bench:writes` (two ids per message).
 */
const randomPool = Buffer.allocUnsafe(4096);
let randomOffset = randomPool.length;

function randomBytes16(): Uint8Array {
  if (randomOffset === randomPool.length) {
    randomFillSync(randomPool);
    randomOffset = 0;
  }
  return randomPool.subarray(randomOffset, (randomOffset += 16));
}

/**
 * uuid keeps ids of one millisecond increasing only when it draws the randomness itself; with ours,
 * this does the same: a new millisecond starts a random counter, a repeated one (or a clock that
 * went back) counts on from the last id.
 */
const last = { msecs: -Infinity, seq: 0 };

/**
 * Every id we mint is a UUIDv7: time-ordered, so new rows land at the right edge of their b-tree
 * indexes and an event id sorts roughly by creation time. Roughly: ids are taken when a row is
 * built, not when its transaction commits, so nothing may rely on them as a commit-ordered cursor.
 */
export function newId(): string {
  const random = randomBytes16();
  const now = Date.now();
  if (now > last.msecs) {
    last.msecs = now;
    // 31 random bits, as uuid starts its counter: room to count on within the millisecond.
    last.seq = ((random[6]! & 0x7f) << 24) | (random[7]! << 16) | (random[8]! << 8) | random[9]!;
  } else {
    last.seq = (last.seq + 1) | 0;
    if (last.seq === 0) last.msecs++;
  }
  return uuidv7({ random, msecs: last.msecs, seq: last.seq });
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}
