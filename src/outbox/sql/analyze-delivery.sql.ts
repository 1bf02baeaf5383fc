import { namedStatement } from './named-statement.ts';

/**
 * Fresh statistics for `outbox_delivery` after a large registration (a backlog arriving at once).
 * Planned with a table the statistics still call small, the claim reads every due aggregate and
 * sorts them instead of walking the due index for the first few hundred: measured at 60 ms per
 * claim with 100,000 due aggregates, against about 1 ms with statistics. Autovacuum would catch
 * up, but only after the backlog has drained slowly.
 */
export const analyzeDelivery = namedStatement<Record<string, never>, never>(`analyze outbox_delivery`);

/** From this many aggregates registered in one step, the publisher refreshes the statistics. */
export const ANALYZE_AFTER_REGISTERING = 10_000;
