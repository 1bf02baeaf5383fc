import type { DomainEvent } from '../../src/events/domain-event.ts';
import { createMemoryBus, type EventBus } from '../../src/bus/event-bus.ts';

/**
 * A real in-memory bus with a switch to make it refuse events, as a Redis outage would, and a log
 * of every publish call in order, for asserting what the publisher sent.
 */
export function createFlakyBus(inner: EventBus = createMemoryBus()) {
  const state = {
    /** Refuse every event while true. */
    down: false,
    /** Refuse events for which this returns true (a poison event, one session's channel failing). */
    rejects: (_event: DomainEvent) => false,
    /** Every event the bus accepted, in order. */
    accepted: [] as DomainEvent[],
    /** How many publish attempts each event id saw. */
    attempts: new Map<string, number>(),
    /** Bus listeners currently registered: subscriptions that ended must have released theirs. */
    activeListeners: 0,
    /** Delay every publish by this long (a slow bus), to catch a batch in flight. */
    delayMs: 0,
  };
  const bus: EventBus = {
    async publish(events) {
      if (state.delayMs) await new Promise((resolve) => setTimeout(resolve, state.delayMs));
      for (const event of events) state.attempts.set(event.eventId, (state.attempts.get(event.eventId) ?? 0) + 1);
      // Prefix-closed, as the EventBus contract says: nothing after the first refusal goes out.
      const firstRefused = events.findIndex((event) => state.down || state.rejects(event));
      const refused = events.map((_, i) => firstRefused !== -1 && i >= firstRefused);
      const passed = events.filter((_, i) => !refused[i]);
      await inner.publish(passed);
      state.accepted.push(...passed);
      return refused.map((no) => (no ? new Error('bus unavailable (injected)') : null));
    },
    publishActivity: (activity) => inner.publishActivity(activity),
    subscribeActivity: (projectId, listener) => inner.subscribeActivity(projectId, listener),
    async subscribeProject(projectId, listener) {
      const unsubscribe = await inner.subscribeProject(projectId, listener);
      state.activeListeners += 1;
      let released = false;
      return () => {
        if (!released) state.activeListeners -= 1;
        released = true;
        unsubscribe();
      };
    },
    onResubscribed: (listener) => inner.onResubscribed(listener),
    close: () => inner.close(),
  };
  return Object.assign(state, { bus });
}
