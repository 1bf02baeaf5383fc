import net from 'node:net';

export type FaultMode = 'pass' | 'delay' | 'blackhole';

/**
 * A TCP forwarder on 127.0.0.1 (port 0) between an instance and PostgreSQL or Redis, for the
 * faults a network leaves behind:
 * - `pass`: bytes go through;
 * - `delay(ms)`: every chunk waits `ms` first;
 * - `blackhole()`: sockets stay open and nothing passes either way (a NAT or load balancer that
 *   dropped the flow without telling anyone); new connections are accepted and hang the same way;
 * - `reset()`: every open socket is destroyed at once (the peer sees a reset);
 * - `heal()`: new connections pass again, while those opened before stay dead, as a half-open
 *   connection does once the path is back.
 */
export interface FaultProxy {
  /** `host:port` to put in the instance's DATABASE_URL / REDIS_URL. */
  readonly address: string;
  /** Rewrites a `postgresql://…` or `redis://…` URL to go through the proxy. */
  via(url: string): string;
  delay(ms: number): void;
  blackhole(): void;
  reset(): void;
  heal(): void;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  /** Dead: left open, nothing forwarded any more (blackholed, and not revived by heal). */
  dead: boolean;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let mode: FaultMode = 'pass';
  let delayMs = 0;
  let accepted = 0;
  const pairs = new Set<Pair>();

  const forward = (pair: Pair, from: net.Socket, to: net.Socket) => {
    from.on('data', (chunk) => {
      if (pair.dead || mode === 'blackhole') {
        pair.dead = true;
        return;
      }
      if (mode === 'delay' && delayMs > 0) setTimeout(() => !pair.dead && !to.destroyed && to.write(chunk), delayMs).unref();
      else if (!to.destroyed) to.write(chunk);
    });
  };

  const server = net.createServer((client) => {
    accepted += 1;
    const upstream = net.connect(target.port, target.host);
    const pair: Pair = { client, upstream, dead: mode === 'blackhole' };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    forward(pair, client, upstream);
    forward(pair, upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const address = `127.0.0.1:${port}`;

  return {
    address,
    via(url) {
      const parsed = new URL(url);
      parsed.host = address;
      return parsed.toString();
    },
    delay(ms) {
      mode = 'delay';
      delayMs = ms;
    },
    blackhole() {
      mode = 'blackhole';
      for (const pair of pairs) pair.dead = true;
    },
    reset() {
      for (const pair of [...pairs]) {
        pair.client.resetAndDestroy();
        pair.upstream.destroy();
      }
    },
    heal() {
      mode = 'pass';
      delayMs = 0;
    },
    get accepted() {
      return accepted;
    },
    async close() {
      for (const pair of [...pairs]) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
