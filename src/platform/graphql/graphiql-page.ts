import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { brotliCompress, constants as zlibConstants, gzip } from 'node:zlib';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import type { GraphiQLOptions, Plugin } from 'graphql-yoga';

const brotli = promisify(brotliCompress);
const gzipAsync = promisify(gzip);

type Encoding = 'br' | 'gzip' | 'identity';

/**
 * The Content-Encoding to answer with for an `Accept-Encoding` header: brotli, else gzip, else
 * none. A coding listed with `q=0` is refused, and `*` stands for every coding not listed.
 */
export function negotiateEncoding(acceptEncoding: string | null): Encoding {
  const weights = new Map<string, number>();
  for (const part of (acceptEncoding ?? '').split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    if (!name) continue;
    const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    weights.set(name, q === undefined ? 1 : Number(q));
  }
  const weight = (coding: string) => weights.get(coding) ?? weights.get('*') ?? 0;
  if (weight('br') > 0) return 'br';
  if (weight('gzip') > 0) return 'gzip';
  return 'identity';
}

/** Entity tags of one page: one per encoding (they are different bytes), sharing the content hash. */
function matchesETag(ifNoneMatch: string | null, hash: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(',').some((tag) => {
    const value = tag.trim().replace(/^W\//, '');
    return value === '*' || value.startsWith(`"${hash}-`);
  });
}

export interface GraphiQLPageOptions {
  /** Path GraphiQL is served on: the GraphQL endpoint, as yoga does. */
  endpoint: string;
  /** What the page opens with (title, tabs, headers, subscription protocol, ...). */
  graphiql: GraphiQLOptions;
}

/**
 * Serves GraphiQL (a GET on the endpoint that accepts HTML) in place of yoga's own GraphiQL plugin,
 * which renders the page on every request. The page inlines the whole GraphiQL bundle, about
 * 9 MB, so that it works without internet access; sent as is it took 5-6 s to load. Here it is
 * rendered once, compressed once per encoding (brotli about 1.9 MB, gzip about 2.4 MB) on first
 * use, and sent with an ETag so a reload is a 304. `Cache-Control: no-cache` makes browsers
 * revalidate every time: the page changes when the server's options do (a new demo token after a
 * restart), and `private` keeps a page that may carry a demo token out of shared caches.
 */
export function useGraphiQLPage(options: GraphiQLPageOptions): Plugin {
  const html = Buffer.from(renderGraphiQL(options.graphiql));
  const hash = createHash('sha256').update(html).digest('hex').slice(0, 32);
  // Each encoding is made on first use and copied once into a plain Uint8Array, the body type
  // fetch's Response takes.
  const encoded = new Map<Encoding, Promise<Uint8Array<ArrayBuffer>>>();
  const bodyFor = (encoding: Encoding): Promise<Uint8Array<ArrayBuffer>> => {
    let body = encoded.get(encoding);
    if (!body) {
      // Quality 6 compresses the page in about 0.3 s to within 12% of brotli's best (which
      // takes 20 s); both run on the thread pool, not the event loop.
      const compressed =
        encoding === 'br'
          ? brotli(html, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 6, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: html.length } })
          : encoding === 'gzip'
            ? gzipAsync(html, { level: 6 })
            : Promise.resolve(html);
      body = compressed.then((buffer) => new Uint8Array(buffer));
      encoded.set(encoding, body);
      // Not cached when it failed: the next request tries again.
      body.catch(() => encoded.delete(encoding));
    }
    return body;
  };

  return {
    async onRequest({ request, url, endResponse, fetchAPI }) {
      if (request.method !== 'GET' || !request.headers.get('accept')?.includes('text/html')) return;
      if (url.pathname !== options.endpoint && url.pathname !== `${options.endpoint}/`) return;
      const encoding = negotiateEncoding(request.headers.get('accept-encoding'));
      const headers: Record<string, string> = {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'private, no-cache',
        etag: `"${hash}-${encoding}"`,
        vary: 'Accept-Encoding',
      };
      if (matchesETag(request.headers.get('if-none-match'), hash)) {
        endResponse(new fetchAPI.Response(null, { status: 304, headers }));
        return;
      }
      const body = await bodyFor(encoding);
      if (encoding !== 'identity') headers['content-encoding'] = encoding;
      headers['content-length'] = String(body.length);
      endResponse(new fetchAPI.Response(body, { status: 200, headers }));
    },
  };
}
