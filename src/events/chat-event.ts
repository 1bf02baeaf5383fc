import type { IMessage } from '../chat/message.entity.ts';
import type { AggregateType, EventType, IOutboxEvent } from '../outbox/outbox-event.entity.ts';

/**
 * A committed domain event as subscribers and analytics see it: everything needed to render it is
 * in here (the outbox payload), so delivering it never has to read the database. This plain shape
 * is also what travels over the pub/sub bus.
 */
export interface ChatEvent {
  eventId: string;
  type: EventType;
  aggregateType: AggregateType;
  aggregateId: string;
  /** Position in its aggregate (chat session or worker space): 1, 2, 3, ... with no gaps. */
  sequence: number;
  /** Position in its project: 1, 2, 3, ... with no gaps, in commit order. */
  projectSequence: number;
  projectId: string;
  sessionId: string | null;
  userId: string;
  occurredAt: string;
  payload: Record<string, unknown>;
}

/** An event_outbox row's event columns as raw SQL returns them (timestamps may be strings). */
export interface ChatEventRow {
  id: string;
  event_type: EventType;
  aggregate_type: AggregateType;
  aggregate_id: string;
  sequence: number;
  project_sequence: number;
  project_id: string;
  session_id: string | null;
  user_id: string;
  payload: Record<string, unknown>;
  created_at: Date | string;
}

export function chatEventFromRow(row: ChatEventRow): ChatEvent {
  return {
    eventId: row.id,
    type: row.event_type,
    aggregateType: row.aggregate_type,
    aggregateId: row.aggregate_id,
    sequence: row.sequence,
    projectSequence: row.project_sequence,
    projectId: row.project_id,
    sessionId: row.session_id,
    userId: row.user_id,
    occurredAt: new Date(row.created_at).toISOString(),
    payload: row.payload,
  };
}

export function toChatEvent(row: IOutboxEvent): ChatEvent {
  return {
    eventId: row.id,
    type: row.eventType,
    aggregateType: row.aggregateType,
    aggregateId: row.aggregateId,
    sequence: row.sequence,
    projectSequence: row.projectSequence,
    projectId: row.projectId,
    sessionId: row.sessionId ?? null,
    userId: row.userId,
    occurredAt: row.createdAt.toISOString(),
    payload: row.payload,
  };
}

/** `message_created` carries the message it announces; rebuild it in the shape the Message type reads. */
export function messageOf(event: ChatEvent): IMessage {
  const p = event.payload as { messageId: string; role: IMessage['role']; body: string; authorUserId: string; createdAt: string };
  return {
    id: p.messageId,
    role: p.role,
    body: p.body,
    authorUserId: p.authorUserId,
    createdAt: new Date(p.createdAt),
    session: { id: event.sessionId },
    project: { id: event.projectId },
  } as unknown as IMessage;
}

export interface AgentSwitch {
  workerSpaceId: string;
  fromAgentId: string | null;
  fromAgentName: string | null;
  toAgentId: string;
  toAgentName: string;
}

export const agentSwitchOf = (event: ChatEvent) => event.payload as unknown as AgentSwitch;
