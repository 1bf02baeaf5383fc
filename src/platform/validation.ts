import { isUuid } from './db/ids.ts';
import { badInput } from './errors.ts';

/** An id argument must be a UUID; anything else is the client's mistake, not a lookup miss. */
export function requireId(field: string, value: string): string {
  if (!isUuid(value)) throw badInput(field, `${field} is not a valid id`);
  return value.toLowerCase();
}

/**
 * Free text the user typed. Rejected (never silently changed): blank text, text over `maxLength`
 * characters, and NUL characters, which PostgreSQL cannot store in a text column.
 */
export function requireText(field: string, value: string, maxLength: number): string {
  if (value.trim().length === 0) throw badInput(field, `${field} must not be empty`);
  if ([...value].length > maxLength) throw badInput(field, `${field} must be at most ${maxLength} characters`);
  if (value.includes('\u0000')) throw badInput(field, `${field} must not contain NUL characters`);
  return value;
}

/** Characters in a user id (the JWT `sub`), and in every column that stores one. */
export const MAX_USER_ID_LENGTH = 200;

/** A user id as the identity provider issues it (the JWT `sub`). */
export function requireUserId(field: string, value: string): string {
  return requireText(field, value, MAX_USER_ID_LENGTH);
}
