import { request } from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { negotiateEncoding } from '../src/platform/graphql/graphiql-page.ts';
import { startTestApp, useTestApp } from './support/app.ts';

/** A raw GET (fetch would decode the body), so the bytes on the wire can be measured. */
function get(url: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

const HTML = { accept: 'text/html,application/xhtml+xml' };

/** The options object the page hands to GraphiQL (the last JSON argument of renderYogaGraphiQL). */
function graphiqlOptionsIn(html: string): Record<string, any> {
  const call = html.slice(html.lastIndexOf('YogaGraphiQL.renderYogaGraphiQL('));
  const json = /document\.querySelector\('#root'\),\s*(\{[\s\S]*\}),\s*\);/.exec(call)?.[1];
  expect(json, 'GraphiQL options in the page').toBeDefined();
  return JSON.parse(json!);
}

describe('GraphiQL page delivery', () => {
  const t = useTestApp();

  it('is sent brotli- or gzip-compressed when the browser accepts it, at under a third of its size', async () => {
    const plain = await get(t.app.graphqlUrl, HTML);
    expect(plain.status).toBe(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers['content-type']).toMatch(/^text\/html/);
    expect(plain.body.length).toBeGreaterThan(1_000_000);

    const br = await get(t.app.graphqlUrl, { ...HTML, 'accept-encoding': 'gzip, deflate, br, zstd' });
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers.vary).toMatch(/accept-encoding/i);
    expect(Number(br.headers['content-length'])).toBe(br.body.length);
    expect(br.body.length).toBeLessThan(plain.body.length / 3);
    expect(brotliDecompressSync(br.body).equals(plain.body)).toBe(true);

    const gzip = await get(t.app.graphqlUrl, { ...HTML, 'accept-encoding': 'gzip' });
    expect(gzip.headers['content-encoding']).toBe('gzip');
    expect(gzip.body.length).toBeLessThan(plain.body.length / 3);
    expect(gunzipSync(gzip.body).equals(plain.body)).toBe(true);
  });

  it('carries an ETag, and a reload with If-None-Match is a 304 without a body', async () => {
    const first = await get(t.app.graphqlUrl, { ...HTML, 'accept-encoding': 'br' });
    const etag = first.headers.etag as string;
    expect(etag).toMatch(/^"[\w-]+"$/);
    expect(first.headers['cache-control']).toBe('private, no-cache');

    const again = await get(t.app.graphqlUrl, { ...HTML, 'accept-encoding': 'br', 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    expect(again.headers.etag).toBe(etag);

    const stale = await get(t.app.graphqlUrl, { ...HTML, 'accept-encoding': 'br', 'if-none-match': '"something-else"' });
    expect(stale.status).toBe(200);
  });

  it('leaves GraphQL requests alone: a GET query answers JSON, uncompressed by this', async () => {
    const response = await fetch(`${t.app.graphqlUrl}?query=${encodeURIComponent('{ __typename }')}`, { headers: { accept: 'application/json', 'accept-encoding': 'br', 'x-graphql-yoga-csrf': '1' } });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ data: { __typename: 'Query' } });
  });

  it('opens without a token or example tabs outside the demo', async () => {
    const options = graphiqlOptionsIn((await get(t.app.graphqlUrl, HTML)).body.toString('utf8'));
    expect(options).toMatchObject({ subscriptionsProtocol: 'WS', shouldPersistHeaders: true });
    expect(options.headers).toBeUndefined();
    expect(options.defaultTabs).toBeUndefined();
  });
});

describe('GraphiQL on the demo (SEED_DEMO)', () => {
  const t = useTestApp({ SEED_DEMO: 'true' });

  it('opens with the demo operations and a working demo-alice header, also for new tabs', async () => {
    const options = graphiqlOptionsIn((await get(t.app.graphqlUrl, HTML)).body.toString('utf8'));
    expect(options.defaultHeaders).toBe(options.headers);
    const tabs = options.defaultTabs as { query: string; headers: string }[];
    expect(tabs[0]!.query).toMatch(/subscription SessionEvents\b/);
    expect(tabs[0]!.query).toMatch(/query Projects\b/);
    expect(tabs[0]!.query).toMatch(/mutation SendMessage\b/);
    for (const tab of tabs) expect(tab.headers).toBe(options.headers);

    // What a user would do: run the tab's operations with the tab's header and variables.
    const authorization = JSON.parse(options.headers).Authorization as string;
    const run = async (query: string, operationName: string) => {
      const response = await fetch(t.app.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization },
        body: JSON.stringify({ query, operationName }),
      });
      return (await response.json()) as { data?: any; errors?: unknown[] };
    };
    const projects = await run(tabs[0]!.query, 'Projects');
    expect(projects.errors).toBeUndefined();
    expect(projects.data.projects.nodes[0].name).toBe('Demo project');
    const [demoSession] = projects.data.projects.nodes[0].sessions.nodes as { id: string }[];
    expect(tabs[0]!.query).toContain(`sessionEvents(sessionId: "${demoSession!.id}")`);

    const sent = await run(tabs[1]!.query, 'SendMessage');
    expect(sent.errors).toBeUndefined();
    expect(sent.data.sendMessage.message.body).toBe('Hello from the second tab');
  });

  it('keeps the demo session in the example after a restart on the same database', async () => {
    const again = await startTestApp({ SEED_DEMO: 'true' }, { db: t.db });
    try {
      const sessionIn = async (url: string) =>
        /sessionEvents\(sessionId: "([\w-]+)"\)/.exec(graphiqlOptionsIn((await get(url, HTML)).body.toString('utf8')).defaultTabs[0].query)?.[1];
      const first = await sessionIn(t.app.graphqlUrl);
      expect(first).toMatch(/^[\w-]{36}$/);
      expect(await sessionIn(again.app.graphqlUrl)).toBe(first);
    } finally {
      await again.stop();
    }
  });
});

describe('Accept-Encoding negotiation', () => {
  it('prefers brotli, then gzip, and respects q=0 and *', () => {
    expect(negotiateEncoding('gzip, deflate, br')).toBe('br');
    expect(negotiateEncoding('gzip')).toBe('gzip');
    expect(negotiateEncoding('br;q=0, gzip;q=0.5')).toBe('gzip');
    expect(negotiateEncoding('*')).toBe('br');
    expect(negotiateEncoding('*;q=0, identity')).toBe('identity');
    expect(negotiateEncoding(null)).toBe('identity');
    expect(negotiateEncoding('identity')).toBe('identity');
  });
});
