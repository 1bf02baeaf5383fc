import { ADVANCE_WATERMARK, registered, SEEN_SINCE_WATERMARK, WATERMARK } from './discovery-pieces.ts';
import { namedStatement } from './named-statement.ts';

/**
 * Registers newly committed events with their aggregates' delivery positions: reads the log from
 * the relay's transaction-id watermark, raises each aggregate's `written_through` to the highest
 * sequence seen, and moves the watermark up to the oldest transaction still running.
 *
 * Why a transaction id and not an insertion cursor: transactions commit out of the order their
 * events were numbered in. The watermark only passes a transaction id once every transaction
 * below it has ended (`pg_snapshot_xmin`), so an event that commits late is still below the next
 * read's start. Events of transactions at or above the watermark that are visible already are
 * registered now (they are not held back by a slower transaction), and the next read skips them:
 * the state row keeps this read's snapshot, and the next one reads only transactions from its xmax
 * on and those it saw running (discovery-pieces.ts). Without that, a transaction left open
 * anywhere in the cluster made every read re-read the log since it began. Read twice (a snapshot
 * cleared by hand), an event changes nothing: the upsert only ever raises `written_through`, and
 * an unchanged row is not written.
 *
 * One publisher at a time does this (the state row is taken with SKIP LOCKED; another publisher
 * skips the step and claims what is registered). At a trickle the read is two probes of the
 * transaction-id index: a handful of rows, however long another transaction stays open.
 */
export const discoverEvents = namedStatement<Record<string, never>, { registered: number; discovering: boolean }>(`
  with ${WATERMARK}, seen as (${SEEN_SINCE_WATERMARK}
  ), ${registered()}, ${ADVANCE_WATERMARK}
  select (select count(*) from registered)::int as registered,
         exists (select from state) as discovering,
         (select count(*) from advanced)::int as advanced`);
