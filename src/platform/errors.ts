/**
 * Typed domain errors. Services throw these; src/platform/graphql/errors.ts maps them to GraphQL errors with
 * the same `extensions.code`. Anything else reaching a client is masked as INTERNAL_SERVER_ERROR.
 */
export const ERROR_CODES = [
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'BAD_USER_INPUT',
  'CONFLICT',
  /** A subscription fell too far behind its client and was ended; resume with `after`. */
  'SLOW_CONSUMER',
  /** The request is not a well-formed GraphQL request (unparseable variables, no body length). */
  'BAD_REQUEST',
  /** The operation exceeds a limit on depth, aliases, tokens, directives, cost or mutation fields. */
  'QUERY_TOO_COMPLEX',
  /** The request body is larger than `HTTP_MAX_BODY_BYTES`. */
  'PAYLOAD_TOO_LARGE',
  /** The operation ran past `OPERATION_TIMEOUT_MS` and was cancelled. */
  'TIMEOUT',
  /** A per-user rate limit was reached; `extensions.retryAfterMs` says when to try again. */
  'RATE_LIMITED',
  /** A subscription limit (per connection or per user) was reached; end one to start another. */
  'TOO_MANY_SUBSCRIPTIONS',
  /** A persisted-document hash the server does not hold (APQ: send the document with it once). */
  'PERSISTED_QUERY_NOT_FOUND',
  /** Trusted documents mode: a document that is not on the allow-list. */
  'PERSISTED_QUERY_ONLY',
  /** A subscription's database read failed or got no answer in time; resume with `after` (`extensions.resumeAfter`). */
  'UNAVAILABLE',
  /** The cursor points before the event log's retention window: events after it were removed. Reload, then resume from a fresh position. */
  'CURSOR_EXPIRED',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export class DomainError extends Error {
  override name = 'DomainError';
  readonly code: ErrorCode;
  /** Safe for clients: e.g. the name of the offending argument. */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

export const unauthenticated = (message = 'A valid bearer token is required') =>
  new DomainError('UNAUTHENTICATED', message);

/** Used both for ids that do not exist and for ones the viewer may not see: existence is not leaked. */
export const notFound = (what: string, id: string) =>
  new DomainError('NOT_FOUND', `${what} ${id} was not found`, { id });

export const forbidden = (message: string) => new DomainError('FORBIDDEN', message);

export const badInput = (field: string, message: string) =>
  new DomainError('BAD_USER_INPUT', message, { field });

export const cursorExpired = (field: string) =>
  new DomainError('CURSOR_EXPIRED', `${field} is older than the event log keeps: events after it were removed. Reload the current state, then resume from a fresh position`, { field });

export const conflict = (message: string) => new DomainError('CONFLICT', message);
