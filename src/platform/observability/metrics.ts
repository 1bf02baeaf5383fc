import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type GaugeConfiguration } from 'prom-client';
import type { Logger } from '../logger.ts';
import { EVENT_TYPES, type EventType } from '../../events/domain-event.ts';
import type { OutboxBacklog } from '../../outbox/outbox-backlog.ts';
import { createOperationNameLabels, DEFAULT_MAX_OPERATION_NAMES, type OperationNameLabels } from './operation-name-label.ts';
import { singleFlight, withTimeout } from './with-timeout.ts';

/**
 * Every Prometheus instrument the service exports, on a registry of its own: never prom-client's
 * global default registry, so tests and several app instances in one process do not collide.
 *
 * Labels take bounded values only (event type, outcome, operation type and a capped set of
 * operation names), never ids. docs/operations.md lists every metric with its meaning.
 */

/** Connections that are replaced when a deadline on them fires (the label of `connections_replaced_total`). */
export type ReplacedConnection = 'publisher_db' | 'listen' | 'redis_publish' | 'redis_subscribe';

/** What the OutboxPublisher reports about itself; `publisher.status()` implements it. */
export interface PublisherStatus {
  /** Started and not stopped: claiming and publishing. */
  running: boolean;
  /** End of the last claim cycle that completed without an error (an empty poll counts). */
  lastCycleAt: Date | null;
  /** The LISTEN connection that wakes the publisher on commit is up. */
  listening: boolean;
  /** This publisher is meant to hold a LISTEN connection (false on PGlite or with LISTEN turned off). */
  listenEnabled: boolean;
  /**
   * No cycle has completed within the cycle deadline plus a poll interval (cycles hang, are
   * abandoned or fail): events are not being delivered. Absent: the publisher has no deadline.
   */
  stalled?: boolean;
  /** The LISTEN connection has been down longer than that same limit (it is being replaced). */
  listenDown?: boolean;
}

export interface PublisherStatusSource {
  status(): PublisherStatus;
}

/** What the analytics rollup worker reports; `analyticsRollup.status()` implements it. */
export interface AnalyticsRollupStatusSource {
  status(): { lastFoldAt: Date | null };
}

export const PUBLISH_OUTCOMES = ['success', 'retry', 'failed'] as const;
/** success: published; retry: the publish failed and a retry is scheduled; failed: past max retries. */
export type PublishOutcome = (typeof PUBLISH_OUTCOMES)[number];

export const OPERATION_TYPES = ['query', 'mutation', 'subscription', 'unknown'] as const;
export type OperationType = (typeof OPERATION_TYPES)[number];

export const OPERATION_OUTCOMES = ['success', 'client_error', 'server_error'] as const;
/** client_error: every error has a client-facing code (bad input, auth, not found, invalid document); server_error: anything else. */
export type OperationOutcome = (typeof OPERATION_OUTCOMES)[number];

export const SUBSCRIPTION_TRANSPORTS = ['ws', 'sse'] as const;
export type SubscriptionTransport = (typeof SUBSCRIPTION_TRANSPORTS)[number];

/** How long a scrape waits for the backlog query before leaving the outbox gauges out. */
export const BACKLOG_SCRAPE_TIMEOUT_MS = 3_000;

export interface MetricsOptions {
  /** Reads the outbox backlog for the scrape-time gauges; without it they are left out. */
  readOutboxBacklog?: () => Promise<OutboxBacklog>;
  /** The publisher; can also be attached later with `setPublisherStatusSource`. */
  publisher?: PublisherStatusSource | null;
  /** Where failed scrape-time queries are reported. */
  logger?: Logger;
  /** Distinct operation names that keep their own label (see operation-name-label.ts). */
  maxOperationNames?: number;
  backlogTimeoutMs?: number;
}

export interface OutboxMetrics {
  /** `outbox_publish_attempts_total{event_type, outcome}`: one per event per publish attempt. */
  readonly publishAttempts: Counter<'event_type' | 'outcome'>;
  /** `outbox_commit_to_publish_seconds{event_type}`: created_at → published, per published event. */
  readonly commitToPublishSeconds: Histogram<'event_type'>;
  /** `outbox_batch_size`: events per claimed batch (empty polls are not observed). */
  readonly batchSize: Histogram;
  /** `outbox_reprocessed_total`: failed events put back to pending. */
  readonly reprocessed: Counter;
  /** `outbox_metrics_scrape_errors_total`: scrapes whose backlog query failed or timed out. */
  readonly scrapeErrors: Counter;
  recordPublishAttempts(eventType: EventType, outcome: PublishOutcome, count?: number): void;
  /** Observes created_at → publishedAt (default now) for one published event. */
  recordPublished(event: { eventType: EventType; createdAt: Date }, publishedAt?: Date): void;
  recordBatchClaimed(size: number): void;
  recordReprocessed(count: number): void;
  /** `outbox_cycles_abandoned_total`: publisher cycles that ran past `OUTBOX_CYCLE_TIMEOUT_MS`. */
  readonly cyclesAbandoned: Counter;
  recordCycleAbandoned(): void;
  /** `connections_replaced_total{connection}`: connections destroyed for missing a deadline and opened again. */
  readonly connectionsReplaced: Counter<'connection'>;
  recordConnectionReplaced(connection: ReplacedConnection, count?: number): void;
}

export interface SubscriptionMetrics {
  /** `graphql_ws_connected_clients`: graphql-ws connections that sent connection_init and are open. */
  readonly wsConnectedClients: Gauge;
  /** `graphql_active_subscriptions{transport}`: subscription streams open now, over ws or sse. */
  readonly active: Gauge<'transport'>;
  /** `subscription_events_delivered_total{event_type}`: events handed to a subscriber (after authorisation). */
  readonly eventsDelivered: Counter<'event_type'>;
  /** `subscriptions_ended_slow_consumer_total`: subscriptions ended because their buffer overflowed. */
  readonly endedSlowConsumer: Counter;
  /** `subscriber_connections_cut_total{transport}`: connections cut by the write deadline (their peer stopped reading). */
  readonly connectionsCut: Counter<'transport'>;
  /** `subscription_groups`: groups of subscriptions that share one execution per event (same document, variables, scope). */
  readonly groups: Gauge;
  /** `subscription_group_subscribers`: subscribers in the group, observed each time an event is executed for a group. */
  readonly groupSubscribers: Histogram;
  /** `subscription_frames_sent_total`: results handed to subscriber connections (one per subscriber per event). */
  readonly framesSent: Counter;
  /** `subscription_event_fanout`: streams on this instance a bus event was handed to (frames per event). */
  readonly eventFanout: Histogram;
  recordGroupExecution(groupSize: number): void;
  recordDelivered(eventType: EventType, count?: number): void;
  recordEndedSlowConsumer(): void;
  recordConnectionCut(transport: SubscriptionTransport): void;
}

export interface GraphqlMetrics {
  /** `graphql_operations_total{operation_name, operation_type, outcome}`. */
  readonly operations: Counter<'operation_name' | 'operation_type' | 'outcome'>;
  /** `graphql_operation_duration_seconds{operation_name, operation_type}`: parse → result, queries and mutations. */
  readonly operationDuration: Histogram<'operation_name' | 'operation_type'>;
  readonly operationNames: OperationNameLabels;
}

/** How one attempt at an agent's reply ended (the label of `agent_replies_total`). */
export type ReplyOutcome = 'answered' | 'retried' | 'failed' | 'already_answered' | 'released';

export interface AgentMetrics {
  /** `agent_replies_total{outcome}`: one per attempt at a reply. */
  record(outcome: ReplyOutcome): void;
  /** `agent_reply_seconds`: from the start of an attempt to its committed reply. */
  observeReply(seconds: number): void;
}

export interface Metrics {
  readonly registry: Registry;
  readonly outbox: OutboxMetrics;
  readonly subscriptions: SubscriptionMetrics;
  readonly graphql: GraphqlMetrics;
  readonly agents: AgentMetrics;
  /** Attaches (or with null detaches) the publisher whose status the publisher gauges show. */
  setPublisherStatusSource(source: PublisherStatusSource | null): void;
  /** Attaches (or with null detaches) the analytics rollup worker whose last fold the rollup gauge shows. */
  setAnalyticsRollupStatusSource(source: AnalyticsRollupStatusSource | null): void;
  /** The Prometheus text exposition of everything above. */
  scrape(): Promise<{ contentType: string; body: string }>;
}

/**
 * A gauge whose value is taken at scrape time and left out of the scrape (no sample, only its
 * HELP/TYPE lines) when it is unknown: a stale or zero value would tell the on-call person that all
 * is well while the database does not answer.
 */
class SampledGauge extends Gauge {
  readonly #sample: () => number | null | Promise<number | null>;

  constructor(config: GaugeConfiguration<string> & { sample: () => number | null | Promise<number | null> }) {
    const { sample, ...gaugeConfig } = config;
    super(gaugeConfig);
    this.#sample = sample;
  }

  override async get() {
    const value = await this.#sample();
    if (value === null) return { ...(await super.get()), values: [] };
    this.set(value);
    return super.get();
  }
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  let publisher: PublisherStatusSource | null = options.publisher ?? null;
  let analyticsRollup: AnalyticsRollupStatusSource | null = null;
  const publisherStatus = (): PublisherStatus | null => {
    if (!publisher) return null;
    try {
      return publisher.status();
    } catch (error) {
      options.logger?.warn({ err: error }, 'publisher status could not be read for metrics');
      return null;
    }
  };

  // One backlog query per scrape, shared by the gauges below and the scrape error counter.
  const backlogTimeoutMs = options.backlogTimeoutMs ?? BACKLOG_SCRAPE_TIMEOUT_MS;
  const readBacklog = options.readOutboxBacklog;
  const sampleBacklog = singleFlight(async (): Promise<OutboxBacklog | null> => {
    if (!readBacklog) return null;
    try {
      return await withTimeout(readBacklog(), backlogTimeoutMs, 'outbox backlog query');
    } catch (error) {
      scrapeErrors.inc();
      options.logger?.warn({ err: error }, 'outbox backlog could not be read for metrics');
      return null;
    }
  });

  // --- outbox: counters and histograms the publisher records -----------------------------------
  const publishAttempts = new Counter({
    name: 'outbox_publish_attempts_total',
    help: 'Outbox events whose publish was attempted, by event type and outcome (success, retry scheduled, failed for good).',
    labelNames: ['event_type', 'outcome'] as const,
    registers,
  });
  const commitToPublishSeconds = new Histogram({
    name: 'outbox_commit_to_publish_seconds',
    help: 'Time from an outbox event being written (created_at) to it being published to the bus.',
    labelNames: ['event_type'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers,
  });
  const batchSize = new Histogram({
    name: 'outbox_batch_size',
    help: 'Events claimed per publisher batch (empty polls are not observed).',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    registers,
  });
  const reprocessed = new Counter({
    name: 'outbox_reprocessed_total',
    help: 'Failed outbox events put back to pending by reprocessing (mutation or CLI).',
    registers,
  });
  const cyclesAbandoned = new Counter({
    name: 'outbox_cycles_abandoned_total',
    help: 'Publisher cycles abandoned for running past OUTBOX_CYCLE_TIMEOUT_MS; their connections were destroyed and their events left to the claim lease.',
    registers,
  });
  const connectionsReplaced = new Counter({
    name: 'connections_replaced_total',
    help: 'Connections destroyed because an answer did not arrive within its deadline, by connection (publisher_db, listen, redis_publish, redis_subscribe).',
    labelNames: ['connection'] as const,
    registers,
  });
  const scrapeErrors: Counter = new Counter({
    name: 'outbox_metrics_scrape_errors_total',
    help: 'Scrapes whose outbox backlog query failed or timed out; the backlog gauges were left out of those scrapes.',
    registers,
    // Registered before the backlog gauges, so it starts the scrape's one backlog query (they
    // share it) and reports the error of this very scrape, not only the previous one's.
    async collect() {
      await sampleBacklog();
    },
  });
  for (const eventType of EVENT_TYPES) {
    // Every series exists from the start, so rate() and ratios work before the first failure.
    for (const outcome of PUBLISH_OUTCOMES) publishAttempts.inc({ event_type: eventType, outcome }, 0);
    commitToPublishSeconds.zero({ event_type: eventType });
  }

  // --- outbox: gauges read from the database at scrape time, one query per scrape --------------
  new SampledGauge({
    name: 'outbox_pending_events',
    help: 'Outbox events waiting to be published (database-wide: aggregate instances with max, not sum).',
    registers,
    sample: async () => (await sampleBacklog())?.pending ?? null,
  });
  new SampledGauge({
    name: 'outbox_failed_events',
    help: 'Outbox events that exhausted their retries and wait for reprocessing (database-wide).',
    registers,
    sample: async () => (await sampleBacklog())?.failed ?? null,
  });
  new SampledGauge({
    name: 'outbox_oldest_pending_age_seconds',
    help: 'Age of the oldest pending outbox event by the database clock; 0 when none is pending (database-wide).',
    registers,
    sample: async () => (await sampleBacklog())?.oldestPendingAgeSeconds ?? null,
  });

  // --- outbox: gauges read from the publisher object at scrape time ----------------------------
  new Gauge({
    name: 'outbox_publisher_up',
    help: '1 when this instance runs an outbox publisher that has started and not stopped, else 0.',
    registers,
    collect() {
      this.set(publisherStatus()?.running ? 1 : 0);
    },
  });
  new SampledGauge({
    name: 'outbox_publisher_last_cycle_timestamp_seconds',
    help: "Unix time of the end of this instance's last successful publisher cycle; absent before the first.",
    registers,
    sample: () => {
      const at = publisherStatus()?.lastCycleAt;
      return at ? at.getTime() / 1000 : null;
    },
  });
  new Gauge({
    name: 'outbox_listen_enabled',
    help: "1 when this instance's publisher is configured to LISTEN for commits, else 0 (PGlite, OUTBOX_WAKE other than all).",
    registers,
    collect() {
      this.set(publisherStatus()?.listenEnabled ? 1 : 0);
    },
  });
  new Gauge({
    name: 'outbox_listen_connected',
    help: "1 when this instance's publisher holds its LISTEN connection (wake-up on commit), else 0.",
    registers,
    collect() {
      this.set(publisherStatus()?.listening ? 1 : 0);
    },
  });

  // --- analytics -------------------------------------------------------------------------------
  new SampledGauge({
    name: 'analytics_rollup_last_fold_timestamp_seconds',
    help: "Unix time of this instance's last completed analytics rollup fold (while holding the rollup lock); absent before the first, or where the worker is off.",
    registers,
    sample: () => {
      const at = analyticsRollup?.status().lastFoldAt;
      return at ? at.getTime() / 1000 : null;
    },
  });

  // --- subscriptions ---------------------------------------------------------------------------
  const wsConnectedClients = new Gauge({
    name: 'graphql_ws_connected_clients',
    help: 'Open graphql-ws connections that have sent connection_init.',
    registers,
  });
  const activeSubscriptions = new Gauge({
    name: 'graphql_active_subscriptions',
    help: 'Subscription streams open now, by transport (ws: graphql-ws, sse: server-sent events).',
    labelNames: ['transport'] as const,
    registers,
  });
  const eventsDelivered = new Counter({
    name: 'subscription_events_delivered_total',
    help: 'Events handed to subscribers, by event type (one per subscriber per event).',
    labelNames: ['event_type'] as const,
    registers,
  });
  const endedSlowConsumer = new Counter({
    name: 'subscriptions_ended_slow_consumer_total',
    help: 'Subscriptions ended because the client did not keep up and its buffer overflowed.',
    registers,
  });
  const connectionsCut = new Counter({
    name: 'subscriber_connections_cut_total',
    help: 'Subscriber connections (ws, sse) cut because what they had queued neither drained nor shrank within SUBSCRIPTION_WRITE_TIMEOUT_MS.',
    labelNames: ['transport'] as const,
    registers,
  });
  const fanoutBuckets = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000];
  const groups = new Gauge({
    name: 'subscription_groups',
    help: 'Groups of subscriptions that share one execution per event (same document, operation, variables and authorisation scope).',
    registers,
  });
  const groupSubscribers = new Histogram({
    name: 'subscription_group_subscribers',
    help: 'Subscribers in a group, observed each time an event is executed for the group: one execution serves them all.',
    buckets: fanoutBuckets,
    registers,
  });
  const framesSent = new Counter({
    name: 'subscription_frames_sent_total',
    help: 'Subscription results handed to subscriber connections (one per subscriber per event).',
    registers,
  });
  const eventFanout = new Histogram({
    name: 'subscription_event_fanout',
    help: 'Listeners on this instance (subscription streams, mostly) a bus event was handed to: the frames one event becomes.',
    buckets: fanoutBuckets,
    registers,
  });
  for (const transport of SUBSCRIPTION_TRANSPORTS) connectionsCut.inc({ transport }, 0);
  for (const transport of SUBSCRIPTION_TRANSPORTS) activeSubscriptions.set({ transport }, 0);
  for (const eventType of EVENT_TYPES) eventsDelivered.inc({ event_type: eventType }, 0);

  // --- GraphQL operations ----------------------------------------------------------------------
  const operations = new Counter({
    name: 'graphql_operations_total',
    help: 'GraphQL operations by (bounded) operation name, operation type and outcome.',
    labelNames: ['operation_name', 'operation_type', 'outcome'] as const,
    registers,
  });
  const operationDuration = new Histogram({
    name: 'graphql_operation_duration_seconds',
    help: 'Time from parsing a query or mutation to its result (subscriptions are not timed).',
    labelNames: ['operation_name', 'operation_type'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });

  // --- agent runtime ---------------------------------------------------------------------------
  const agentReplies = new Counter({
    name: 'agent_replies_total',
    help: 'Attempts at agent replies by outcome: answered, retried (a transient adapter error, another attempt follows), failed (a system notice was posted instead), already_answered (another process committed the reply first), released (stopping)',
    labelNames: ['outcome'] as const,
    registers,
  });
  const agentReplySeconds = new Histogram({
    name: 'agent_reply_seconds',
    help: 'From the start of an attempt to its committed reply',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers,
  });

  return {
    registry,
    outbox: {
      publishAttempts,
      commitToPublishSeconds,
      batchSize,
      reprocessed,
      scrapeErrors,
      recordPublishAttempts(eventType, outcome, count = 1) {
        publishAttempts.inc({ event_type: eventType, outcome }, count);
      },
      recordPublished(event, publishedAt = new Date()) {
        const seconds = Math.max(0, (publishedAt.getTime() - event.createdAt.getTime()) / 1000);
        commitToPublishSeconds.observe({ event_type: event.eventType }, seconds);
      },
      recordBatchClaimed(size) {
        if (size > 0) batchSize.observe(size);
      },
      recordReprocessed(count) {
        if (count > 0) reprocessed.inc(count);
      },
      cyclesAbandoned,
      recordCycleAbandoned() {
        cyclesAbandoned.inc();
      },
      connectionsReplaced,
      recordConnectionReplaced(connection, count = 1) {
        if (count > 0) connectionsReplaced.inc({ connection }, count);
      },
    },
    subscriptions: {
      wsConnectedClients,
      active: activeSubscriptions,
      eventsDelivered,
      endedSlowConsumer,
      connectionsCut,
      groups,
      groupSubscribers,
      framesSent,
      eventFanout,
      recordGroupExecution(groupSize) {
        groupSubscribers.observe(groupSize);
      },
      recordConnectionCut(transport) {
        connectionsCut.inc({ transport });
      },
      recordDelivered(eventType, count = 1) {
        eventsDelivered.inc({ event_type: eventType }, count);
      },
      recordEndedSlowConsumer() {
        endedSlowConsumer.inc();
      },
    },
    graphql: {
      operations,
      operationDuration,
      operationNames: createOperationNameLabels(options.maxOperationNames ?? DEFAULT_MAX_OPERATION_NAMES),
    },
    agents: {
      record(outcome) {
        agentReplies.inc({ outcome });
      },
      observeReply(seconds) {
        agentReplySeconds.observe(seconds);
      },
    },
    setPublisherStatusSource(source) {
      publisher = source;
    },
    setAnalyticsRollupStatusSource(source) {
      analyticsRollup = source;
    },
    async scrape() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
