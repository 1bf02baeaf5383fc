import { defineConfig } from 'vitest/config';

// Runs test/leak-fixture/*.leaky.ts with the suite's teardown check, for test/leak-check.test.ts
// to show that the check fails a file that leaks. Not part of `npm test`'s own run.
export default defineConfig({
  ssr: { resolve: { conditions: ['module-sync', 'node'] } },
  test: {
    root: new URL('.', import.meta.url).pathname,
    include: ['*.leaky.ts'],
    setupFiles: ['../setup-leak-check.ts'],
    pool: 'forks',
  },
});
