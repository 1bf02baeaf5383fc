import WebSocket from 'ws';

export interface ServerMessage {
  type: string;
  id?: string;
  payload?: any;
}

/**
 * A graphql-transport-ws socket driven message by message, for what a protocol client hides: when
 * the socket closes and with which code, several subscriptions on one connection, messages of any
 * size.
 */
export class RawSocket {
  readonly messages: ServerMessage[] = [];
  /** Resolves with the close code and reason once the socket is closed, by either side. */
  readonly closed: Promise<{ code: number; reason: string }>;
  closeCode: number | null = null;
  readonly #socket: WebSocket;
  readonly #opened: Promise<void>;

  constructor(graphqlUrl: string) {
    this.#socket = new WebSocket(graphqlUrl.replace(/^http/, 'ws'), 'graphql-transport-ws');
    this.#socket.on('message', (data) => this.messages.push(JSON.parse(String(data))));
    this.#opened = new Promise((resolve, reject) => {
      this.#socket.once('open', () => resolve());
      this.#socket.once('error', reject);
    });
    this.closed = new Promise((resolve) =>
      this.#socket.once('close', (code, reason) => {
        this.closeCode = code;
        resolve({ code, reason: String(reason) });
      }),
    );
    // A socket the server closes mid-send reports an error as well as its close; the close is what tests read.
    this.#socket.on('error', () => {});
  }

  /** Opens a socket; with `init`, sends connection_init with these params and waits for the ack. */
  static async open(graphqlUrl: string, init: Record<string, unknown> | null = {}): Promise<RawSocket> {
    const socket = new RawSocket(graphqlUrl);
    await socket.#opened;
    if (init) {
      socket.send({ type: 'connection_init', payload: init });
      await socket.waitFor((m) => m.type === 'connection_ack');
    }
    return socket;
  }

  /** Opens a socket and sends connection_init, resolving with whether it was acknowledged or how it was closed. */
  static async connect(graphqlUrl: string, init: Record<string, unknown>): Promise<{ socket: RawSocket; acknowledged: boolean; closeCode: number | null }> {
    const socket = new RawSocket(graphqlUrl);
    await socket.#opened;
    socket.send({ type: 'connection_init', payload: init });
    const acknowledged = await Promise.race([
      socket.waitFor((m) => m.type === 'connection_ack').then(() => true),
      socket.closed.then(() => false),
    ]);
    return { socket, acknowledged, closeCode: socket.closeCode };
  }

  send(message: unknown): void {
    this.#socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  subscribe(id: string, query: string, variables: Record<string, unknown> = {}, extensions?: Record<string, unknown>): void {
    this.send({ id, type: 'subscribe', payload: { query, variables, ...(extensions ? { extensions } : {}) } });
  }

  complete(id: string): void {
    this.send({ id, type: 'complete' });
  }

  /** The messages for one operation id. */
  of(id: string): ServerMessage[] {
    return this.messages.filter((m) => m.id === id);
  }

  /** Resolves with the first message matching `predicate`, or rejects after `timeoutMs` (or when the socket closes first). */
  async waitFor(predicate: (m: ServerMessage) => boolean, timeoutMs = 10_000): Promise<ServerMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(predicate);
      if (found) return found;
      if (this.closeCode !== null) throw new Error(`socket closed (${this.closeCode}); received ${JSON.stringify(this.messages)}`);
      if (Date.now() > deadline) throw new Error(`timed out; received ${JSON.stringify(this.messages)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async close(): Promise<void> {
    if (this.closeCode === null) this.#socket.close(1000);
    await this.closed;
  }
}
