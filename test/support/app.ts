import { afterAll, beforeAll, expect, inject } from 'vitest';
import { startApp, type App, type AppOverrides } from '../../src/app.ts';
import { loadConfig } from '../../src/platform/config.ts';
import { createOrm, type Orm } from '../../src/platform/db/orm.ts';
import { createLogger, type Logger } from '../../src/platform/logger.ts';
import type pg from 'pg';
import { connect, databaseUrl, quoteIdent, uniqueDatabaseName, withAdminClient } from './database.ts';

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A fresh, migrated database for one test file, cloned from the run's template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = uniqueDatabaseName('chat_outbox_test');
  const template = inject('templateDatabase');
  await withAdminClient((client) => client.query(`create database ${quoteIdent(name)} template ${quoteIdent(template)}`));
  return {
    name,
    url: databaseUrl(name),
    drop: () => withAdminClient(async (client) => void (await client.query(`drop database if exists ${quoteIdent(name)} with (force)`))),
  };
}

/** The suite's HS256 secret: a server on PostgreSQL refuses to start without one (or JWKS). */
export const TEST_JWT_SECRET = 'chat-outbox-test-suite-secret-0123456789';

/**
 * An app started before the enclosing block's tests and stopped after them. The returned object
 * stands for that app (`t.gql(...)`, `t.app.url`), read once the block's `beforeAll` has run.
 */
export function useTestApp(...args: Parameters<typeof startTestApp>): TestApp {
  let started: TestApp | undefined;
  beforeAll(async () => {
    started = await startTestApp(...args);
  });
  afterAll(async () => {
    await started?.stop();
  });
  return standIn(() => started, 'useTestApp()');
}

/** An object that stands for the app `current()` returns, read once the block's `beforeAll` has run. */
function standIn(current: () => TestApp | undefined, madeBy: string): TestApp {
  return new Proxy({} as TestApp, {
    get: (_target, key) => {
      const app = current();
      if (!app) throw new Error(`${madeBy}: the app is only there once beforeAll has run`);
      return app[key as keyof TestApp];
    },
  });
}

/**
 * Two instances on one database, started before the enclosing block's tests (the first, then the
 * second on its database) and stopped after them. The second runs without a publisher unless
 * `secondEnv` says otherwise; `secondOverrides` (e.g. its own bus) is built when it starts.
 */
export function useTwoInstances(
  firstEnv: Record<string, string>,
  secondEnv: Record<string, string> = { ...firstEnv, OUTBOX_PUBLISHER_ENABLED: 'false' },
  secondOverrides: () => AppOverrides = () => ({}),
): { first: TestApp; second: TestApp } {
  const apps: { first?: TestApp; second?: TestApp } = {};
  beforeAll(async () => {
    apps.first = await startTestApp(firstEnv);
    apps.second = await startTestApp(secondEnv, { ...secondOverrides(), db: apps.first.db });
  });
  afterAll(async () => {
    await apps.second?.stop();
    await apps.first?.stop();
  });
  return { first: standIn(() => apps.first, 'useTwoInstances()'), second: standIn(() => apps.second, 'useTwoInstances()') };
}

/**
 * A fresh database for this file, a plain pg client on it and an ORM over it, opened before the
 * file's tests and closed after them: for tests that drive the outbox without a whole app.
 */
export function useTestDatabase(): { readonly db: TestDatabase; readonly client: pg.Client; readonly orm: Orm } {
  const opened: { db?: TestDatabase; client?: pg.Client; orm?: Orm } = {};
  beforeAll(async () => {
    opened.db = await createTestDatabase();
    opened.client = await connect(opened.db.url);
    opened.orm = await createOrm({ kind: 'postgresql', url: opened.db.url });
  });
  afterAll(async () => {
    await opened.orm?.close(true);
    await opened.client?.end();
    await opened.db?.drop();
  });
  return {
    get db() {
      return opened.db!;
    },
    get client() {
      return opened.client!;
    },
    get orm() {
      return opened.orm!;
    },
  };
}

export interface TestApp {
  app: App;
  db: TestDatabase;
  /** Signs a bearer token for any user id (with JWT_SECRET, or the `token` option's signer). */
  token(userId: string, expiresIn?: string): Promise<string>;
  /** POSTs one GraphQL operation through the real HTTP server. */
  gql<T = any>(query: string, variables?: Record<string, unknown>, options?: { as?: string | null }): Promise<GqlResult<T>>;
  stop(): Promise<void>;
}

export interface GqlResult<T> {
  status: number;
  data?: T;
  errors?: { message: string; path?: string[]; extensions?: { code?: string; [key: string]: unknown } }[];
}

/** Apps started by startTestApp and not stopped yet, with the test that started each. */
const runningApps = new Map<TestApp, string>();

/** For the teardown check: apps this file started and never stopped. */
export function unstoppedTestApps(): string[] {
  return [...runningApps.values()].map((startedBy) => `an app from startTestApp() in "${startedBy}" was never stopped`);
}

/**
 * Starts the whole app (as `npm start` does, against PostgreSQL) on a free port, on its own
 * database, or on `options.db` to run a second instance against the same one. `options.token`
 * replaces the HS256 signer, e.g. with an identity provider's keys when JWT_JWKS_URL is set.
 */
export async function startTestApp(
  env: Record<string, string> = {},
  options: AppOverrides & { db?: TestDatabase; logger?: Logger; token?: TestApp['token'] } = {},
): Promise<TestApp> {
  const { db: shared, logger, token: signer, ...overrides } = options;
  const db = shared ?? (await createTestDatabase());
  // The agent runtime is off unless a test turns it on: other tests count the events they cause.
  const config = loadConfig({ DATABASE_URL: db.url, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', JWT_SECRET: TEST_JWT_SECRET, AGENT_RUNTIME_ENABLED: 'false', ...env });
  const app = await startApp(config, logger ?? createLogger({ level: config.logLevel, pretty: false }), overrides);
  const token: TestApp['token'] = signer ?? ((userId, expiresIn) => app.tokens.sign(userId, expiresIn ? { expiresIn } : {}));
  const testApp: TestApp = {
    app,
    db,
    token,
    async gql(query, variables, options = {}) {
      const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
      if (options.as) headers.authorization = `Bearer ${await token(options.as)}`;
      const response = await fetch(app.graphqlUrl, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
      return { status: response.status, ...((await response.json()) as object) };
    },
    async stop() {
      await app.stop();
      if (!shared) await db.drop();
    },
  };
  runningApps.set(testApp, expect.getState().currentTestName ?? 'a beforeAll hook');
  // A test may stop the app itself (t.app.stop()) to watch the shutdown: that counts as stopped.
  const stopApp = app.stop;
  app.stop = () => {
    runningApps.delete(testApp);
    return stopApp();
  };
  return testApp;
}

/**
 * startTestApp, plus a plain pg client on its database for checking what is stored and injecting
 * faults. `t.stop()` also closes the client.
 */
export async function startTestAppWithClient(...args: Parameters<typeof startTestApp>): Promise<{ t: TestApp; db: pg.Client }> {
  const t = await startTestApp(...args);
  const db = await connect(t.db.url);
  const stop = t.stop;
  t.stop = async () => {
    await db.end().catch(() => {});
    await stop();
  };
  return { t, db };
}

/** The first error's code, for asserting on rejected operations. */
export const errorCode = (result: GqlResult<unknown>) => result.errors?.[0]?.extensions?.code;
