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

export function parsePageRequest(request: PageRequest): PageQuery {
  const first = request.first ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(first) || first < 0 || first > MAX_PAGE_SIZE) {
    throw badInput('first', `first must be between 0 and ${MAX_PAGE_SIZE}`);
  }
  return { limit: first, after: request.after ? decodeCursor(request.after) : null };
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
  return {
    items: rows.slice(0, query.limit),
    hasNextPage: rows.length > query.limit,
    cursorOf: (item) => encodeCursor(keyOf(item)),
  };
}
