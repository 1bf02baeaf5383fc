import { Migration } from '@mikro-orm/migrations';

/**
 * What the OutboxPublisher and resumable subscriptions need:
 * - a lease (claimed_until, claim_token) so a claim is committed before publishing starts: the
 *   attempt is counted even if the process dies mid-publish, and a dead publisher's rows become
 *   claimable again when the lease runs out;
 * - a per-project gapless sequence, assigned under the project row lock, so a project-wide stream
 *   has a commit-ordered position that a reconnecting client can resume from;
 * - a small index over unpublished rows, for "is there an earlier undelivered event in this
 *   aggregate?" — the probe that keeps per-aggregate order;
 *
 * There is deliberately no NOTIFY trigger: a NOTIFY inside the writing transaction takes a global
 * lock at commit that serialises all committing writers (docs/design-notes.md#notify-is-a-hint).
 * The application sends a coalesced NOTIFY after commit instead (src/outbox/outbox.wakeups.ts).
 */
export class Migration20261123010000_publisher extends Migration {
  override up(): void {
    this.addSql(`alter table event_outbox add column claimed_until timestamptz, add column claim_token uuid`);
    // A claim changes only unindexed columns; free space in each page lets PostgreSQL do it as a
    // HOT update (no index writes, less bloat on the hottest statement). Half-full pages leave room
    // to claim every row of a page, at about twice the disk per event (measured in
    // docs/design-notes.md#measurements-behind-some-choices).
    this.addSql(`alter table event_outbox set (fillfactor = 50)`);
    this.addSql(`alter table event_outbox add constraint event_outbox_claim_check check ((claimed_until is null) = (claim_token is null))`);

    this.addSql(`alter table project add column event_sequence integer not null default 0 check (event_sequence >= 0)`);
    this.addSql(`alter table event_outbox add column project_sequence integer`);
    this.addSql(`
      update event_outbox e set project_sequence = numbered.n
      from (select id, row_number() over (partition by project_id order by created_at, id) as n from event_outbox) numbered
      where numbered.id = e.id`);
    this.addSql(`
      update project p set event_sequence = coalesce((select max(project_sequence) from event_outbox e where e.project_id = p.id), 0)`);
    this.addSql(`alter table event_outbox alter column project_sequence set not null`);
    this.addSql(`alter table event_outbox add constraint event_outbox_project_sequence_check check (project_sequence > 0)`);
    this.addSql(`alter table event_outbox add constraint event_outbox_project_sequence_key unique (project_id, project_sequence)`);

    this.addSql(`create index event_outbox_unpublished_idx on event_outbox (aggregate_id, sequence) where status <> 'published'`);
  }

  override down(): void {
    this.addSql('drop index if exists event_outbox_unpublished_idx');
    this.addSql('alter table event_outbox drop constraint if exists event_outbox_project_sequence_key');
    this.addSql('alter table event_outbox drop column if exists project_sequence');
    this.addSql('alter table project drop column if exists event_sequence');
    this.addSql('alter table event_outbox reset (fillfactor)');
    this.addSql('alter table event_outbox drop constraint if exists event_outbox_claim_check');
    this.addSql('alter table event_outbox drop column if exists claimed_until, drop column if exists claim_token');
  }
}
