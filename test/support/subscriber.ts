import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export const SESSION_EVENTS = `
  subscription($sessionId: ID!, $after: ID, $afterSequence: Int) {
    sessionEvents(sessionId: $sessionId, after: $after, afterSequence: $afterSequence) {
      eventId type sequence projectSequence sessionId userId
      ... on MessageCreatedEvent { message { id body } }
    }
  }`;

export const PROJECT_EVENTS = `
  subscription($projectId: ID!, $after: ID, $afterSequence: Int) {
    projectEvents(projectId: $projectId, after: $after, afterSequence: $afterSequence) {
      eventId type sequence projectSequence sessionId userId
      ... on MessageCreatedEvent { message { id body } }
      ... on AgentSwitchedEvent { from { id } to { id name } }
    }
  }`;

export interface ReceivedEvent {
  eventId: string;
  type: string;
  sequence: number;
  projectSequence: number;
  sessionId: string | null;
  message?: { id: string; body: string };
}

/** A real graphql-ws client that records what one subscription receives. */
export class TestSubscriber {
  readonly events: ReceivedEvent[] = [];
  readonly errors: { message: string; extensions?: Record<string, unknown> }[] = [];
  completed = false;
  readonly #client: Client;
  #dispose: (() => void) | null = null;
  #waiters: (() => void)[] = [];

  constructor(graphqlUrl: string, token: string | null) {
    this.#client = createClient({
      url: graphqlUrl.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: token ? { authorization: `Bearer ${token}` } : {},
      retryAttempts: 0,
      lazy: true,
    });
  }

  /** Starts the subscription and resolves once the server has it running (first ack + a tick). */
  async start(query: string, variables: Record<string, unknown>): Promise<this> {
    const acknowledged = new Promise<void>((resolve) => this.#client.on('connected', () => resolve()));
    this.#dispose = this.#client.subscribe(
      { query, variables },
      {
        next: (result) => {
          if (result.errors) this.errors.push(...(result.errors as any));
          const data = result.data as Record<string, ReceivedEvent> | null | undefined;
          const event = data ? Object.values(data)[0] : null;
          if (event) this.events.push(event);
          this.#notify();
        },
        error: (error) => {
          this.errors.push(Array.isArray(error) ? error[0] : { message: String((error as any)?.reason ?? error) });
          this.completed = true;
          this.#notify();
        },
        complete: () => {
          this.completed = true;
          this.#notify();
        },
      },
    );
    await acknowledged;
    // The server subscribes to the bus and reads its start position asynchronously after the
    // subscribe message; give it a moment so "live only" starts after this point.
    await new Promise((resolve) => setTimeout(resolve, 150));
    return this;
  }

  #notify() {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Resolves when `predicate` holds, or rejects after `timeoutMs` with what was received. */
  async waitFor(predicate: (s: this) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; received ${JSON.stringify({ events: this.events.map((e) => [e.type, e.sequence, e.projectSequence]), errors: this.errors })}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  waitForCount(count: number, timeoutMs?: number) {
    return this.waitFor((s) => s.events.length >= count, timeoutMs);
  }

  async stop(): Promise<void> {
    this.#dispose?.();
    await this.#client.dispose();
  }
}

export async function subscribe(graphqlUrl: string, token: string | null, query: string, variables: Record<string, unknown>) {
  return new TestSubscriber(graphqlUrl, token).start(query, variables);
}
