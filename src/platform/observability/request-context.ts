import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../logger.ts';
import type { OperationOutcome, OperationType } from './metrics.ts';

export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * An incoming `x-request-id` (from a proxy or a client tracing its calls) is kept when it is a
 * short token of safe characters; anything else could forge log structure or bloat every line, so
 * we make our own.
 */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:/+=-]{1,128}$/;

export function requestIdFrom(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && SANE_REQUEST_ID.test(value) ? value : randomUUID();
}

/** What one HTTP request (or one graphql-ws connection) is known by in the logs. */
export interface RequestRecord {
  requestId: string;
  /** The service logger with `requestId` bound: `ctx.log` in resolvers and services. */
  log: Logger;
  /** `http` for requests through the HTTP handler (including SSE), `ws` for a graphql-ws connection. */
  transport: 'http' | 'ws';
  /** The GraphQL operation this HTTP request carried, once known; the request log line shows it. */
  operation?: {
    name: string;
    type: OperationType;
    outcome: OperationOutcome;
  };
}

// Keyed by the Node request: yoga hands it to the context factory and plugins as `req`, and
// graphql-ws passes the upgrade request of a socket the same way.
const records = new WeakMap<IncomingMessage, RequestRecord>();
const current = new AsyncLocalStorage<RequestRecord>();

/**
 * The record of `req`, made on first sight. The HTTP handler makes it for every request; a request
 * it never saw is a WebSocket upgrade, so one graphql-ws connection shares one request id.
 */
export function requestRecordFor(req: IncomingMessage, logger: Logger, transport: 'http' | 'ws' = 'ws'): RequestRecord {
  let record = records.get(req);
  if (!record) {
    const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    record = { requestId, transport, log: logger.child({ requestId, ...(transport === 'ws' ? { transport } : {}) }) };
    records.set(req, record);
  }
  return record;
}

/** Runs `work` so that anything logging through `currentRequestLogger` inside it carries the request id. */
export function runInRequest<T>(record: RequestRecord, work: () => T): T {
  return current.run(record, work);
}

/** The logger of the HTTP request being handled, for code that is not given a context (yoga's own logging). */
export function currentRequestLogger(): Logger | undefined {
  return current.getStore()?.log;
}
