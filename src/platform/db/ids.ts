import { v7 as uuidv7 } from 'uuid';

/**
 * Every id we mint is a UUIDv7: time-ordered, so new rows land at the right edge of their b-tree
 * indexes and an event id sorts roughly by creation time. Roughly: ids are taken when a row is
 * built, not when its transaction commits, so nothing may rely on them as a commit-ordered cursor.
 */
export function newId(): string {
  return uuidv7();
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}
