import { sql } from 'kysely';
import { dbOf } from '../db/database.ts';
import { forkEm, type Orm } from '../db/orm.ts';
import type { Logger } from '../logger.ts';
import type { PublisherStatusSource } from './metrics.ts';
import { singleFlight, TimeoutError, withTimeout } from './with-timeout.ts';

/** One line of the readiness report. Details are fixed phrases: the endpoint is unauthenticated. */
export interface CheckResult {
  ok: boolean;
  detail?: string;
  [field: string]: unknown;
}

export interface ReadinessReport {
  status: 'ready' | 'unready';
  checks: Record<string, CheckResult>;
}

export interface HealthChecks {
  /** The process is up and its event loop answers: nothing else is checked (a restart would not fix the database). */
  live(): { status: 'live' };
  /** Database reachable, migrations applied, publisher running (when one is attached), not shutting down. */
  ready(): Promise<ReadinessReport>;
  /** From now on `ready()` answers unready without asking anything: graceful shutdown has begun. */
  markShuttingDown(): void;
  readonly shuttingDown: boolean;
  /** Attaches (or with null detaches) the publisher whose `running` readiness requires. */
  setPublisherStatusSource(source: PublisherStatusSource | null): void;
}

export interface HealthDeps {
  orm: Orm;
  /** Per database check (`HEALTH_CHECK_TIMEOUT_MS`). */
  timeoutMs: number;
  logger: Logger;
  publisher?: PublisherStatusSource | null;
}

const describeFailure = (error: unknown, timeoutMs: number) =>
  error instanceof TimeoutError ? `no answer within ${timeoutMs} ms` : 'failed; see the service log';

export function createHealthChecks(deps: HealthDeps): HealthChecks {
  let shuttingDown = false;
  let publisher = deps.publisher ?? null;
  let lastStatus: ReadinessReport['status'] | null = null;

  // Single flight: a probe storm while the database hangs must not queue up pool acquisitions.
  const pingDatabase = singleFlight(() => withTimeout(sql`select 1`.execute(dbOf(forkEm(deps.orm))), deps.timeoutMs, 'database'));
  // The migrator compares the migration files with the mikro_orm_migrations table: one small query.
  const pendingMigrations = singleFlight(() => withTimeout(deps.orm.migrator.getPending(), deps.timeoutMs, 'migrations check'));

  async function checkDatabase(): Promise<CheckResult> {
    const started = performance.now();
    try {
      await pingDatabase();
      return { ok: true, durationMs: Math.round(performance.now() - started) };
    } catch (error) {
      deps.logger.warn({ err: error }, 'readiness: database check failed');
      return { ok: false, detail: describeFailure(error, deps.timeoutMs) };
    }
  }

  async function checkMigrations(): Promise<CheckResult> {
    try {
      const pending = (await pendingMigrations()).map((migration) => migration.name);
      return pending.length === 0 ? { ok: true } : { ok: false, detail: 'migrations not applied', pending };
    } catch (error) {
      deps.logger.warn({ err: error }, 'readiness: migrations check failed');
      return { ok: false, detail: describeFailure(error, deps.timeoutMs) };
    }
  }

  function checkPublisher(source: PublisherStatusSource): CheckResult {
    try {
      const status = source.status();
      // A running publisher whose cycles hang or fail, or whose LISTEN connection is dead, is not
      // delivering: a load balancer should know, and the instance recovers by itself when they do.
      const detail = !status.running
        ? 'publisher not running'
        : status.stalled
          ? 'no publisher cycle completed within its deadline'
          : status.listenDown
            ? 'LISTEN connection down'
            : null;
      return {
        ok: detail === null,
        ...(detail ? { detail } : {}),
        listening: status.listening,
        lastCycleAt: status.lastCycleAt?.toISOString() ?? null,
      };
    } catch (error) {
      deps.logger.warn({ err: error }, 'readiness: publisher status could not be read');
      return { ok: false, detail: 'publisher status unavailable' };
    }
  }

  return {
    live: () => ({ status: 'live' }),
    async ready() {
      let report: ReadinessReport;
      if (shuttingDown) {
        report = { status: 'unready', checks: { shutdown: { ok: false, detail: 'shutting down' } } };
      } else {
        const checks: Record<string, CheckResult> = { database: await checkDatabase() };
        checks.migrations = checks.database!.ok ? await checkMigrations() : { ok: false, detail: 'not checked: database unreachable' };
        if (publisher) checks.publisher = checkPublisher(publisher);
        report = { status: Object.values(checks).every((check) => check.ok) ? 'ready' : 'unready', checks };
      }
      // Log changes only: a load balancer probes every few seconds.
      if (report.status !== lastStatus && !shuttingDown) {
        const failing = Object.keys(report.checks).filter((name) => !report.checks[name]!.ok);
        if (report.status === 'ready') deps.logger.info('readiness: ready');
        else deps.logger.warn({ failing }, 'readiness: unready');
      }
      lastStatus = report.status;
      return report;
    },
    markShuttingDown() {
      shuttingDown = true;
    },
    get shuttingDown() {
      return shuttingDown;
    },
    setPublisherStatusSource(source) {
      publisher = source;
    },
  };
}
