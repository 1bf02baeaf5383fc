import { Migration } from '@mikro-orm/migrations';

/**
 * `event_outbox.trace_context`: the W3C trace context (`{"traceparent": …, "tracestate": …}`) of
 * the request that wrote the event, so that the publisher and each delivery to a subscriber join
 * that request's trace (docs/operations.md#tracing). Null when tracing was off, or for events
 * written before this migration. Nullable with no default: adding it rewrites nothing.
 */
export class Migration20261201110000_trace_context extends Migration {
  override up(): void {
    this.addSql(`alter table event_outbox add column trace_context jsonb null`);
  }

  override down(): void {
    this.addSql(`alter table event_outbox drop column trace_context`);
  }
}
