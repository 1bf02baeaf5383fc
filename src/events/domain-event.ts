import type { EventOutboxRow } from '../platform/db/database.ts';
import { parseTraceCarrier, type TraceCarrier } from '../platform/observability/tracing.ts';

/** Who wrote a message; the contract carries it, the chat domain stores it. */
export const MESSAGE_ROLES = ['user', 'agent', 'system'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

/**
 * The event contract: every domain event the service records, carries over the bus and reads back.
 * The outbox (writer, publisher), the subscriptions and analytics all import this module and none
 * of them imports another for it. An event is one of the union `DomainEvent`, its payload typed
 * per kind; a payload read back from the database is validated here, once, by `eventFromRow`.
 */
export const EVENT_TYPES = ['message_created', 'agent_switched'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const AGGREGATE_TYPES = ['chat_session', 'worker_space'] as const;
export type AggregateType = (typeof AGGREGATE_TYPES)[number];

/** `message_created`: the whole message, so delivery never reads the database. */
export interface MessageCreatedPayload {
  messageId: string;
  sessionId: string;
  authorUserId: string;
  role: MessageRole;
  /** Present on messages an agent wrote. */
  agentId?: string;
  /** Present on an agent's reply (or the runtime's failure notice): the user message it answers. */
  replyToMessageId?: string;
  body: string;
  /** ISO-8601. */
  createdAt: string;
}

/** `agent_switched`: the agents by id and by the name they had at the time. */
export interface AgentSwitchedPayload {
  workerSpaceId: string;
  fromAgentId: string | null;
  fromAgentName: string | null;
  toAgentId: string;
  toAgentName: string;
}

export interface EventPayloads {
  message_created: MessageCreatedPayload;
  agent_switched: AgentSwitchedPayload;
}

/** The aggregate whose `event_sequence` numbers each kind of event. */
export const AGGREGATE_OF = {
  message_created: 'chat_session',
  agent_switched: 'worker_space',
} as const satisfies Record<EventType, AggregateType>;

/** An event about to be recorded, before the outbox numbers it. Build it with the constructors below. */
export type NewDomainEvent = {
  [K in EventType]: {
    type: K;
    aggregate: { type: (typeof AGGREGATE_OF)[K]; id: string };
    projectId: string;
    /** The user whose action caused the event (an agent's author id for agent messages). */
    userId: string;
    sessionId: string | null;
    payload: EventPayloads[K];
  };
}[EventType];

/**
 * An event about to be recorded whose project is read from its aggregate's row by the statement
 * that records it (a message sent to a session whose project the request does not know).
 */
export type UnplacedEvent = { [K in EventType]: Omit<Extract<NewDomainEvent, { type: K }>, 'projectId'> }[EventType];

/** `message_created` in the session's project, whichever that is. */
export function messageCreatedInSession(payload: MessageCreatedPayload): Extract<UnplacedEvent, { type: 'message_created' }> {
  return {
    type: 'message_created',
    aggregate: { type: 'chat_session', id: payload.sessionId },
    userId: payload.authorUserId,
    sessionId: payload.sessionId,
    payload,
  };
}

export function messageCreated(projectId: string, payload: MessageCreatedPayload): Extract<NewDomainEvent, { type: 'message_created' }> {
  return { ...messageCreatedInSession(payload), projectId };
}

export function agentSwitched(projectId: string, userId: string, payload: AgentSwitchedPayload): Extract<NewDomainEvent, { type: 'agent_switched' }> {
  return {
    type: 'agent_switched',
    aggregate: { type: 'worker_space', id: payload.workerSpaceId },
    projectId,
    userId,
    sessionId: null,
    payload,
  };
}

/** What every committed event carries besides its payload. */
interface EventEnvelope {
  /** The outbox id: the same on every (re)delivery. */
  eventId: string;
  aggregateId: string;
  /** Position in its aggregate (chat session or worker space): 1, 2, 3, ... with no gaps. */
  sequence: number;
  /** Position in its project: 1, 2, 3, ... with no gaps, in commit order. */
  projectSequence: number;
  projectId: string;
  sessionId: string | null;
  userId: string;
  /** ISO-8601. */
  occurredAt: string;
  /**
   * The W3C trace context of the request that wrote the event, when it was traced: the publisher
   * and each delivery continue that trace. Travels over the bus with the event; never shown to clients.
   */
  traceContext?: TraceCarrier;
}

/**
 * A committed domain event as subscribers and analytics see it, and as it travels over the bus:
 * everything needed to render it is in here.
 */
export type DomainEvent = {
  [K in EventType]: EventEnvelope & { type: K; aggregateType: (typeof AGGREGATE_OF)[K]; payload: EventPayloads[K] };
}[EventType];

export type MessageCreatedEvent = Extract<DomainEvent, { type: 'message_created' }>;
export type AgentSwitchedEvent = Extract<DomainEvent, { type: 'agent_switched' }>;

/** The columns of an event_outbox row that make an event, in the order `eventColumns` selects them. */
export const EVENT_ROW_COLUMNS = [
  'id',
  'event_type',
  'aggregate_type',
  'aggregate_id',
  'sequence',
  'project_sequence',
  'project_id',
  'session_id',
  'user_id',
  'payload',
  'created_at',
  'trace_context',
] as const satisfies readonly (keyof EventOutboxRow)[];

/** Those columns as raw SQL returns them (a timestamp may come back as a string). */
export type EventRow = Omit<Pick<EventOutboxRow, (typeof EVENT_ROW_COLUMNS)[number]>, 'created_at' | 'trace_context'> & {
  created_at: Date | string;
  /** Optional: an event is whole without it. */
  trace_context?: unknown;
};

/** A stored event that does not satisfy the contract (written by hand, or by an older version). */
export class InvalidEventError extends Error {
  override name = 'InvalidEventError';
  readonly eventId: string;
  constructor(eventId: string, reason: string) {
    super(`event ${eventId} is not a valid domain event: ${reason}`);
    this.eventId = eventId;
  }
}

type Check = (value: unknown) => boolean;
const isString: Check = (value) => typeof value === 'string';
const isNullableString: Check = (value) => value === null || typeof value === 'string';
const optional = (check: Check): Check => (value) => value === undefined || check(value);
const isRole: Check = (value) => (MESSAGE_ROLES as readonly unknown[]).includes(value);
const isTimestamp: Check = (value) => typeof value === 'string' && !Number.isNaN(Date.parse(value));

const PAYLOAD_FIELDS: { [K in EventType]: Record<keyof EventPayloads[K], Check> } = {
  message_created: {
    messageId: isString,
    sessionId: isString,
    authorUserId: isString,
    role: isRole,
    agentId: optional(isString),
    replyToMessageId: optional(isString),
    body: isString,
    createdAt: isTimestamp,
  },
  agent_switched: {
    workerSpaceId: isString,
    fromAgentId: isNullableString,
    fromAgentName: isNullableString,
    toAgentId: isString,
    toAgentName: isString,
  },
};

export const isEventType = (value: unknown): value is EventType => (EVENT_TYPES as readonly unknown[]).includes(value);

/** A stored row's event type; InvalidEventError for one the contract does not know. */
export function eventTypeOf(row: { id: string; event_type: string }): EventType {
  if (!isEventType(row.event_type)) throw new InvalidEventError(row.id, `unknown event type ${JSON.stringify(row.event_type)}`);
  return row.event_type;
}

/** The payload of a `type` event, checked field by field; throws InvalidEventError otherwise. */
export function parsePayload<K extends EventType>(eventId: string, type: K, payload: unknown): EventPayloads[K] {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw new InvalidEventError(eventId, `the ${type} payload is not an object`);
  }
  const record = payload as Record<string, unknown>;
  for (const [field, check] of Object.entries<Check>(PAYLOAD_FIELDS[type])) {
    if (!check(record[field])) throw new InvalidEventError(eventId, `the ${type} payload has no valid ${field}`);
  }
  return payload as EventPayloads[K];
}

/** The one row -> event mapping. Throws InvalidEventError for a row that breaks the contract. */
export function eventFromRow(row: EventRow): DomainEvent {
  const type = eventTypeOf(row);
  if (row.aggregate_type !== AGGREGATE_OF[type]) {
    throw new InvalidEventError(row.id, `a ${type} event belongs to a ${AGGREGATE_OF[type]}, not a ${row.aggregate_type}`);
  }
  const occurredAt = new Date(row.created_at);
  if (Number.isNaN(occurredAt.getTime())) throw new InvalidEventError(row.id, 'created_at is not a timestamp');
  const envelope: EventEnvelope = {
    eventId: row.id,
    aggregateId: row.aggregate_id,
    sequence: row.sequence,
    projectSequence: row.project_sequence,
    projectId: row.project_id,
    sessionId: row.session_id,
    userId: row.user_id,
    occurredAt: occurredAt.toISOString(),
  };
  // Best effort: a trace context that does not parse is dropped, never a reason to fail the event.
  const traceContext = parseTraceCarrier(row.trace_context);
  if (traceContext) envelope.traceContext = traceContext;
  return type === 'message_created'
    ? { ...envelope, type, aggregateType: 'chat_session', payload: parsePayload(row.id, type, row.payload) }
    : { ...envelope, type, aggregateType: 'worker_space', payload: parsePayload(row.id, type, row.payload) };
}
