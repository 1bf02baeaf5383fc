import { Migration } from '@mikro-orm/migrations';

/**
 * More free space on each page of `outbox_delivery` (fillfactor 80 → 40), so that a claim's update
 * stays on the row's own page as a HOT update: a claim changes no indexed column (its attempt,
 * lease, token and run), but with the page full it moved the row and added an entry to each of
 * the table's three indexes. The table holds one row per aggregate, so the price is a few pages.
 *
 * Pages already written keep their rows as they are until they are rewritten (VACUUM FULL, or the
 * rows' own updates moving them); nothing here locks or rewrites the table.
 */
export class Migration20261202010000_delivery_fillfactor extends Migration {
  override up(): void {
    this.addSql(`alter table outbox_delivery set (fillfactor = 40)`);
  }

  override down(): void {
    this.addSql(`alter table outbox_delivery set (fillfactor = 80)`);
  }
}
