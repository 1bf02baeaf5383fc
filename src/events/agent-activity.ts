/**
 * Transient signals while an agent writes a reply: they travel over the bus to session
 * subscribers but are never stored in the outbox, carry no position of their own, and may be lost
 * (a client that misses them loses nothing: the reply itself is committed as an ordinary
 * `message_created` event whose payload names the same `replyToMessageId`).
 */
export type AgentActivity =
  | {
      kind: 'agent_reply_started';
      projectId: string;
      sessionId: string;
      /** The user message being answered. */
      replyTo: string;
      agentId: string;
      /** ISO-8601. */
      at: string;
    }
  | {
      kind: 'agent_reply_delta';
      projectId: string;
      sessionId: string;
      replyTo: string;
      agentId: string;
      /** 0, 1, 2, ... within one attempt at the reply; a retried reply starts again at 0. */
      index: number;
      /** The next piece of the reply's text. */
      text: string;
      at: string;
    };

export type AgentActivityKind = AgentActivity['kind'];

/**
 * Agent activity as a session subscription hands it to clients, beside committed events. It has
 * an `eventId` of its own (unique, so deduplication by eventId keeps it) and borrows the positions
 * of the last committed event delivered before it on the subscription (0 before any): it never
 * consumes a position, and a client that drops items at or below its last position drops it
 * harmlessly.
 */
export interface AgentActivityItem {
  type: AgentActivityKind;
  eventId: string;
  sequence: number;
  projectSequence: number;
  projectId: string;
  sessionId: string;
  /** The agent's author id (`agent:<agentId>`). */
  userId: string;
  occurredAt: string;
  activity: AgentActivity;
}
