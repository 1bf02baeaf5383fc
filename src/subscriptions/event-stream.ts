import { systemClock, type Clock } from '../platform/clock.ts';
import { DomainError } from '../platform/errors.ts';
import type { DomainEvent } from '../events/domain-event.ts';

/** The last item of a stream that ends with an error: the subscription resolver throws it. */
export class StreamEnd {
  readonly error: DomainError;
  constructor(error: DomainError) {
    this.error = error;
  }
}

export interface OrderedStreamSource {
  /**
   * Subscribes to live events; resolves once they flow. `missedSome` is called when live events
   * may have been lost (the bus reconnected): the stream then reads the table for what comes after
   * its position. Returns the unsubscribe.
   */
  subscribeLive(listener: (event: DomainEvent) => void, missedSome: () => void): Promise<() => void>;
  /** Whether a live event belongs to this stream. */
  accepts(event: DomainEvent): boolean;
  /** The stream's gapless, commit-ordered position of an event (session or project sequence). */
  positionOf(event: DomainEvent): number;
  /** Committed events after `position`, in order, at most `limit`. */
  loadAfter(position: number, limit: number): Promise<DomainEvent[]>;
  /** The newest committed position, where a live-only stream starts. */
  currentPosition(): Promise<number>;
  /** Throws a DomainError when the subscriber may no longer receive `event`. */
  authorize(event: DomainEvent): Promise<void>;
}

export interface OrderedStreamOptions {
  /** Resume after this position (0: from the beginning); null: live events only. */
  startAfter: number | null;
  /** Live events that may wait for a slow client before the stream ends with SLOW_CONSUMER. */
  bufferSize: number;
  /** Ends the stream with UNAUTHENTICATED at this time, even if no event comes (token expiry). */
  endAt?: Date | null;
  /** Page size for reading history and filling gaps. */
  pageSize?: number;
  /** Called for every event handed to the client. */
  onDelivered?(event: DomainEvent): void;
  onEnd?(reason: 'client' | 'error' | 'slow-consumer'): void;
  /** Times `endAt`; default: the real clock. */
  clock?: Clock;
}

/**
 * An event stream in commit order with no gaps and no duplicates, whatever the bus does.
 *
 * Live events are buffered from the moment of subscribing; history comes from the database. Every
 * event has a gapless position, so the stream always knows what comes next: a duplicate (from a
 * redelivery or the replay/live join) is at or below the last position and dropped; a gap (an
 * event still waiting for a retry, or lost by Redis pub/sub while a connection was down) is filled
 * from the database, where every committed event is. When the bus reports that it lost events,
 * the stream reads the table at once rather than waiting for the next live event to show the gap.
 * Nothing is read from the database per event in the steady state.
 *
 * The per-client buffer is bounded (docs/design-notes.md#iterator-leaks): when a client falls `bufferSize` events behind,
 * the stream ends with SLOW_CONSUMER, naming the last event delivered to resume after.
 */
export function orderedEventStream(source: OrderedStreamSource, options: OrderedStreamOptions): AsyncIterableIterator<DomainEvent | StreamEnd> {
  const pageSize = options.pageSize ?? 500;
  const live: DomainEvent[] = [];
  let replay: DomainEvent[] = [];
  let last = 0;
  let lastEventId: string | null = null;
  let catchingUp = options.startAfter !== null;
  let ending: StreamEnd | null = null;
  let finished = false;
  let notify: (() => void) | null = null;
  let unsubscribe: (() => void) | null = null;
  const clock = options.clock ?? systemClock;
  /** Cancels the token-expiry timer. */
  let endTimer: (() => void) | null = null;

  const wakeConsumer = () => {
    notify?.();
    notify = null;
  };

  function end(error: DomainError) {
    ending ??= new StreamEnd(error);
    wakeConsumer();
  }

  function onLive(event: DomainEvent) {
    if (finished || ending || !source.accepts(event)) return;
    if (live.length >= options.bufferSize) {
      end(
        new DomainError('SLOW_CONSUMER', 'The subscription fell too far behind and was ended; subscribe again with `after` set to the last eventId you received', {
          resumeAfter: lastEventId,
        }),
      );
      return;
    }
    live.push(event);
    wakeConsumer();
  }

  /** Live events may have been lost: look in the table for anything after the last position. */
  function recheck() {
    if (finished || ending) return;
    catchingUp = true;
    wakeConsumer();
  }

  const started = (async () => {
    unsubscribe = await source.subscribeLive(onLive, recheck);
    last = options.startAfter ?? (await source.currentPosition());
    if (options.endAt) {
      const ms = options.endAt.getTime() - clock.now();
      const expire = () => end(new DomainError('UNAUTHENTICATED', 'The token has expired; subscribe again with a fresh token'));
      if (ms <= 0) expire();
      else endTimer = clock.setTimeout(expire, ms);
    }
  })();

  function cleanup() {
    if (finished) return;
    finished = true;
    endTimer?.();
    unsubscribe?.();
    live.length = 0;
    replay = [];
    wakeConsumer();
  }

  /** The next event at position last + 1, reading the database when the live buffer cannot say. */
  async function nextInOrder(): Promise<DomainEvent | null> {
    for (;;) {
      if (finished || ending) return null;
      while (replay.length && source.positionOf(replay[0]!) <= last) replay.shift();
      if (replay.length) return replay.shift()!;

      live.sort((a, b) => source.positionOf(a) - source.positionOf(b));
      while (live.length && source.positionOf(live[0]!) <= last) live.shift();
      const head = live[0];
      if (head && source.positionOf(head) === last + 1) return live.shift()!;

      if (catchingUp || head) {
        // Resuming, or the live buffer skips ahead: the missing events are committed, so read them.
        const page = await source.loadAfter(last, pageSize);
        if (page.length < pageSize) catchingUp = false;
        if (page.length > 0) {
          replay = page;
          continue;
        }
        if (head) return live.shift()!; // cannot happen with gapless positions; never stall on it
        continue;
      }
      await new Promise<void>((resolve) => (notify = resolve));
    }
  }

  const iterator: AsyncIterableIterator<DomainEvent | StreamEnd> = {
    async next() {
      await started;
      if (finished) return { done: true, value: undefined };
      let event: DomainEvent | null;
      try {
        event = await nextInOrder();
        if (event) await source.authorize(event);
      } catch (error) {
        // A read that failed or got no answer within DB_QUERY_TIMEOUT_MS (its connection was dead
        // and is replaced): the stream ends with a code and where to resume, so the client
        // subscribes again instead of waiting on a stream that would never speak again.
        end(
          error instanceof DomainError
            ? error
            : new DomainError('UNAVAILABLE', 'The subscription could not read its events and was ended; subscribe again with `after` set to the last eventId you received', {
                resumeAfter: lastEventId,
              }),
        );
        event = null;
      }
      if (!event) {
        const final = ending;
        if (final && !finished) {
          cleanup();
          options.onEnd?.(final.error.code === 'SLOW_CONSUMER' ? 'slow-consumer' : 'error');
          return { done: false, value: final };
        }
        cleanup();
        return { done: true, value: undefined };
      }
      last = source.positionOf(event);
      lastEventId = event.eventId;
      options.onDelivered?.(event);
      return { done: false, value: event };
    },
    async return() {
      if (!finished) options.onEnd?.('client');
      await started.catch(() => {});
      cleanup();
      return { done: true, value: undefined };
    },
    async throw(error?: unknown) {
      cleanup();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
