import type { AgentKind, AgentSettings } from '../domain/agents/agent-settings.ts';

/** One message of the conversation an agent is given, in the chat-completions sense of roles. */
export interface ConversationMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface AgentReplyRequest {
  agent: { id: string; name: string; kind: AgentKind; settings: AgentSettings };
  /** The agent's instructions first (if any), then the session's recent messages, oldest first; the last is the one to answer. */
  messages: ConversationMessage[];
  /** Aborted when the attempt times out or the runtime stops: stop streaming. */
  signal: AbortSignal;
}

/**
 * What answers for an agent of one kind. `reply` yields the reply's text piece by piece as it is
 * generated; the runtime streams each piece to subscribers and commits the whole once it ends.
 */
export interface AgentAdapter {
  reply(request: AgentReplyRequest): AsyncIterable<string>;
}

/**
 * An adapter's failure. `transient` ones (a refused connection, a 429 or 5xx, a stream cut short)
 * are retried with backoff; the others (a 4xx such as an unknown model or a bad key) are not,
 * since another attempt would fail the same way.
 */
export class AgentAdapterError extends Error {
  override name = 'AgentAdapterError';
  readonly transient: boolean;
  constructor(message: string, transient: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.transient = transient;
  }
}
