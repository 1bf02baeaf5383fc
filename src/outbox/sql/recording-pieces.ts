/**
 * The piece both statements that record a claimed batch start with (record-outcome.sql.ts and
 * record-and-discover.sql.ts). Fixed text: both statements stay constant and can be prepared.
 */

/**
 * The batch's rows still held under this claim's token, locked in key order (and the token checked
 * on each row's latest version) before the update joins them: the update writes only rows locked
 * here, so its plan cannot change the order (docs/design-notes.md#lock-order). `no key update` is
 * the lock the update takes anyway.
 */
export const HELD_UNDER_CLAIM = `held as materialized (
    select aggregate_id from outbox_delivery
    where aggregate_id = any(:aggregate_ids::uuid[]) and claim_token = :token::uuid
    order by aggregate_id
    for no key update
  )`;
