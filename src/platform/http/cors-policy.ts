import type { CORSOptions } from 'graphql-yoga';
import type { CorsConfig } from '../config.ts';
import { REQUEST_ID_HEADER } from '../observability/request-context.ts';

/** How long a browser may reuse a preflight answer before asking again. */
const PREFLIGHT_MAX_AGE_S = 600;
const METHODS = ['GET', 'POST'];
/** Response headers a cross-origin page may read besides the safelisted ones: the id to quote in a bug report. */
const EXPOSED_HEADERS = [REQUEST_ID_HEADER];

/**
 * yoga's `cors` option for `CORS_ORIGINS`. An allowed Origin is answered with exactly that origin;
 * any other gets no CORS header at all, so the browser withholds the response. yoga's own default
 * (reflect every Origin, with credentials) and its list handling (answering `null` to a foreign
 * origin, which sandboxed frames send as their Origin) are both avoided. Credentials are never
 * allowed: tokens travel in the Authorization header, so nothing needs cookies. Same-origin pages,
 * such as GraphiQL served by this server, need no CORS header and are unaffected.
 */
export function corsPolicy(config: CorsConfig): (request: Request) => CORSOptions {
  const allowed = config.origins === '*' ? null : new Set(config.origins);
  return (request) => {
    const origin = request.headers.get('origin');
    if (!origin || (allowed && !allowed.has(origin))) return false;
    // With `*` (asked for explicitly) the origin is echoed with Vary: Origin and no credentials.
    return { origin: allowed ? origin : '*', credentials: false, methods: METHODS, exposedHeaders: EXPOSED_HEADERS, maxAge: PREFLIGHT_MAX_AGE_S };
  };
}
