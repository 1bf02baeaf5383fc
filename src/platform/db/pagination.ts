import { createHash } from 'node:crypto';
import { badInput } from '../errors.ts';
import { isUuid } from './ids.ts';

/**
 * Forward keyset pagination for every connection: stable while rows are being inserted, and no
 * OFFSET scans. Cursors are opaque to clients (base64url JSON) and every value in one is checked
 * by its key's validator when it is read back, so a forged cursor is BAD_USER_INPUT and never
 * reaches PostgreSQL as a value it cannot compare (a non-uuid id, an integer out of range, a
 * timestamp PostgreSQL cannot hold).
 */
export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

export interface PageRequest {
  first?: number | null | undefined;
  after?: string | null | undefined;
}

export interface Page<T> {
  items: T[];
  hasNextPage: boolean;
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
  /** The position and pinned state of a cursor; BAD_USER_INPUT (field `after`) for anything this codec did not write. */
  decode(cursor: string): { position: Key; pinned: string | null };
}

const invalidCursor = () => badInput('after', 'after is not a valid cursor');

function readJson(cursor: string): unknown {
  // base64url decoding skips characters outside its alphabet, so check the alphabet first.
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalidCursor();
  try {
    return JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor();
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
  function parsePosition(values: unknown): KeyValues<K> {
    if (!Array.isArray(values) || values.length !== keys.length) throw invalidCursor();
    return keys.map((key, i) => {
      const parsed = key.parse(values[i]);
      if (parsed === null) throw invalidCursor();
      return parsed;
    }) as KeyValues<K>;
  }
  return {
    encode(position, pinned = null) {
      const json = scope === undefined ? encodePosition(position) : { s: scope, p: encodePosition(position), x: pinned };
      return Buffer.from(JSON.stringify(json)).toString('base64url');
    },
    decode(cursor) {
      const json = readJson(cursor);
      if (scope === undefined) return { position: parsePosition(json), pinned: null };
      const { s, p, x } = (json !== null && typeof json === 'object' && !Array.isArray(json) ? json : {}) as { s?: unknown; p?: unknown; x?: unknown };
      if (typeof s !== 'string') throw invalidCursor();
      if (s !== scope) throw badInput('after', 'after is a cursor of a different query (other project, filter or order)');
      const position = parsePosition(p);
      if (!pinnedKey) {
        if (x !== null && x !== undefined) throw invalidCursor();
        return { position, pinned: null };
      }
      const pinned = pinnedKey.parse(x);
      if (pinned === null) throw invalidCursor();
      return { position, pinned };
    },
  };
}

/** A short digest naming one query: its kind and every argument that selects or orders rows. */
export function queryScope(kind: string, identity: unknown): string {
  return createHash('sha256').update(JSON.stringify([kind, identity])).digest('base64url').slice(0, 22);
}

/** `first` as a page size: DEFAULT_PAGE_SIZE when absent, BAD_USER_INPUT outside 0..MAX_PAGE_SIZE. */
export function parsePageSize(first: number | null | undefined): number {
  const limit = first ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 0 || limit > MAX_PAGE_SIZE) {
    throw badInput('first', `first must be between 0 and ${MAX_PAGE_SIZE}`);
  }
  return limit;
}

export interface PageSource<Row, Key extends unknown[]> {
  cursor: CursorCodec<Key>;
  /**
   * Rows after `after` (from the start when null) in key order, at most `limit` (one more than the
   * page, to tell whether another follows). May return the state to pin in the page's cursors.
   */
  fetch(query: { after: Key | null; pinned: string | null; limit: number }): Promise<Row[] | { rows: Row[]; pinned: string | null }>;
  /** The position of a row, in the codec's key order. */
  keyOf(row: Row): Key;
}

/** The one way a connection reads a page: validate `first` and `after`, fetch one row more than asked, write the cursors. */
export async function findPage<Row, Key extends unknown[], Item = Row>(
  request: PageRequest,
  source: PageSource<Row, Key>,
  toItem: (row: Row) => Item = (row) => row as unknown as Item,
): Promise<Page<Item>> {
  const limit = parsePageSize(request.first);
  const after = request.after ? source.cursor.decode(request.after) : null;
  const fetched = await source.fetch({ after: after?.position ?? null, pinned: after?.pinned ?? null, limit: limit + 1 });
  const { rows, pinned } = Array.isArray(fetched) ? { rows: fetched, pinned: null } : fetched;
  const cursors = new Map<Item, string>();
  const items = rows.slice(0, limit).map((row) => {
    const item = toItem(row);
    cursors.set(item, source.cursor.encode(source.keyOf(row), pinned));
    return item;
  });
  return { items, hasNextPage: rows.length > limit, cursorOf: (item) => cursors.get(item)! };
}

/** Lists ordered by (created at, id), which most are: their cursor, order and filter for MikroORM. */
export const createdAtCursor = cursorCodec([cursorKeys.instant, cursorKeys.uuid]);
export const KEYSET_ORDER = { createdAt: 'asc', id: 'asc' } as const;
export const createdAtKey = (row: { createdAt: Date; id: string }): [Date, string] => [row.createdAt, row.id];

/** The `where` that continues after (created at, `idField`) for MikroORM. */
export function afterKeyset(after: [Date, string] | null, idField = 'id') {
  if (!after) return {};
  const [createdAt, id] = after;
  return { $or: [{ createdAt: { $gt: createdAt } }, { createdAt, [idField]: { $gt: id } }] };
}
