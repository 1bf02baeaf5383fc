import { createServer } from 'node:net';
import { afterAll, expect, it } from 'vitest';

// The same resources, closed: the teardown check must let this file pass.
const server = createServer();
let timer: NodeJS.Timeout;
afterAll(async () => {
  clearTimeout(timer);
  await new Promise((resolve) => server.close(resolve));
});

it('opens a server and a timer and closes both', async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  timer = setTimeout(() => {}, 60_000);
  expect(server.listening).toBe(true);
});
