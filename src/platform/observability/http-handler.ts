import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Logger } from '../logger.ts';
import { pathOf, QUIET_PATHS, type OpsEndpoints } from './ops-endpoints.ts';
import { REQUEST_ID_HEADER, requestRecordFor, runInRequest, type RequestRecord } from './request-context.ts';

export interface HttpHandlerDeps {
  logger: Logger;
  ops: OpsEndpoints;
  /** Everything that is not an operational endpoint: yoga. */
  next: RequestListener;
}

/**
 * The HTTP server's request listener: gives every request a request id (echoed in `x-request-id`),
 * answers the operational endpoints, hands the rest to GraphQL inside the request's logging scope,
 * and writes one log line per request when it ends, with the GraphQL operation it carried.
 *
 * The line never holds the query string (GET operations carry variables there), headers or
 * bodies.
 */
export function createHttpHandler(deps: HttpHandlerDeps): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const record = requestRecordFor(req, deps.logger, 'http');
    res.setHeader(REQUEST_ID_HEADER, record.requestId);
    res.once('close', () => logRequest(record, req, res, performance.now() - started));
    runInRequest(record, () => {
      if (!deps.ops(req, res)) deps.next(req, res);
    });
  };
}

function logRequest(record: RequestRecord, req: IncomingMessage, res: ServerResponse, durationMs: number) {
  const path = pathOf(req.url);
  const operation = record.operation;
  const fields = {
    method: req.method,
    path,
    status: res.statusCode,
    durationMs: Math.round(durationMs * 10) / 10,
    // The client went away before the response was complete (an SSE subscription ending this way is normal).
    ...(res.writableFinished ? {} : { aborted: true }),
    ...(operation ? { operationName: operation.name, operationType: operation.type, outcome: operation.outcome } : {}),
  };
  // A 503 from /health/ready is an answer, not a failure (readiness changes are logged once, by the
  // health checks); only an endpoint that broke (500) is worth more than debug.
  if (QUIET_PATHS.has(path) && res.statusCode !== 500) record.log.debug(fields, 'request completed');
  else if (res.statusCode >= 500 || operation?.outcome === 'server_error') record.log.warn(fields, 'request failed');
  else record.log.info(fields, 'request completed');
}
