import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the fake server does with one request. */
export interface FakeCompletion {
  /** Text pieces streamed as chat.completion.chunk events. */
  chunks?: readonly string[];
  /** Pause before each chunk, in ms. */
  delayMs?: number;
  /** Answer with this HTTP status and an error body instead of a stream. */
  status?: number;
  /** Destroy the socket after this many chunks (a connection lost mid-stream). */
  disconnectAfter?: number;
}

export interface RecordedRequest {
  authorization: string | undefined;
  body: { model: string; messages: { role: string; content: string }[]; stream: boolean; temperature?: number; max_tokens?: number };
}

/**
 * A local OpenAI-compatible server over real HTTP: `POST /v1/chat/completions` with
 * `stream: true` answers `text/event-stream` chunks in the chat-completions format, scripted per
 * request by `next` (the last script repeats).
 */
export async function startFakeOpenAiServer(scripts: FakeCompletion[] = [{ chunks: ['Hello', ' world'] }]) {
  const requests: RecordedRequest[] = [];
  /** When the last chunk of each completed stream went out (performance.now()), by the last message's content. */
  const finished = new Map<string, number>();
  const queue = [...scripts];
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const raw = await new Promise<string>((resolve) => {
      let data = '';
      req.on('data', (chunk) => (data += chunk));
      req.on('end', () => resolve(data));
    });
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404).end();
      return;
    }
    requests.push({ authorization: req.headers.authorization, body: JSON.parse(raw) });
    const script = (queue.length > 1 ? queue.shift() : queue[0]) ?? {};
    if (script.status) {
      res.writeHead(script.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `injected ${script.status}`, type: 'server_error' } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const base = { id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: requests.at(-1)!.body.model };
    const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
    send({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
    const chunks = script.chunks ?? [];
    for (let i = 0; i < chunks.length; i++) {
      if (script.disconnectAfter === i) {
        res.socket?.destroy();
        return;
      }
      if (script.delayMs) await new Promise((resolve) => setTimeout(resolve, script.delayMs));
      if (res.destroyed) return;
      send({ ...base, choices: [{ index: 0, delta: { content: chunks[i] }, finish_reason: null }] });
    }
    if (script.disconnectAfter !== undefined && script.disconnectAfter >= chunks.length) {
      res.socket?.destroy();
      return;
    }
    send({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
    finished.set(requests.at(-1)!.body.messages.at(-1)?.content ?? '', performance.now());
    res.end('data: [DONE]\n\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    finished,
    /** Replaces the scripts for the next requests. */
    script(next: FakeCompletion[]) {
      queue.splice(0, queue.length, ...next);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
