import { randomUUID } from 'node:crypto';
import type { AgentActivity, AgentActivityItem } from '../events/agent-activity.ts';
import type { DomainEvent } from '../events/domain-event.ts';
import { DomainError } from '../platform/errors.ts';
import { StreamEnd } from './event-stream.ts';
import { wrappedIterator } from './wrapped-iterator.ts';

export interface AgentActivitySource {
  /** Subscribes to the project's agent activity; resolves once it flows. Returns the unsubscribe. */
  subscribe(listener: (activity: AgentActivity) => void): Promise<() => void>;
  accepts(activity: AgentActivity): boolean;
  /** Throws a DomainError when the subscriber may no longer receive anything (as for events). */
  authorize(): Promise<void>;
  /** Activity items waiting for a slow client; past this the oldest are dropped (they are transient). */
  bufferSize: number;
}

type Item = DomainEvent | StreamEnd;

/**
 * Adds transient agent activity to an ordered event stream without touching its order, dedup or
 * gap filling: committed events still come only from `ordered`, one at a time, exactly as before;
 * activity items are slipped in between them as they arrive and carry the positions of the last
 * committed event delivered (see AgentActivityItem). Activity a slow client has not taken is
 * dropped, oldest first, rather than ending the subscription: the committed reply follows anyway.
 */
export function withAgentActivity(ordered: AsyncIterableIterator<Item>, source: AgentActivitySource): AsyncIterableIterator<Item | AgentActivityItem> {
  const queue: AgentActivityItem[] = [];
  let last = { sequence: 0, projectSequence: 0 };
  let pending: Promise<IteratorResult<Item>> | null = null;
  let notify: (() => void) | null = null;
  let finished = false;
  let unsubscribe: (() => void) | null = null;

  const started = source
    .subscribe((activity) => {
      if (finished || !source.accepts(activity)) return;
      if (queue.length >= source.bufferSize) queue.shift();
      queue.push({
        type: activity.kind,
        eventId: randomUUID(),
        sequence: last.sequence,
        projectSequence: last.projectSequence,
        projectId: activity.projectId,
        sessionId: activity.sessionId,
        userId: `agent:${activity.agentId}`,
        occurredAt: activity.at,
        activity,
      });
      notify?.();
      notify = null;
    })
    .then((stop) => {
      if (finished) stop();
      else unsubscribe = stop;
    });

  function cleanup() {
    finished = true;
    unsubscribe?.();
    unsubscribe = null;
    queue.length = 0;
    notify?.();
    notify = null;
  }

  return wrappedIterator<Item | AgentActivityItem>(ordered, async () => {
    await started;
    for (;;) {
      if (finished) return { done: true, value: undefined };
      const activity = queue.shift();
      if (activity) {
        try {
          await source.authorize();
        } catch (error) {
          cleanup();
          await ordered.return?.();
          if (error instanceof DomainError) return { done: false, value: new StreamEnd(error) };
          throw error;
        }
        return { done: false, value: activity };
      }
      pending ??= ordered.next();
      const arrived = new Promise<'activity'>((resolve) => (notify = () => resolve('activity')));
      const winner = await Promise.race([pending.then(() => 'event' as const), arrived]);
      if (winner === 'activity') continue;
      const result = await pending;
      pending = null;
      if (result.done) {
        cleanup();
        return result;
      }
      const item = result.value;
      if (!(item instanceof StreamEnd)) last = { sequence: item.sequence, projectSequence: item.projectSequence };
      return { done: false, value: item };
    }
  }, cleanup);
}
