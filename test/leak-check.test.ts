import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startTestApp, unstoppedTestApps } from './support/app.ts';
import { connect, TEST_DATABASE_URL } from './support/database.ts';
import { leakedSince, openThings, waitForLeaks } from './support/leak-check.ts';

// The teardown check (test/setup-leak-check.ts) is only worth having if it fails a file that
// leaks: these tests leak on purpose, show what it reports, then close what they opened.

describe('the leak check', () => {
  it('names a listening server until it is closed', async () => {
    const baseline = openThings();
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    expect(leakedSince(baseline)).toEqual(['1 × TCPServerWrap']);
    await new Promise((resolve) => server.close(resolve));
    expect(await waitForLeaks(baseline)).toEqual([]);
  });

  it('names an open database connection until it ends', async () => {
    const baseline = openThings();
    const client = await connect(TEST_DATABASE_URL);
    expect(leakedSince(baseline)).toEqual(['1 × TCPSocketWrap']);
    await client.end();
    expect(await waitForLeaks(baseline)).toEqual([]);
  });

  it('names a pending timer by where it was set, and forgets it once cleared or fired', async () => {
    const baseline = openThings();
    const timer = setTimeout(() => {}, 60_000);
    const interval = setInterval(() => {}, 60_000);
    const leaked = leakedSince(baseline);
    expect(leaked).toHaveLength(2);
    for (const line of leaked) expect(line).toMatch(/^1 × timer set at .*leak-check\.test\.ts:\d+:\d+/);
    clearTimeout(timer);
    clearInterval(interval);
    await new Promise((resolve) => setTimeout(resolve, 5)); // fires: not a leak
    expect(leakedSince(baseline)).toEqual([]);
    setTimeout(() => {}, 60_000).unref(); // cannot hold the process: not a leak either
    expect(leakedSince(baseline)).toEqual([]);
  });

  it('names a listener left on process', () => {
    const baseline = openThings();
    const listener = () => {};
    process.on('SIGUSR2', listener);
    expect(leakedSince(baseline)).toEqual(["1 × process.on('SIGUSR2') listener"]);
    process.off('SIGUSR2', listener);
    expect(leakedSince(baseline)).toEqual([]);
  });

  it('names an app from startTestApp that was not stopped, with the test that started it', async () => {
    const t = await startTestApp({ ANALYTICS_ROLLUP_INTERVAL_MS: '0' });
    expect(unstoppedTestApps()).toEqual([
      'an app from startTestApp() in "the leak check > names an app from startTestApp that was not stopped, with the test that started it" was never stopped',
    ]);
    await t.stop();
    expect(unstoppedTestApps()).toEqual([]);
  });

  it('fails a test file that leaks, naming what it left open, and passes one that cleans up', () => {
    // A vitest run of its own over test/leak-fixture, with the same teardown check.
    const config = fileURLToPath(new URL('./leak-fixture/vitest.config.ts', import.meta.url));
    const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url));
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('VITEST')));
    const run = spawnSync(process.execPath, [vitest, 'run', '--config', config, '--reporter', 'verbose', '--color=false'], {
      env: { ...env, NO_COLOR: '1' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    const output = `${run.stdout}\n${run.stderr}`;
    expect(run.status, output).toBe(1);
    expect(output).toContain('This test file left things open after its last afterAll:');
    expect(output).toContain('- 1 × TCPServerWrap');
    expect(output).toMatch(/- 1 × timer set at .*server-and-timer\.leaky\.ts:\d+:\d+/);
    expect(output).toMatch(/✓ tidy\.leaky\.ts/);
    expect(output).toMatch(/Test Files\s+1 failed \| 1 passed/);
  });
});
