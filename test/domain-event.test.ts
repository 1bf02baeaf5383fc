import { describe, expect, it } from 'vitest';
import { agentSwitched, eventFromRow, InvalidEventError, messageCreated, type EventRow, type NewDomainEvent } from '../src/events/domain-event.ts';

const PROJECT = '01900000-0000-7000-8000-00000000000a';
const SESSION = '01900000-0000-7000-8000-00000000000b';
const SPACE = '01900000-0000-7000-8000-00000000000c';

/** The row the outbox would store for `event`. */
function rowOf(event: NewDomainEvent, changes: Partial<EventRow> = {}): EventRow {
  return {
    id: '01900000-0000-7000-8000-0000000000e1',
    event_type: event.type,
    aggregate_type: event.aggregate.type,
    aggregate_id: event.aggregate.id,
    sequence: 3,
    project_sequence: 7,
    project_id: event.projectId,
    session_id: event.sessionId,
    user_id: event.userId,
    payload: JSON.parse(JSON.stringify(event.payload)),
    created_at: '2026-11-23T10:00:00.123456Z',
    ...changes,
  };
}

const message = messageCreated(PROJECT, {
  messageId: '01900000-0000-7000-8000-0000000000d1',
  sessionId: SESSION,
  authorUserId: 'alice',
  role: 'user',
  body: 'hello',
  createdAt: '2026-11-23T10:00:00.000Z',
});
const switched = agentSwitched(PROJECT, 'alice', {
  workerSpaceId: SPACE,
  fromAgentId: null,
  fromAgentName: null,
  toAgentId: '01900000-0000-7000-8000-0000000000a1',
  toAgentName: 'Planner',
});

describe('the event contract', () => {
  it('numbers each kind on its own aggregate', () => {
    expect(message).toMatchObject({ aggregate: { type: 'chat_session', id: SESSION }, sessionId: SESSION, userId: 'alice' });
    expect(switched).toMatchObject({ aggregate: { type: 'worker_space', id: SPACE }, sessionId: null, userId: 'alice' });
  });

  it('reads back what it wrote', () => {
    expect(eventFromRow(rowOf(message))).toEqual({
      eventId: '01900000-0000-7000-8000-0000000000e1',
      type: 'message_created',
      aggregateType: 'chat_session',
      aggregateId: SESSION,
      sequence: 3,
      projectSequence: 7,
      projectId: PROJECT,
      sessionId: SESSION,
      userId: 'alice',
      occurredAt: '2026-11-23T10:00:00.123Z',
      payload: message.payload,
    });
    expect(eventFromRow(rowOf(switched)).payload).toEqual(switched.payload);
  });

  it.each([
    ['an unknown type', rowOf(message, { event_type: 'message_deleted' }), /unknown event type "message_deleted"/],
    ['the wrong aggregate', rowOf(message, { aggregate_type: 'worker_space' }), /belongs to a chat_session/],
    ['a payload that is not an object', rowOf(message, { payload: ['hello'] }), /payload is not an object/],
    ['a missing field', rowOf(message, { payload: { ...message.payload, body: undefined } }), /has no valid body/],
    ['a field of the wrong type', rowOf(switched, { payload: { ...switched.payload, toAgentId: 42 } }), /has no valid toAgentId/],
    ['an unknown role', rowOf(message, { payload: { ...message.payload, role: 'admin' } }), /has no valid role/],
    ['a timestamp that is not one', rowOf(message, { payload: { ...message.payload, createdAt: 'yesterday' } }), /has no valid createdAt/],
  ])('refuses a row with %s as an InvalidEventError naming the event', (_case, row, reason) => {
    expect(() => eventFromRow(row)).toThrow(InvalidEventError);
    expect(() => eventFromRow(row)).toThrow(reason);
    expect(() => eventFromRow(row)).toThrow(/event 01900000-0000-7000-8000-0000000000e1/);
  });
});
