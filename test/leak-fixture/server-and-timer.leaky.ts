import { createServer } from 'node:net';
import { expect, it } from 'vitest';

// Deliberately leaky: a listening server and a timer nobody closes. The test itself passes; the
// teardown check must fail the file.
it('passes, but leaves a server listening and a timer set', async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  setTimeout(() => {}, 60_000);
  expect(server.listening).toBe(true);
});
