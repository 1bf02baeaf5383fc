import { afterAll, beforeAll } from 'vitest';
import { createLogger } from '../src/platform/logger.ts';
import { unstoppedTestApps } from './support/app.ts';
import { openThings, trackTimers, waitForLeaks, type OpenThings } from './support/leak-check.ts';

// Fails a test file that leaves pools, sockets, servers, timers, child processes or process
// listeners open, or an app from startTestApp running: such a leak keeps connections to the
// shared test server, holds the worker process alive, or lets one file's work run into the next.

let baseline: OpenThings;
trackTimers();

// pino's first logger in a process adds one process 'exit' listener that flushes every pino
// stream at exit, for the life of the process. Made here, before the baseline, it is not counted
// against the file; kept referenced, so it is never collected and the listener never re-added.
export const processWideLogger = createLogger({ level: 'silent', pretty: false });

// Registered before the file's own hooks: the baseline comes before its beforeAll, and this
// afterAll runs after its afterAll (vitest runs after-hooks in reverse order).
beforeAll(() => {
  baseline = openThings();
});

afterAll(async () => {
  const apps = unstoppedTestApps();
  const leaked = await waitForLeaks(baseline);
  if (apps.length === 0 && leaked.length === 0) return;
  throw new Error(
    ['This test file left things open after its last afterAll:', ...apps.map((app) => `- ${app}`), ...leaked.map((line) => `- ${line}`)].join('\n'),
  );
});
