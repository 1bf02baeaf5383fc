import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { newId } from '../platform/db/ids.ts';
import type { AggregateType, EventType } from '../events/domain-event.ts';
import type { TraceCarrier } from '../platform/observability/tracing.ts';
import { MAX_USER_ID_LENGTH } from '../platform/validation.ts';

export const OUTBOX_STATUSES = ['pending', 'published', 'failed'] as const;
export type OutboxStatus = (typeof OUTBOX_STATUSES)[number];

/**
 * A domain event, written in the same transaction as the change it describes and later published
 * by the OutboxPublisher. Its `id` is the `eventId` clients deduplicate by. The row is never
 * updated: what the publisher has delivered is kept per aggregate in `outbox_delivery`, and the
 * per-event status (published | failed | pending) is read from the `outbox_event_status` view.
 *
 * The table has no foreign keys on purpose: an event is a record of something that happened, and it
 * must stay readable (analytics, replay) after the session or project it names is gone. Indexes and
 * checks live in the migration, which is the source of truth for the table.
 */
export const OutboxEventSchema = defineEntity({
  name: 'OutboxEvent',
  tableName: 'event_outbox',
  properties: {
    id: p.uuid().primary().onCreate(() => newId()),
    eventType: p.string().length(64).$type<EventType>(),
    aggregateType: p.string().length(32).$type<AggregateType>(),
    aggregateId: p.uuid(),
    /** 1, 2, 3, ... per aggregate, gapless, assigned under the aggregate's row lock. */
    sequence: p.integer(),
    /** 1, 2, 3, ... per project, gapless, assigned under the project's row lock: commit order within a project. */
    projectSequence: p.integer(),
    projectId: p.uuid(),
    userId: p.string().length(MAX_USER_ID_LENGTH),
    sessionId: p.uuid().nullable(),
    // Typed and validated by the event contract (events/domain-event.ts), not here.
    payload: p.json<unknown>(),
    createdAt: p.datetime().onCreate(() => new Date()),
    /** The W3C trace context of the request that wrote the event (null: tracing was off). */
    traceContext: p.json<TraceCarrier>().nullable(),
  },
});

export type IOutboxEvent = InferEntity<typeof OutboxEventSchema>;
