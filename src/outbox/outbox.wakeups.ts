import type { EventSubscriber, TransactionEventArgs } from '@mikro-orm/core';
import pg from 'pg';
import { systemClock, type Clock } from '../platform/clock.ts';
import { dbOf } from '../platform/db/database.ts';
import { forkEm, severConnection, type Em, type Orm } from '../platform/db/orm.ts';
import { notifyPublishers, OUTBOX_CHANNEL } from '../events/event-log.repository.ts';
import { backoffMs } from './backoff.ts';
import type { Logger } from '../platform/logger.ts';

/** Transactions that made outbox events due; a publisher in this process wakes when one commits. */
const transactionsWithEvents = new WeakSet<object>();

/**
 * What to wake in this process when events commit, per event manager. Every fork of an ORM shares
 * its root's event manager, so a write through any request's EntityManager finds them.
 */
const localWakers = new WeakMap<object, (() => void)[]>();

/**
 * Wakes this process's publisher (and whatever else `wakeOnLocalCommit` registered) once `em`'s
 * write that made events due has committed: when its transaction commits, or at once when there is
 * no transaction, because the write was a statement of its own and has committed already (the
 * write path's one-statement `sendMessage`). A rolled-back transaction wakes nobody.
 */
export function wakePublisherAfterCommit(em: Em): void {
  const transaction = em.getTransactionContext();
  if (transaction) transactionsWithEvents.add(transaction);
  else for (const wake of localWakers.get(em.getEventManager()) ?? []) wake();
}

/**
 * Calls `wake` right after a write that recorded an event commits. The outbox writer reports
 * every recorded event (`wakePublisherAfterCommit`); this fires on that transaction's commit, so
 * a rolled-back write wakes nobody and the request path does no extra work.
 */
export function wakeOnLocalCommit(orm: Orm, wake: () => void): void {
  const events = orm.em.getEventManager();
  const wakers = localWakers.get(events) ?? [];
  localWakers.set(events, [...wakers, wake]);
  const subscriber: EventSubscriber = {
    afterTransactionCommit(args: TransactionEventArgs) {
      if (args.transaction && transactionsWithEvents.has(args.transaction)) wake();
    },
  };
  events.registerSubscriber(subscriber);
}

/**
 * LISTEN for other processes' commits. A notification is only a hint (docs/design-notes.md#notify-is-a-hint): it is lost
 * while the connection is down, so every (re)connect is followed by a wake-up that sweeps for
 * whatever was missed, and the publisher polls anyway.
 */
export function listenForCommits(options: {
  url: string;
  logger: Logger;
  wake: () => void;
  onStateChange: (listening: boolean) => void;
  /** Wait between reconnect attempts, doubling up to 30 s. */
  retryBaseMs?: number;
  /** Times the reconnect delay; default: the real clock. */
  clock?: Clock;
  /**
   * OUTBOX_LISTEN_PING_MS: a connection that only receives cannot tell a quiet channel from a dead
   * socket, so it runs `select 1` this often and is replaced when the answer does not come within
   * `pingTimeoutMs`. 0 or unset: no ping.
   */
  pingIntervalMs?: number;
  /** Deadline of a ping and of connecting (DB_CONNECT_TIMEOUT_MS; default 5 s). */
  connectTimeoutMs?: number;
  /** TCP keepalive idle time (TCP_KEEPALIVE_MS); 0: off. Default 10 s. */
  keepAliveMs?: number;
  /** Called when a connection that was up is destroyed for missing its ping. */
  onReplaced?: () => void;
}) {
  const clock = options.clock ?? systemClock;
  let client: pg.Client | null = null;
  let stopped = false;
  /** Cancels the pending reconnect. */
  let retryTimer: (() => void) | null = null;
  let failures = 0;
  let cancelPing: (() => void) | null = null;
  const deadlineMs = options.connectTimeoutMs || 5_000;
  const keepAliveMs = options.keepAliveMs ?? 10_000;

  // Pings run on the real clock: they measure the network, and a fake clock in tests must not fire them.
  function schedulePing(which: pg.Client) {
    const interval = options.pingIntervalMs ?? 0;
    if (!interval || stopped) return;
    cancelPing = systemClock.setTimeout(() => {
      cancelPing = null;
      void ping(which);
    }, interval);
  }

  async function ping(which: pg.Client) {
    if (client !== which) return;
    try {
      await which.query({ text: 'select 1', query_timeout: deadlineMs } as pg.QueryConfig);
      if (client === which) schedulePing(which);
    } catch (error) {
      if (client !== which) return;
      options.onReplaced?.();
      lost(which, new Error(`no answer to the LISTEN connection's ping within ${deadlineMs} ms (${error instanceof Error ? error.message : String(error)})`));
    }
  }

  async function connect() {
    if (stopped) return;
    const next = new pg.Client({
      connectionString: options.url,
      connectionTimeoutMillis: deadlineMs,
      ...(keepAliveMs > 0 ? { keepAlive: true, keepAliveInitialDelayMillis: keepAliveMs } : {}),
    });
    next.on('notification', () => options.wake());
    next.on('error', (error) => lost(next, error));
    next.on('end', () => lost(next, new Error('connection ended')));
    try {
      await next.connect();
      await next.query({ text: `listen ${OUTBOX_CHANNEL}`, query_timeout: deadlineMs } as pg.QueryConfig);
      if (stopped) {
        await next.end();
        return;
      }
      client = next;
      failures = 0;
      options.onStateChange(true);
      options.logger.info('outbox LISTEN connected');
      schedulePing(next);
      options.wake(); // sweep for anything committed while we were not listening
    } catch (error) {
      lost(next, error);
    }
  }

  function lost(which: pg.Client, error: unknown) {
    if (stopped) return;
    if (client && client !== which) return;
    client = null;
    cancelPing?.();
    cancelPing = null;
    options.onStateChange(false);
    which.removeAllListeners('end');
    // Destroyed, not ended: ending waits for a server that may not be answering.
    severConnection(which);
    failures += 1;
    const delay = backoffMs(failures, { baseMs: options.retryBaseMs ?? 500, maxMs: 30_000 });
    options.logger.warn({ err: error instanceof Error ? error.message : String(error), retryInMs: delay }, 'outbox LISTEN connection lost');
    if (!retryTimer) {
      retryTimer = clock.setTimeout(() => {
        retryTimer = null;
        void connect();
      }, delay);
    }
  }

  void connect();

  return {
    /** For tests: drop the connection as a network failure would. */
    async simulateDisconnect() {
      const current = client;
      if (current) {
        // Terminate from the server side so the client sees a real connection loss.
        await current.query('select pg_terminate_backend(pg_backend_pid())').catch(() => {});
      }
    },
    async stop() {
      stopped = true;
      retryTimer?.();
      cancelPing?.();
      const current = client;
      client = null;
      options.onStateChange(false);
      if (current) {
        current.removeAllListeners('end');
        await current.end().catch(() => {});
      }
    },
  };
}

/**
 * Sends `NOTIFY chat_outbox_pending` after commits, for publishers in other processes, when this
 * process has none of its own (API-only instances).
 *
 * Not from inside the writing transaction: a NOTIFY there takes a global lock at commit that
 * serialises every committing writer (docs/design-notes.md#notify-is-a-hint). Coalesced: at most one NOTIFY is in flight;
 * signals that arrive meanwhile are folded into one more. A lost or failed NOTIFY costs latency
 * only, since publishers poll.
 */
export function createCommitNotifier(orm: Orm, logger: Logger) {
  let inFlight = false;
  let again = false;
  async function send() {
    inFlight = true;
    try {
      do {
        again = false;
        await notifyPublishers(dbOf(forkEm(orm)));
      } while (again);
    } catch (error) {
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'outbox NOTIFY failed; publishers will find the events by polling');
    } finally {
      inFlight = false;
    }
  }
  return {
    signal(): void {
      if (inFlight) again = true;
      else void send();
    },
  };
}
