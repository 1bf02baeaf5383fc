import { Redis, type RedisOptions } from 'ioredis';

/**
 * One Redis connection of this process, named in `CLIENT LIST` (`chat-outbox:publish`, …). Errors
 * are reported through the commands that fail (and the caller's own listeners), not as unhandled
 * 'error' events.
 */
export function openRedisConnection(url: string, connectionName: string, options: RedisOptions = {}): Redis {
  const client = new Redis(url, {
    connectionName,
    // A connection closed while Redis is unreachable keeps ioredis's destroy timer (2 s by
    // default) alive after close; nothing is in flight on a connection we close.
    disconnectTimeout: 200,
    ...options,
  });
  client.on('error', () => {});
  return client;
}
