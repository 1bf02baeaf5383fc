import { createHash } from 'node:crypto';
import { badInput } from '../errors.ts';
import { isUuid } from './ids.ts';

/**
 * Keyset pagination for every connection, forward (`first`/`after`) and backward
 * (`last`/`before`, Relay's connection spec): stable while rows are being inserted, and no OFFSET
 * scans in either direction. Cursors are opaque to clients (base64url JSON) and every value in
 * one is checked by its key's validator when it is read back, so a forged cursor is BAD_USER_INPUT and never
 * reaches PostgreSQL as a value it cannot compare (a non-uuid id, an integer out of range, a
 * timestamp PostgreSQL cannot hold).
 */
export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

export interface PageRequest {
  first?: number | null | undefined;
  after?: string | null | undefined;
  last?: number | null | undefined;
  before?: string | null | undefined;
}

/**
 * A page, always in the list's order whichever way it was read. Whether items lie on the far side
 * of its cursor costs a query of its own, so both flags are asked for (and that query made) only
 * when a client selects them.
 */
export interface Page<T> {
  items: T[];
  hasNextPage(): Promise<boolean>;
  hasPreviousPage(): Promise<boolean>;
  cursorOf: (item: T) => string;
}

/** One value of a cursor's position: how it is written, and what is accepted back (null: refused). */
export interface CursorKey<T> {
  encode(value: T): string | number;
  parse(value: unknown): T | null;
}

const MAX_INT4 = 2_147_483_647;
/** Milliseconds, as Date#toISOString writes them. */
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** Microseconds, as PostgreSQL keeps them. */
const EXACT_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/** A timestamp that names a real instant (no 30 February, no hour 25) of years 0001-9999. */
function realInstant(text: string): Date | null {
  const date = new Date(`${text.slice(0, 23)}Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 23) === text.slice(0, 23) && !text.startsWith('0000') ? date : null;
}

export const cursorKeys = {
  uuid: {
    encode: (value: string) => value,
    parse: (value: unknown) => (typeof value === 'string' && isUuid(value) ? value.toLowerCase() : null),
  } satisfies CursorKey<string>,
  /** A row's creation time, to the millisecond (what the ORM reads). */
  instant: {
    encode: (value: Date) => value.toISOString(),
    parse: (value: unknown) => (typeof value === 'string' && INSTANT.test(value) ? realInstant(value) : null),
  } satisfies CursorKey<Date>,
  /** A row's creation time to the microsecond, as text (PostgreSQL's precision; a Date has less). */
  exactInstant: {
    encode: (value: string) => value,
    parse: (value: unknown) => (typeof value === 'string' && EXACT_INSTANT.test(value) && realInstant(value) ? value : null),
  } satisfies CursorKey<string>,
  /** A gapless position (sequence number): 0 up to PostgreSQL's integer range. */
  position: {
    encode: (value: number) => value,
    parse: (value: unknown) => (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_INT4 ? value : null),
  } satisfies CursorKey<number>,
  /** Free text such as a user id: at most `maxLength` characters, no NUL (PostgreSQL cannot store it). */
  text: (maxLength: number): CursorKey<string> => ({
    encode: (value) => value,
    parse: (value) => (typeof value === 'string' && value.length > 0 && [...value].length <= maxLength && !value.includes('\u0000') ? value : null),
  }),
  /** A transaction id (xid8): digits, within 64 bits. */
  transactionId: {
    encode: (value: string) => value,
    parse: (value: unknown) => (typeof value === 'string' && /^\d{1,20}$/.test(value) && BigInt(value) < 2n ** 64n ? value : null),
  } satisfies CursorKey<string>,
};

type KeyValues<K extends readonly CursorKey<any>[]> = { -readonly [I in keyof K]: K[I] extends CursorKey<infer T> ? T : never };

export interface CursorCodec<Key extends unknown[]> {
  encode(position: Key, pinned?: string | null): string;
  /**
   * The position and pinned state of a cursor; BAD_USER_INPUT (on `field`, `after` or `before`)
   * for anything this codec did not write.
   */
  decode(cursor: string, field?: CursorArgument): { position: Key; pinned: string | null };
}

export type CursorArgument = 'after' | 'before';

const invalidCursor = (field: CursorArgument) => badInput(field, `${field} is not a valid cursor`);

function readJson(cursor: string, field: CursorArgument): unknown {
  // base64url decoding skips characters outside its alphabet, so check the alphabet first.
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalidCursor(field);
  try {
    return JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor(field);
  }
}

/**
 * The cursor format of one list: its position keys in sort order, and optionally
 * - `scope`: a digest of the query that makes the cursors (see queryScope); a cursor of any other
 *   query is refused, so it can neither leak rows it was not asked for nor silently skip some;
 * - `pinned`: state the query pins for a whole walk (a snapshot horizon), checked by its key.
 * Cursors are not signed: a client that forges one can only move around inside a query it is
 * already allowed to run.
 */
export function cursorCodec<const K extends readonly CursorKey<any>[]>(
  keys: K,
  options: { scope?: string; pinned?: CursorKey<string> } = {},
): CursorCodec<KeyValues<K>> {
  const { scope, pinned: pinnedKey } = options;
  const encodePosition = (position: unknown[]) => keys.map((key, i) => key.encode(position[i]));
  function parsePosition(values: unknown, field: CursorArgument): KeyValues<K> {
    if (!Array.isArray(values) || values.length !== keys.length) throw invalidCursor(field);
    return keys.map((key, i) => {
      const parsed = key.parse(values[i]);
      if (parsed === null) throw invalidCursor(field);
      return parsed;
    }) as KeyValues<K>;
  }
  return {
    encode(position, pinned = null) {
      const json = scope === undefined ? encodePosition(position) : { s: scope, p: encodePosition(position), x: pinned };
      return Buffer.from(JSON.stringify(json)).toString('base64url');
    },
    decode(cursor, field = 'after') {
      const json = readJson(cursor, field);
      if (scope === undefined) return { position: parsePosition(json, field), pinned: null };
      const { s, p, x } = (json !== null && typeof json === 'object' && !Array.isArray(json) ? json : {}) as { s?: unknown; p?: unknown; x?: unknown };
      if (typeof s !== 'string') throw invalidCursor(field);
      if (s !== scope) throw badInput(field, `${field} is a cursor of a different query (other project, filter or order)`);
      const position = parsePosition(p, field);
      if (!pinnedKey) {
        if (x !== null && x !== undefined) throw invalidCursor(field);
        return { position, pinned: null };
      }
      const pinned = pinnedKey.parse(x);
      if (pinned === null) throw invalidCursor(field);
      return { position, pinned };
    },
  };
}

/** A short digest naming one query: its kind and every argument that selects or orders rows. */
export function queryScope(kind: string, identity: unknown): string {
  return createHash('sha256').update(JSON.stringify([kind, identity])).digest('base64url').slice(0, 22);
}

/** A page size (`first` or `last`): DEFAULT_PAGE_SIZE when absent, BAD_USER_INPUT outside 0..MAX_PAGE_SIZE. */
export function parsePageSize(size: number | null | undefined, field: 'first' | 'last' = 'first'): number {
  const limit = size ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 0 || limit > MAX_PAGE_SIZE) {
    throw badInput(field, `${field} must be between 0 and ${MAX_PAGE_SIZE}`);
  }
  return limit;
}

const given = (value: unknown) => value !== null && value !== undefined;

/**
 * Which way a request reads: forward (`first`, `after`) or backward (`last`, `before`). Relay's
 * spec lets a client mix them (a range between two cursors); no client we know needs that, and
 * its answer is easy to misread, so mixing the two directions is BAD_USER_INPUT.
 */
function pageDirection(request: PageRequest): { backward: boolean; limit: number; cursor: string | null } {
  const forward = given(request.first) || given(request.after);
  const backward = given(request.last) || given(request.before);
  if (forward && backward) {
    throw badInput(given(request.last) ? 'last' : 'before', 'A page is read forward (first, after) or backward (last, before): they cannot be combined');
  }
  return backward
    ? { backward: true, limit: parsePageSize(request.last, 'last'), cursor: request.before ?? null }
    : { backward: false, limit: parsePageSize(request.first, 'first'), cursor: request.after ?? null };
}

export interface PageSource<Row, Key extends unknown[]> {
  cursor: CursorCodec<Key>;
  /**
   * At most `limit` rows beyond `from`: after it in key order (from the start when null), or,
   * `backward`, before it in reverse key order, nearest first (from the end when null). Both
   * directions are keyset reads on the same index. May return the state to pin in the page's cursors.
   */
  fetch(query: { from: Key | null; backward: boolean; pinned: string | null; limit: number }): Promise<Row[] | { rows: Row[]; pinned: string | null }>;
  /** The position of a row, in the codec's key order. */
  keyOf(row: Row): Key;
}

const rowsOf = <Row>(fetched: Row[] | { rows: Row[]; pinned: string | null }) => (Array.isArray(fetched) ? { rows: fetched, pinned: null } : fetched);

/**
 * The one way a connection reads a page: validate the arguments, fetch one row more than asked
 * (to tell whether more follow in the reading direction), write the cursors. Whether rows lie on
 * the other side of the cursor is one more single-row keyset read, made only when a cursor is
 * given and the flag is asked for (a client paging forward usually selects only `hasNextPage`).
 */
export async function findPage<Row, Key extends unknown[], Item = Row>(
  request: PageRequest,
  source: PageSource<Row, Key>,
  toItem: (row: Row) => Item = (row) => row as unknown as Item,
): Promise<Page<Item>> {
  const { backward, limit, cursor } = pageDirection(request);
  const from = cursor ? source.cursor.decode(cursor, backward ? 'before' : 'after') : null;
  const { rows, pinned } = rowsOf(await source.fetch({ from: from?.position ?? null, backward, pinned: from?.pinned ?? null, limit: limit + 1 }));
  const ahead = Promise.resolve(rows.length > limit);
  let behind: Promise<boolean> | null = null;
  const isBehind = () =>
    (behind ??= from
      ? Promise.resolve(source.fetch({ from: from.position, backward: !backward, pinned: from.pinned, limit: 1 })).then((fetched) => rowsOf(fetched).rows.length > 0)
      : Promise.resolve(false));
  const pageRows = rows.slice(0, limit);
  if (backward) pageRows.reverse();
  const cursors = new Map<Item, string>();
  const items = pageRows.map((row) => {
    const item = toItem(row);
    cursors.set(item, source.cursor.encode(source.keyOf(row), pinned));
    return item;
  });
  return {
    items,
    hasNextPage: backward ? isBehind : () => ahead,
    hasPreviousPage: backward ? () => ahead : isBehind,
    cursorOf: (item) => cursors.get(item)!,
  };
}

/** Lists ordered by (created at, id), which most are: their cursor, order and filter for MikroORM. */
export const createdAtCursor = cursorCodec([cursorKeys.instant, cursorKeys.uuid]);
export const createdAtKey = (row: { createdAt: Date; id: string }): [Date, string] => [row.createdAt, row.id];

/** The MikroORM order of a (created at, `idField`) keyset read: ascending, or descending backward. */
export function keysetOrder(backward: boolean, idField = 'id') {
  const direction = backward ? 'desc' : 'asc';
  return { createdAt: direction, [idField]: direction } as const;
}

/** The MikroORM `where` for rows beyond `from` on (created at, `idField`): after it, or before it backward. */
export function keysetWhere(from: [Date, string] | null, backward: boolean, idField = 'id') {
  if (!from) return {};
  const [createdAt, id] = from;
  const beyond = backward ? '$lt' : '$gt';
  // The redundant bound on created_at alone is what PostgreSQL can seek the (…, created_at, id)
  // index with; without it the index is scanned from the list's start (or end) to the cursor.
  return {
    createdAt: { [backward ? '$lte' : '$gte']: createdAt },
    $or: [{ createdAt: { [beyond]: createdAt } }, { createdAt, [idField]: { [beyond]: id } }],
  };
}
