import { describe, expect, it } from 'vitest';
import type { DomainEvent } from '../src/events/domain-event.ts';
import { orderedEventStream, StreamEnd, type OrderedStreamSource } from '../src/subscriptions/event-stream.ts';

/** A source with a committed log in memory and a live feed the test drives. */
function fakeSource(committed: number) {
  const log: DomainEvent[] = [];
  const listeners = new Set<(event: DomainEvent) => void>();
  const make = (n: number) => ({ eventId: `e${n}`, sequence: n, projectSequence: n }) as DomainEvent;
  for (let n = 1; n <= committed; n++) log.push(make(n));
  const source: OrderedStreamSource = {
    async subscribeLive(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    accepts: () => true,
    positionOf: (event) => event.sequence,
    async loadAfter(position, limit) {
      return log.filter((e) => e.sequence > position).slice(0, limit);
    },
    async currentPosition() {
      return log.length;
    },
    async authorize() {},
  };
  return {
    source,
    listeners,
    /** Commits event n and, unless `lost`, publishes it live. */
    commit(n: number, { live = true } = {}) {
      const event = make(n);
      log.push(event);
      if (live) for (const l of listeners) l(event);
    },
    publish(n: number) {
      for (const l of listeners) l(make(n));
    },
  };
}

async function take(stream: AsyncIterator<DomainEvent | StreamEnd>, count: number) {
  const out: (DomainEvent | StreamEnd)[] = [];
  for (let i = 0; i < count; i++) {
    const next = await stream.next();
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

/** A stream over a fake source holding `history` events, once it has subscribed (its first read is pending). */
async function subscribed(history: number, options: Parameters<typeof orderedEventStream>[1]) {
  const f = fakeSource(history);
  const stream = orderedEventStream(f.source, options);
  const first = stream.next();
  await new Promise((r) => setTimeout(r, 0));
  return { f, stream, first };
}

const seqs = (items: (DomainEvent | StreamEnd)[]) => items.map((i) => (i instanceof StreamEnd ? i.error.code : i.sequence));

describe('orderedEventStream', () => {
  it('replays after a position, then joins live with no gap and no duplicate', async () => {
    const { f, stream, first } = await subscribed(5, { startAfter: 2, bufferSize: 100, pageSize: 2 });
    f.commit(6); // published while the replay is still reading history
    expect(seqs([(await first).value!, ...(await take(stream, 3))])).toEqual([3, 4, 5, 6]);
    f.commit(7);
    expect(seqs(await take(stream, 1))).toEqual([7]);
    await stream.return!();
  });

  it('drops redeliveries and fills a gap the bus left (a lost or late message) from the log', async () => {
    const { f, stream, first } = await subscribed(0, { startAfter: null, bufferSize: 100 });
    f.commit(1);
    f.commit(2, { live: false }); // committed, never published (yet)
    f.commit(3);
    f.publish(1); // a duplicate
    expect(seqs([(await first).value!, ...(await take(stream, 2))])).toEqual([1, 2, 3]);
    f.publish(2); // the late publish of 2: already delivered
    f.commit(4);
    expect(seqs(await take(stream, 1))).toEqual([4]);
    await stream.return!();
  });

  it('ends with SLOW_CONSUMER, naming the last delivered event, when the client falls behind', async () => {
    const { f, stream, first } = await subscribed(0, { startAfter: null, bufferSize: 3 });
    f.commit(1);
    expect(seqs([(await first).value!])).toEqual([1]);
    for (let n = 2; n <= 10; n++) f.commit(n); // the client reads nothing meanwhile
    const rest = await take(stream, 10);
    const end = rest.at(-1);
    expect(end).toBeInstanceOf(StreamEnd);
    expect((end as StreamEnd).error).toMatchObject({ code: 'SLOW_CONSUMER', details: { resumeAfter: 'e1' } });
    expect(await stream.next()).toEqual({ done: true, value: undefined });
    expect(f.listeners.size).toBe(0);
  });

  it('ends with UNAVAILABLE, naming the last delivered event, when a database read fails (a query past its deadline)', async () => {
    const { f, stream, first } = await subscribed(0, { startAfter: null, bufferSize: 100 });
    f.commit(1);
    expect(seqs([(await first).value!])).toEqual([1]);
    f.source.loadAfter = async () => {
      throw new Error('Query read timeout');
    };
    f.commit(3); // 2 is missing: the stream must read it, and the read fails
    const end = (await stream.next()).value;
    expect(end).toBeInstanceOf(StreamEnd);
    expect((end as StreamEnd).error).toMatchObject({ code: 'UNAVAILABLE', details: { resumeAfter: 'e1' } });
    expect(await stream.next()).toEqual({ done: true, value: undefined });
    expect(f.listeners.size).toBe(0);
  });

  it('releases its bus listener when the client goes away', async () => {
    const { f, stream, first: pending } = await subscribed(0, { startAfter: null, bufferSize: 3 });
    expect(f.listeners.size).toBe(1);
    await stream.return!();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(f.listeners.size).toBe(0);
  });
});
