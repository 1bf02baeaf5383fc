import { Migration } from '@mikro-orm/migrations';

/**
 * The snapshot of the relay's last registering read, beside its transaction-id watermark.
 *
 * The watermark only moves up to the oldest transaction still running, so while one transaction
 * anywhere in the cluster stays open (a long report, a bulk load, an idle session in a
 * transaction), every read registered again everything committed since it began: at a trickle,
 * a cost per cycle that grows for as long as that transaction lasts. With the last read's
 * snapshot, a read skips what that snapshot already saw (every transaction below its xmax that was
 * not running then) and reads only transactions from its xmax on and those it saw running.
 *
 * Null (as this leaves every existing row, and what to set when moving the watermark by hand):
 * the next read starts from the watermark as before.
 */
export class Migration20261201150000_relay_seen_snapshot extends Migration {
  override up(): void {
    this.addSql(`alter table outbox_relay_state add column seen_snapshot pg_snapshot`);
  }

  override down(): void {
    this.addSql(`alter table outbox_relay_state drop column seen_snapshot`);
  }
}
