import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HealthChecks } from './health-checks.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from './metrics.ts';

export const METRICS_PATH = '/metrics';
export const LIVENESS_PATH = '/health/live';
export const READINESS_PATH = '/health/ready';

/** Paths whose requests are logged at debug level: probes and scrapes arrive every few seconds. */
export const QUIET_PATHS: ReadonlySet<string> = new Set([METRICS_PATH, LIVENESS_PATH, READINESS_PATH]);

export interface OpsEndpointsDeps {
  /** Null when `METRICS_ENABLED=false`: `/metrics` is then not served at all (404). */
  metrics: Metrics | null;
  health: HealthChecks;
  logger: Logger;
}

/** The path of a request URL, without the query string (which never goes into logs either). */
export function pathOf(url: string | undefined): string {
  const path = (url ?? '/').split('?', 1)[0]!;
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

function send(res: ServerResponse, status: number, contentType: string, body: string, head: boolean) {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

const sendJson = (res: ServerResponse, status: number, value: unknown, head: boolean) =>
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value), head);

/**
 * Serves `/metrics` (Prometheus text format), `/health/live` and `/health/ready` on the API's own
 * port, in front of GraphQL and without authentication: they expose no user data. Returns false
 * for every other request, which then goes to GraphQL.
 */
export function createOpsEndpoints(deps: OpsEndpointsDeps) {
  async function serve(path: string, res: ServerResponse, head: boolean): Promise<void> {
    if (path === LIVENESS_PATH) return sendJson(res, 200, deps.health.live(), head);
    if (path === READINESS_PATH) {
      const report = await deps.health.ready();
      return sendJson(res, report.status === 'ready' ? 200 : 503, report, head);
    }
    const { contentType, body } = await deps.metrics!.scrape();
    return send(res, 200, contentType, body, head);
  }

  return function handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = pathOf(req.url);
    const known = path === LIVENESS_PATH || path === READINESS_PATH || (path === METRICS_PATH && deps.metrics !== null);
    if (!known) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'Method Not Allowed\n', false);
      return true;
    }
    serve(path, res, req.method === 'HEAD').catch((error: unknown) => {
      deps.logger.error({ err: error, path }, 'operational endpoint failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'Internal Server Error\n', false);
      else res.destroy();
    });
    return true;
  };
}

export type OpsEndpoints = ReturnType<typeof createOpsEndpoints>;
