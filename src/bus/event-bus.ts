import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { createPubSub } from 'graphql-yoga';
import type { AgentActivity } from '../events/agent-activity.ts';
import type { DomainEvent } from '../events/domain-event.ts';
import { openRedisConnection, type RedisDeadlines } from '../platform/redis-connection.ts';

/**
 * The pub/sub bus between the OutboxPublisher and the subscription servers. In memory inside one
 * process by default; over Redis pub/sub when several API instances share a database, so that an
 * event published by instance A reaches subscribers connected to instance B.
 *
 * Only the OutboxPublisher publishes domain events (the GraphQL context has no bus at all).
 */
export interface EventBus {
  /**
   * Publishes events in the given order. Resolves with one entry per event: null when the bus
   * accepted it, or the error when it did not. Results are prefix-closed: after the first event
   * the bus refuses, no later event of the call goes out (each is reported failed), so a caller
   * that passes one aggregate's events in sequence order never has a later one overtake an
   * earlier one. Never reports "accepted" for an event the bus could not take (a Redis bus that
   * is down fails fast instead of queueing in memory).
   */
  publish(events: readonly DomainEvent[]): Promise<(Error | null)[]>;
  /** Calls `listener` for every event of the project; resolves once the subscription is live. */
  subscribeProject(projectId: string, listener: (event: DomainEvent) => void): Promise<() => void>;
  /**
   * Calls `listener` whenever this instance's subscriptions are live again after the bus lost
   * them: events published in between did not reach this instance, and streams should look for
   * them in the database. Returns the unsubscribe. (The in-memory bus never loses them.)
   */
  onResubscribed(listener: () => void): () => void;
  /**
   * Fire and forget, on a channel of its own beside the project's events: agent activity
   * (docs/agents.md) is transient, so a bus that cannot take it drops it. Never a domain event.
   */
  publishActivity(activity: AgentActivity): void;
  /** Calls `listener` for the project's agent activity; resolves once the subscription is live. */
  subscribeActivity(projectId: string, listener: (activity: AgentActivity) => void): Promise<() => void>;
  close(): Promise<void>;
}

/** One channel per project: session subscribers filter their session out of it. */
export const projectTopic = (projectId: string) => `chat-outbox:project:${projectId}`;

/** Agent activity's channel: separate, so event listeners never see it. */
export const activityTopic = (projectId: string) => `chat-outbox:project:${projectId}:activity`;

type Topics = Record<string, [DomainEvent]>;

function subscribeVia<T>(pubSub: ReturnType<typeof createPubSub<Record<string, [T]>>>, topic: string, listener: (event: T) => void) {
  const iterator = pubSub.subscribe(topic)[Symbol.asyncIterator]();
  void (async () => {
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      listener(next.value as T);
    }
  })();
  return () => void iterator.return?.();
}

/**
 * One bus subscription per channel per instance, however many streams listen: each event is
 * handed to the channel's listeners in turn, synchronously, so a project with ten thousand
 * subscribers costs one bus listener and one loop per event (and yoga's EventTarget never sees
 * more than one listener per channel). A listener that throws is skipped, never the others.
 */
export function createChannelListeners<T>(open: (topic: string, dispatch: (item: T) => void) => Promise<() => void>, onDispatch?: (listeners: number) => void) {
  interface Channel {
    listeners: Set<(item: T) => void>;
    /** Resolves once the bus subscription is live; rejects when it could not be made. */
    live: Promise<() => void>;
  }
  const channels = new Map<string, Channel>();
  return {
    async subscribe(topic: string, listener: (item: T) => void): Promise<() => void> {
      let channel = channels.get(topic);
      if (!channel) {
        const listeners = new Set<(item: T) => void>();
        const dispatch = (item: T) => {
          onDispatch?.(listeners.size);
          for (const each of listeners) {
            try {
              each(item);
            } catch {
              // one stream's failure is its own
            }
          }
        };
        const created: Channel = { listeners, live: open(topic, dispatch) };
        channel = created;
        channels.set(topic, created);
        // A failed subscription is forgotten, so the next subscriber tries again.
        created.live.catch(() => {
          if (channels.get(topic) === created) channels.delete(topic);
        });
      }
      const joined = channel;
      joined.listeners.add(listener);
      try {
        await joined.live;
      } catch (error) {
        joined.listeners.delete(listener);
        throw error;
      }
      let released = false;
      return () => {
        if (released) return;
        released = true;
        joined.listeners.delete(listener);
        if (joined.listeners.size === 0 && channels.get(topic) === joined) {
          channels.delete(topic);
          void joined.live.then((close) => close(), () => {});
        }
      };
    },
    /** Listeners on a channel now (for metrics and tests). */
    listenerCount(topic: string): number {
      return channels.get(topic)?.listeners.size ?? 0;
    },
    /** The channels with at least one listener. */
    topics(): string[] {
      return [...channels.keys()];
    },
  };
}

export interface MemoryBusOptions {
  /** Called for every event with the number of listeners on its channel (the frames it becomes). */
  onFanOut?: (listeners: number) => void;
}

export function createMemoryBus(options: MemoryBusOptions = {}): EventBus {
  const pubSub = createPubSub<Topics>();
  const activity = createPubSub<Record<string, [AgentActivity]>>();
  const openVia = <T>(source: ReturnType<typeof createPubSub<Record<string, [T]>>>) => async (topic: string, dispatch: (item: T) => void) => {
    const unsubscribe = subscribeVia(source, topic, dispatch);
    // The repeater registers its listener when first pulled; let that happen before resolving.
    await new Promise((resolve) => setImmediate(resolve));
    return unsubscribe;
  };
  const projectChannels = createChannelListeners<DomainEvent>(openVia(pubSub), options.onFanOut);
  const activityChannels = createChannelListeners<AgentActivity>(openVia(activity));
  return {
    async publish(events) {
      for (const event of events) pubSub.publish(projectTopic(event.projectId), event);
      return events.map(() => null);
    },
    subscribeProject(projectId, listener) {
      return projectChannels.subscribe(projectTopic(projectId), listener);
    },
    onResubscribed() {
      return () => {};
    },
    publishActivity(item) {
      activity.publish(activityTopic(item.projectId), item);
    },
    subscribeActivity(projectId, listener) {
      return activityChannels.subscribe(activityTopic(projectId), listener);
    },
    async close() {},
  };
}

export interface RedisBusOptions {
  /** Names the connections `<name>:publish` and `<name>:subscribe` in Redis's CLIENT LIST. */
  connectionName?: string;
  /** Wait before each reconnect attempt (default: ioredis's, 50 ms more per attempt up to 2 s). */
  reconnectDelayMs?: number;
  /** Command, connect and ping deadlines (REDIS_* settings); none when unset. */
  deadlines?: Omit<RedisDeadlines, 'onReplaced'>;
  /** Called when a connection is destroyed for missing a deadline: `publish` or `subscribe`. */
  onConnectionReplaced?: (connection: 'publish' | 'subscribe') => void;
  /** Called for every event with the number of listeners on its channel on this instance. */
  onFanOut?: (listeners: number) => void;
}

export function createRedisBus(url: string, options: RedisBusOptions = {}): EventBus {
  const name = options.connectionName ?? 'chat-outbox';
  const retryStrategy = options.reconnectDelayMs === undefined ? {} : { retryStrategy: () => options.reconnectDelayMs };
  // Publishing fails fast while Redis is unreachable, so the publisher retries from the outbox
  // instead of ioredis holding events in an in-memory queue we would already have marked published.
  // It needs no ping: it sends a command whenever there is something to publish, and a publish that
  // times out replaces it.
  const { pingIntervalMs, ...commandDeadlines } = options.deadlines ?? {};
  const publishClient = openRedisConnection(
    url,
    `${name}:publish`,
    { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false, ...retryStrategy },
    { ...commandDeadlines, onReplaced: () => options.onConnectionReplaced?.('publish') },
  );
  // The subscribing connection reconnects and resubscribes by itself. Messages published while it
  // is down are lost to it: once its channels are live again, onResubscribed listeners (the
  // subscription streams) read what they missed from the database (event-stream.ts).
  // It only receives, so it is pinged: a dead socket is replaced, and the resubscription below
  // makes the streams fill the gap from the database.
  const subscribeClient = openRedisConnection(
    url,
    `${name}:subscribe`,
    { maxRetriesPerRequest: null, ...retryStrategy },
    { ...commandDeadlines, pingIntervalMs, onReplaced: () => options.onConnectionReplaced?.('subscribe') },
  );
  const pubSub = createPubSub<Topics>({ eventTarget: createRedisEventTarget({ publishClient, subscribeClient }) });
  const activity = createPubSub<Record<string, [AgentActivity]>>({ eventTarget: createRedisEventTarget({ publishClient, subscribeClient }) });

  /** Opens this instance's one subscription to a channel (createChannelListeners shares it). */
  const openVia = <T>(source: ReturnType<typeof createPubSub<Record<string, [T]>>>) => async (topic: string, dispatch: (item: T) => void) => {
    const unsubscribe = subscribeVia(source, topic, dispatch);
    try {
      await new Promise((resolve) => setImmediate(resolve));
      // SUBSCRIBE is idempotent; awaiting it is how we know the channel is live.
      await subscribeClient.subscribe(topic);
    } catch (error) {
      unsubscribe();
      throw error;
    }
    return unsubscribe;
  };
  const projectChannels = createChannelListeners<DomainEvent>(openVia(pubSub), options.onFanOut);
  const activityChannels = createChannelListeners<AgentActivity>(openVia(activity));
  const resubscribed = new Set<() => void>();
  let connectedBefore = false;
  subscribeClient.on('ready', () => {
    if (!connectedBefore) {
      connectedBefore = true;
      return;
    }
    // ioredis re-sends SUBSCRIBE for its channels on its own; subscribing again (idempotent) and
    // awaiting the reply is how we know they are live before streams read the database, so that
    // nothing published from here on can fall between that read and the live channel.
    const topics = projectChannels.topics();
    void (topics.length ? subscribeClient.subscribe(...topics) : Promise.resolve()).then(
      () => {
        for (const listener of resubscribed) listener();
      },
      () => {}, // lost again meanwhile: the next 'ready' tries again
    );
  });

  return {
    async publish(events) {
      if (publishClient.status !== 'ready') {
        const down = new Error(`Redis bus unavailable (${publishClient.status})`);
        return events.map(() => down);
      }
      // MULTI/EXEC: Redis runs the publishes all or none, which keeps the results prefix-closed.
      const transaction = publishClient.multi();
      for (const event of events) transaction.publish(projectTopic(event.projectId), JSON.stringify(event));
      try {
        const results = await transaction.exec();
        const failure = !results ? new Error('Redis aborted the publish') : results.find(([error]) => error)?.[0];
        return events.map(() => failure ?? null);
      } catch (error) {
        const failure = error instanceof Error ? error : new Error(String(error));
        return events.map(() => failure);
      }
    },
    subscribeProject(projectId, listener) {
      return projectChannels.subscribe(projectTopic(projectId), listener);
    },
    onResubscribed(listener) {
      resubscribed.add(listener);
      return () => void resubscribed.delete(listener);
    },
    publishActivity(item) {
      // Transient: while Redis is down it is dropped, never queued (the reply commits anyway).
      if (publishClient.status !== 'ready') return;
      publishClient.publish(activityTopic(item.projectId), JSON.stringify(item)).catch(() => {});
    },
    subscribeActivity(projectId, listener) {
      return activityChannels.subscribe(activityTopic(projectId), listener);
    },
    async close() {
      publishClient.disconnect();
      subscribeClient.disconnect();
    },
  };
}
