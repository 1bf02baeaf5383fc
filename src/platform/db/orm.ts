import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Migrator } from '@mikro-orm/migrations';
import { MikroORM as PgliteMikroORM, defineConfig as definePgliteConfig } from '@mikro-orm/pglite';
import { MikroORM as PostgresMikroORM, defineConfig as definePostgresConfig } from '@mikro-orm/postgresql';
import type { SqlEntityManager, SqlMikroORM } from '@mikro-orm/sql';
import type { CompiledQuery } from 'kysely';
import pg from 'pg';
import type { DatabaseConfig } from '../config.ts';
import { dbOf } from './database.ts';
import { transactionTracing } from '../observability/transaction-tracing.ts';
import { entities } from '../../entities.ts';

/** The ORM, whichever PostgreSQL it talks to; everything above this file sees only this. */
export type Orm = SqlMikroORM;
export type Em = SqlEntityManager;

const migrationsPath = fileURLToPath(new URL('../../../migrations', import.meta.url));

const sharedOptions = {
  entities,
  extensions: [Migrator],
  migrations: {
    path: migrationsPath,
    glob: '!(*.d).ts',
    // Migrations are hand-written SQL and are the source of truth for the schema (checks, partial
    // indexes, triggers the entity metadata does not describe), so no schema snapshot is kept and
    // `npm run db:migration:create` scaffolds a blank migration instead of diffing entities.
    snapshot: false,
    snapshotOnMigrate: false,
    // Applied migrations are reported through our structured log (app.ts), not printed raw.
    silent: true,
  },
  // The global EntityManager is off: requests and background batches each work on their own fork.
  allowGlobalContext: false,
  // Ids and timestamps exist as soon as an entity is created, so an event payload can name them
  // before the flush that inserts both.
  processOnCreateHooksEarly: true,
  debug: false,
  // A span per transaction when tracing is on; a no-op otherwise.
  subscribers: [transactionTracing()],
};

/** Extra ORM options for tools and tests, e.g. a query logger. */
export interface OrmOverrides {
  debug?: boolean | ('query' | 'query-params')[];
  logger?: (message: string) => void;
  /** Connection pool bounds (PostgreSQL only; PGlite always has one connection). */
  pool?: { min?: number; max?: number };
  /** PostgreSQL settings for every connection of this ORM, on top of `jit = off` (PostgreSQL only). */
  settings?: Record<string, string>;
  /** Client-side deadlines and TCP keepalive of this ORM's connections (PostgreSQL only; `0` or unset: none). */
  network?: ConnectionDeadlines;
}

export interface ConnectionDeadlines {
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
  keepAliveMs?: number;
}

const QUERY_READ_TIMEOUT = 'Query read timeout';

/**
 * A pg client that destroys its socket when a query's answer does not arrive in time. pg's own
 * `query_timeout` only fails the query: the client stays in the pool with the unanswered query
 * still at the head of its queue, so on a half-open connection every later query on it times out
 * too, for ever. Destroyed, it is dropped by the pool and the next checkout opens a fresh one.
 */
export class DeadlineClient extends pg.Client {
  // Both call forms: callback (pg.Pool#query) and promise (kysely, the ORM).
  override query(...args: unknown[]): never {
    const last = args.at(-1);
    if (typeof last === 'function') {
      args[args.length - 1] = (error: unknown, result: unknown) => {
        if (isReadTimeout(error)) severConnection(this);
        (last as (error: unknown, result: unknown) => void)(error, result);
      };
      return (super.query as (...a: unknown[]) => never)(...args);
    }
    const result = (super.query as (...a: unknown[]) => unknown)(...args);
    if (result instanceof Promise) result.catch((error: unknown) => isReadTimeout(error) && severConnection(this));
    return result as never;
  }
}

const isReadTimeout = (error: unknown) => error instanceof Error && error.message === QUERY_READ_TIMEOUT;

/**
 * Ends a client at once, without waiting for the server: marked as ending (so the pool drops it on
 * release and no 'error' event is raised for the close) and its socket destroyed.
 */
export function severConnection(client: pg.Client): void {
  const internal = client as unknown as { _ending: boolean; _queryable: boolean; connection?: { stream?: { destroy(): void } } };
  internal._ending = true;
  internal._queryable = false;
  internal.connection?.stream?.destroy();
}

/** Checked-out clients of each pool, so a caller that gave up on its work can destroy them. */
const checkedOut = new WeakMap<pg.Pool, Set<pg.PoolClient>>();

function trackCheckouts(pool: pg.Pool): void {
  const clients = new Set<pg.PoolClient>();
  checkedOut.set(pool, clients);
  pool.on('acquire', (client) => clients.add(client));
  pool.on('release', (_error, client) => clients.delete(client));
  pool.on('remove', (client) => clients.delete(client as pg.PoolClient));
}

/**
 * Destroys every connection of the ORM's pool that is checked out now; returns how many. For an
 * owner of a pool of its own (the publisher) that abandoned its work: whatever those connections
 * were waiting for will not come, and none of them goes back to the pool.
 */
export async function severCheckedOutConnections(orm: Orm): Promise<number> {
  const native: unknown = await orm.em.getConnection().getNativeClient();
  if (!(native instanceof pg.Pool)) return 0;
  const clients = [...(checkedOut.get(native) ?? [])];
  for (const client of clients) severConnection(client);
  return clients.length;
}

function poolDriverOptions(network: ConnectionDeadlines = {}) {
  const keepAliveMs = network.keepAliveMs ?? 0;
  return {
    Client: DeadlineClient,
    onPoolCreated: trackCheckouts,
    ...(network.connectTimeoutMs ? { connectionTimeoutMillis: network.connectTimeoutMs } : {}),
    ...(network.queryTimeoutMs ? { query_timeout: network.queryTimeoutMs } : {}),
    ...(keepAliveMs > 0 ? { keepAlive: true, keepAliveInitialDelayMillis: keepAliveMs } : {}),
  };
}

export function ormOptions(database: DatabaseConfig, overrides: OrmOverrides = {}) {
  const { settings, network, ...ormOverrides } = overrides;
  if (database.kind === 'postgresql') {
    // JIT compilation pays off for long analytical scans; ours are index lookups and small
    // aggregates, where the server's default cost threshold still lets it kick in and spend longer
    // compiling a statement than running it (the publisher's claim with a large backlog; figures in
    // docs/design-notes.md#measurements-behind-some-choices).
    const all = { jit: 'off', ...settings };
    return definePostgresConfig({
      ...sharedOptions,
      ...ormOverrides,
      clientUrl: database.url,
      driverOptions: { options: Object.entries(all).map(([name, value]) => `-c ${name}=${value}`).join(' '), ...poolDriverOptions(network) },
    });
  }
  return definePgliteConfig({
    ...sharedOptions,
    ...ormOverrides,
    // PGlite is a single backend: one connection, or concurrent transactions deadlock.
    dbName: database.dataDir,
    pool: { min: 1, max: 1 },
  });
}

export async function createOrm(database: DatabaseConfig, overrides: OrmOverrides = {}): Promise<Orm> {
  if (database.kind === 'postgresql') {
    const orm = await PostgresMikroORM.init(ormOptions(database, overrides) as Parameters<typeof PostgresMikroORM.init>[0]);
    preparing.set(orm.config, database.preparedStatements ?? true);
    return orm as unknown as Orm;
  }
  // PGlite does not create the parent folders of its data directory.
  mkdirSync(database.dataDir, { recursive: true });
  const orm = await PgliteMikroORM.init(ormOptions(database, overrides) as Parameters<typeof PgliteMikroORM.init>[0]);
  return orm as unknown as Orm;
}

/** A fresh EntityManager for one request or one background batch. */
export function forkEm(orm: Orm): Em {
  return orm.em.fork();
}

/** Applies pending migrations; returns the names of those it applied. */
export async function migrateToLatest(orm: Orm): Promise<string[]> {
  const applied = await orm.migrator.up();
  return applied.map((migration) => migration.name);
}

const preparedNames = new Map<string, string>();
/** Per ORM (its configuration, which every fork shares): DB_PREPARED_STATEMENTS. */
const preparing = new WeakMap<object, boolean>();

/** One name per statement text, the same on every connection and in every process. */
function runNamed<Row>(pool: pg.Pool, query: CompiledQuery<Row>): Promise<Row[]> {
  let name = preparedNames.get(query.sql);
  if (!name) preparedNames.set(query.sql, (name = `chat_outbox_${createHash('sha1').update(query.sql).digest('hex').slice(0, 16)}`));
  return pool.query({ name, text: query.sql, values: [...query.parameters] }).then((result) => result.rows as Row[]);
}

/**
 * Runs a hot statement as a named prepared statement on PostgreSQL, so each connection plans it
 * once instead of on every run (planning the publisher's claim cost more than running it).
 * Outside any EntityManager's transaction: for statements that are a transaction of their own.
 * On PGlite, or with `prepare` false (behind a pooler that cannot keep them), it runs the
 * statement as usual.
 */
export async function runPrepared<Row>(orm: Orm, query: CompiledQuery<Row>, prepare = true): Promise<Row[]> {
  // The connection is shared and context-free: no EntityManager fork on this hot path.
  const native: unknown = prepare ? await orm.em.getConnection().getNativeClient() : null;
  if (native instanceof pg.Pool) return runNamed(native, query);
  return (await dbOf(forkEm(orm)).executeQuery(query)).rows;
}

/**
 * Runs a hot statement of a request (`sendMessage`'s write, a history page, a membership check)
 * as a named prepared statement: parsing and planning them cost PostgreSQL about as much as
 * running them. Only
 * outside a transaction, since a named statement runs on any connection of the pool; inside one,
 * and on PGlite or with DB_PREPARED_STATEMENTS=false, it runs as usual. The statement's text must
 * come from a bounded set of shapes (values are parameters), as each text is prepared once per connection.
 */
export async function runHot<Row>(em: Em, query: CompiledQuery<Row>): Promise<Row[]> {
  if (!em.isInTransaction() && preparing.get(em.config)) {
    const native: unknown = await em.getConnection().getNativeClient();
    if (native instanceof pg.Pool) return runNamed(native, query);
  }
  return (await dbOf(em).executeQuery(query)).rows;
}
