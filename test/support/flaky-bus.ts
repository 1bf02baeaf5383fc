import type { ChatEvent } from '../../src/events/chat-event.ts';
import { createMemoryBus, type EventBus } from '../../src/pubsub/event-bus.ts';

/**
 * A real in-memory bus with a switch to make it refuse events, as a Redis outage would, and a log
 * of every publish call in order, for asserting what the publisher sent.
 */
export function createFlakyBus(inner: EventBus = createMemoryBus()) {
  const state = {
    /** Refuse every event while true. */
    down: false,
    /** Refuse events for which this returns true (a poison event, one session's channel failing). */
    rejects: (_event: ChatEvent) => false,
    /** Every event the bus accepted, in order. */
    accepted: [] as ChatEvent[],
    /** How many publish attempts each event id saw. */
    attempts: new Map<string, number>(),
  };
  const bus: EventBus = {
    async publish(events) {
      for (const event of events) state.attempts.set(event.eventId, (state.attempts.get(event.eventId) ?? 0) + 1);
      const refused = events.map((event) => state.down || state.rejects(event));
      const passed = events.filter((_, i) => !refused[i]);
      await inner.publish(passed);
      state.accepted.push(...passed);
      return refused.map((no) => (no ? new Error('bus unavailable (injected)') : null));
    },
    subscribeProject: (projectId, listener) => inner.subscribeProject(projectId, listener),
    close: () => inner.close(),
  };
  return Object.assign(state, { bus });
}
