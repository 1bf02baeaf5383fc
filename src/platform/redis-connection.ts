import { Redis, type RedisOptions } from 'ioredis';
import { systemClock } from './clock.ts';

/** Deadlines of one Redis connection (`0`: none); from the `network` settings. */
export interface RedisDeadlines {
  /** REDIS_COMMAND_TIMEOUT_MS: a command without an answer by then fails and the connection is replaced. */
  commandTimeoutMs?: number;
  /** REDIS_CONNECT_TIMEOUT_MS. */
  connectTimeoutMs?: number;
  /** TCP_KEEPALIVE_MS: idle time before keepalive probes. */
  keepAliveMs?: number;
  /**
   * REDIS_PING_INTERVAL_MS, for a connection that sends nothing of its own (the subscriber): a
   * PING this often, so a dead socket is found by the command deadline instead of never.
   */
  pingIntervalMs?: number;
  /** Called each time the connection is destroyed for missing a deadline (it then reconnects). */
  onReplaced?: () => void;
}

const COMMAND_TIMED_OUT = 'Command timed out';

/**
 * One Redis connection of this process, named in `CLIENT LIST` (`chat-outbox:publish`, …). Errors
 * are reported through the commands that fail (and the caller's own listeners), not as unhandled
 * 'error' events.
 *
 * With a command deadline, a command that times out means the socket may be half-open (a NAT or
 * load balancer dropped it without telling anyone): every later command on it would time out too,
 * so the socket is destroyed and ioredis opens a new one (and re-subscribes a subscriber's channels).
 */
export function openRedisConnection(url: string, connectionName: string, options: RedisOptions = {}, deadlines: RedisDeadlines = {}): Redis {
  const keepAliveMs = deadlines.keepAliveMs ?? 0;
  const client = new Redis(url, {
    connectionName,
    // A connection closed while Redis is unreachable keeps ioredis's destroy timer (2 s by
    // default) alive after close; nothing is in flight on a connection we close.
    disconnectTimeout: 200,
    ...(deadlines.commandTimeoutMs ? { commandTimeout: deadlines.commandTimeoutMs } : {}),
    ...(deadlines.connectTimeoutMs ? { connectTimeout: deadlines.connectTimeoutMs } : {}),
    keepAlive: keepAliveMs,
    ...options,
  });
  client.on('error', () => {});
  if (!deadlines.commandTimeoutMs) return client;

  let replacing = false;
  const replace = () => {
    if (replacing) return;
    replacing = true;
    deadlines.onReplaced?.();
    (client as unknown as { stream?: { destroy(): void } }).stream?.destroy();
  };
  client.on('ready', () => {
    replacing = false;
  });
  // Every command (pipelines and MULTI included) goes through sendCommand, where ioredis arms the deadline.
  const send = client.sendCommand.bind(client);
  client.sendCommand = ((command: Parameters<Redis['sendCommand']>[0], ...rest: unknown[]) => {
    const result = (send as (...a: unknown[]) => unknown)(command, ...rest);
    command.promise.catch((error: unknown) => {
      if (error instanceof Error && error.message === COMMAND_TIMED_OUT) replace();
    });
    return result;
  }) as Redis['sendCommand'];

  const interval = deadlines.pingIntervalMs ?? 0;
  if (interval > 0) {
    let cancel: (() => void) | null = null;
    let closed = false;
    const schedule = () => {
      if (closed) return;
      cancel = systemClock.setTimeout(() => {
        cancel = null;
        if (client.status !== 'ready') return schedule();
        // A timeout replaces the connection (above); other failures are the reconnect's business.
        client.ping().then(schedule, schedule);
      }, interval);
    };
    schedule();
    const stop = () => {
      closed = true;
      cancel?.();
    };
    client.once('end', stop);
    // A connection closed while reconnecting never emits 'end': stop pinging on close itself.
    const disconnect = client.disconnect.bind(client);
    client.disconnect = (reconnect = false) => {
      if (!reconnect) stop();
      disconnect(reconnect);
    };
  }
  return client;
}
