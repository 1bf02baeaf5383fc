import { createHash } from 'node:crypto';
import { badInput } from '../errors.ts';

/**
 * Forward keyset pagination over (createdAt, id): stable while rows are being inserted, and no
 * OFFSET scans. Cursors are opaque to clients (base64url JSON) and validated when read back.
 */
export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

export interface PageRequest {
  first?: number | null | undefined;
  after?: string | null | undefined;
}

export interface Keyset {
  createdAt: Date;
  id: string;
}

export interface PageQuery {
  limit: number;
  after: Keyset | null;
}

export interface Page<T> {
  items: T[];
  hasNextPage: boolean;
  cursorOf: (item: T) => string;
}

export function encodeCursor(key: Keyset): string {
  return Buffer.from(JSON.stringify([key.createdAt.toISOString(), key.id])).toString('base64url');
}

function decodeCursor(cursor: string): Keyset {
  try {
    const decoded: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(decoded) && decoded.length === 2 && typeof decoded[0] === 'string' && typeof decoded[1] === 'string') {
      const createdAt = new Date(decoded[0]);
      if (!Number.isNaN(createdAt.getTime())) return { createdAt, id: decoded[1] };
    }
  } catch {
    // fall through to the user-facing error
  }
  throw badInput('after', 'after is not a valid cursor');
}

/** `first` as a page size: DEFAULT_PAGE_SIZE when absent, BAD_USER_INPUT outside 0..MAX_PAGE_SIZE. */
export function parsePageSize(first: number | null | undefined): number {
  const limit = first ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 0 || limit > MAX_PAGE_SIZE) {
    throw badInput('first', `first must be between 0 and ${MAX_PAGE_SIZE}`);
  }
  return limit;
}

export function parsePageRequest(request: PageRequest): PageQuery {
  return { limit: parsePageSize(request.first), after: request.after ? decodeCursor(request.after) : null };
}

/** The filter that continues after a keyset, for MikroORM `where` clauses. */
export function afterKeyset(after: Keyset | null) {
  if (!after) return {};
  return {
    $or: [{ createdAt: { $gt: after.createdAt } }, { createdAt: after.createdAt, id: { $gt: after.id } }],
  };
}

export const KEYSET_ORDER = { createdAt: 'asc', id: 'asc' } as const;

/** Turns `limit + 1` fetched rows into a page. */
export function toPage<T>(rows: T[], query: PageQuery, keyOf: (item: T) => Keyset): Page<T> {
  return pageOf(rows, query.limit, (item) => encodeCursor(keyOf(item)));
}

/** Turns `limit + 1` fetched rows into a page whose cursors `cursorOf` writes. */
export function pageOf<T>(rows: T[], limit: number, cursorOf: (item: T) => string): Page<T> {
  return { items: rows.slice(0, limit), hasNextPage: rows.length > limit, cursorOf };
}

/**
 * Cursors bound to the query that made them. The plain cursors above are enough where the query
 * is fixed by its parent (a project's members); a query with arguments (a project id, filters, an
 * order) must not continue from another query's cursor, which would either leak rows it was not
 * asked for or silently skip some. A scoped cursor carries a digest of its query's identity and
 * is refused (BAD_USER_INPUT) anywhere else. It is not signed: a client that forges one can only
 * move around inside a query it is already allowed to run.
 */
export interface ScopedCursor {
  /** The sort-key values of the last row returned, in sort order. */
  position: (string | number)[];
  /** State the query pins for a whole walk (e.g. a snapshot horizon), or null. */
  pinned: string | null;
}

export interface ScopedPageQuery {
  limit: number;
  after: ScopedCursor | null;
}

/** A short digest naming one query: its kind and every argument that selects or orders rows. */
export function queryScope(kind: string, identity: unknown): string {
  return createHash('sha256').update(JSON.stringify([kind, identity])).digest('base64url').slice(0, 22);
}

export function encodeScopedCursor(scope: string, cursor: ScopedCursor): string {
  return Buffer.from(JSON.stringify({ s: scope, p: cursor.position, x: cursor.pinned })).toString('base64url');
}

function decodeScopedCursor(scope: string, cursor: string): ScopedCursor {
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    decoded = null;
  }
  const { s, p, x } = (decoded ?? {}) as { s?: unknown; p?: unknown; x?: unknown };
  const wellFormed =
    typeof s === 'string' &&
    Array.isArray(p) &&
    p.length > 0 &&
    p.every((value) => typeof value === 'string' || (typeof value === 'number' && Number.isSafeInteger(value))) &&
    (x === null || typeof x === 'string');
  if (!wellFormed) throw badInput('after', 'after is not a valid cursor');
  if (s !== scope) throw badInput('after', 'after is a cursor of a different query (other project, filter or order)');
  return { position: p as (string | number)[], pinned: x as string | null };
}

export function parseScopedPageRequest(request: PageRequest, scope: string): ScopedPageQuery {
  return { limit: parsePageSize(request.first), after: request.after ? decodeScopedCursor(scope, request.after) : null };
}
