/**
 * The piece both statements that record a claimed batch start with (record-outcome.sql.ts and
 * record-discover-claim.sql.ts). Fixed text: both statements stay constant and can be prepared.
 */

/**
 * The batch's rows still held under this claim's token, locked in key order (and the token checked
 * on each row's latest version), each with its outcome from `outcomes`, a select of one row per
 * aggregate, and its `written_through` as locked. The update then writes only rows locked here, so its plan cannot change the order
 * (docs/design-notes.md#lock-order). `no key update` is the lock the update takes anyway.
 *
 * The outcomes are sorted and each row is looked up (and locked) by its key in a lateral join, a
 * plan no estimate can change. Looked up by `aggregate_id = any(...)` and joined to the outcomes
 * after, a generic plan (which believes the lookup finds a row, or ten) rescanned the outcomes
 * once per row, 500 × 500 rows for a batch of 500 aggregates: recording took 80-150 ms, and a
 * drain over 100,000 sessions spent 90 % of its time there.
 */
export function heldUnderClaim(outcomes: string): string {
  return `held as materialized (
    select o.*, d.written_through from (${outcomes} order by aggregate_id) o
    cross join lateral (
      select d.written_through from outbox_delivery d
      where d.aggregate_id = o.aggregate_id and d.claim_token = :token::uuid
      for no key update of d
    ) d
  )`;
}
