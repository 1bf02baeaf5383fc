import { defineConfig } from 'vitest/config';

export default defineConfig({
  // graphql 17 ships ESM and CJS builds; without 'module-sync' first, vitest loads the CJS one for
  // source files while Node loads ESM, and graphql rejects the schema as "from another realm".
  ssr: { resolve: { conditions: ['module-sync', 'node'] } },
  test: {
    globalSetup: ['./test/global-setup.ts'],
    // Fails a file that leaves pools, sockets, timers or apps open. It relies on the default
    // `forks` pool: each file runs in a process of its own, so what is open there is the file's.
    setupFiles: ['./test/setup-leak-check.ts'],
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each test file gets its own database cloned from a migrated template, so files can run in
    // parallel without seeing each other's rows.
    fileParallelism: true,
  },
});
