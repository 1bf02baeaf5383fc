import { spawnSync } from 'node:child_process';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { SEND_MESSAGE } from './support/fixtures.ts';
import { eventually, scrape } from './support/observability.ts';

const chromiumPath = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).stdout.trim();
// Shown in the test name, so a run without Chromium says why this did not run.
const skip = chromiumPath ? '' : ' [skipped: chromium is not on PATH; `apt-get install chromium` provides it, .ci/run installs it]';
if (!chromiumPath) console.warn(`GraphiQL browser test${skip}`);

// The machines have no network: without these Chromium keeps trying to reach Google's services.
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe.skipIf(!chromiumPath)(`GraphiQL in a browser${skip}`, () => {
  let t: TestApp;
  let browser: Browser;

  beforeAll(async () => {
    t = await startTestApp({ SEED_DEMO: 'true' });
    // Playwright gives the browser a fresh temporary profile (user data dir) of its own.
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_FLAGS, timeout: 60_000 });
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it(`runs the demo's SessionEvents subscription and shows a message sent meanwhile${skip}`, async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const origin = new URL(t.app.url).origin;
    const elsewhere: string[] = [];
    // Only the app itself may be reached: GraphiQL has to work offline.
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(origin)) return route.continue();
      elsewhere.push(url);
      return route.abort();
    });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));

    await page.goto(t.app.graphqlUrl, { waitUntil: 'load', timeout: 60_000 });
    // The first tab's document, in the Monaco editor GraphiQL renders.
    const subscriptionLine = page.locator('.graphiql-query-editor .view-line', { hasText: 'subscription SessionEvents' });
    await subscriptionLine.waitFor({ timeout: 60_000 });
    await expect.poll(() => page.locator('.graphiql-tab').count()).toBeGreaterThanOrEqual(2);

    // Cursor in the subscription, then Ctrl-Enter runs the operation under the cursor.
    await subscriptionLine.click();
    await page.keyboard.press('Control+Enter');
    await eventually(async () => expect((await scrape(t.app.url)).value('graphql_active_subscriptions', { transport: 'ws' })).toBe(1), 20_000);

    const body = `seen-in-graphiql-${Date.now()}`;
    const projects = await t.gql('{ projects { nodes { sessions { nodes { id } } } } }', {}, { as: 'demo-alice' });
    const sessionId = projects.data.projects.nodes[0].sessions.nodes[0].id as string;
    const sent = await t.gql(SEND_MESSAGE, { sessionId, body }, { as: 'demo-alice' });
    expect(sent.errors).toBeUndefined();

    const response = page.locator('.graphiql-response');
    await expect.poll(() => response.innerText(), { timeout: 20_000 }).toContain(body);
    expect(await response.innerText()).toContain(sent.data.sendMessage.eventId);

    // A new tab starts with the demo header too. (Monaco shows spaces as no-break spaces: \s.)
    await page.locator('.graphiql-tab-add').click();
    await expect.poll(() => page.locator('.graphiql-tab').count()).toBeGreaterThanOrEqual(3);
    await page.getByText('Headers', { exact: true }).click();
    await expect.poll(() => page.locator('.graphiql-editor-tool').innerText()).toMatch(/"Authorization":\s"Bearer\sey/);

    expect(elsewhere).toEqual([]);
    expect(pageErrors).toEqual([]);
    await context.close();
  }, 120_000);
});
