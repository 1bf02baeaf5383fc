import { writeFileSync } from 'node:fs';
import { once } from 'node:events';
import WebSocket from 'ws';

/**
 * A CPU profile of part of another process's life, over the DevTools protocol: the process runs
 * with `--inspect=127.0.0.1:<port>`, and only what happens between `start()` and `stop()` is
 * sampled (`--cpu-prof` profiles everything, connection set-up included).
 */
export async function attachProfiler(port: number) {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await once(socket, 'open');
  let lastId = 0;
  const replies = new Map<number, (result: unknown) => void>();
  socket.on('message', (data: Buffer) => {
    const message = JSON.parse(data.toString()) as { id?: number; result?: unknown };
    if (message.id !== undefined) replies.get(message.id)?.(message.result);
  });
  const call = <T>(method: string, params: Record<string, unknown> = {}) =>
    new Promise<T>((resolve) => {
      const id = ++lastId;
      replies.set(id, (result) => resolve(result as T));
      socket.send(JSON.stringify({ id, method, params }));
    });
  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: 200 });
  return {
    start: () => call('Profiler.start'),
    /** Stops sampling and writes the profile (a .cpuprofile file, as `--cpu-prof` writes). */
    async stop(file: string) {
      const { profile } = await call<{ profile: unknown }>('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
      socket.close();
    },
  };
}
