import { Migration } from '@mikro-orm/migrations';

/**
 * A version of each project's member list, raised in the same transaction as any change to
 * `project_member` (by statement triggers, so raw SQL and cascades count too). Subscription
 * servers re-check membership by reading this one row, and read the member list again only when
 * it moved (docs/design-notes.md#authorisation-only-at-subscribe-time).
 *
 * A table of its own rather than a column of `project`: every write to a project locks its row for
 * the event counter, and a membership change should not queue behind them or they behind it.
 */
export class Migration20261201140000_member_list_version extends Migration {
  override up(): void {
    this.addSql(`
      create table project_member_version (
        project_id uuid primary key references project (id) on delete cascade,
        version bigint not null
      )`);
    this.addSql(`
      create function project_member_version_raise(projects uuid[]) returns void language sql as $$
        insert into project_member_version as v (project_id, version)
        select id, 1 from project
        -- A project being deleted takes its members with it: it is no longer found, nothing to version.
        where id = any(projects)
        order by id
        on conflict (project_id) do update set version = v.version + 1
      $$`);
    this.addSql(`
      create function project_member_version_bump() returns trigger language plpgsql as $$
      begin
        -- Only the transition tables this trigger declares exist, hence one branch per kind.
        if tg_op = 'INSERT' then
          perform project_member_version_raise(array(select distinct project_id from new_rows));
        elsif tg_op = 'DELETE' then
          perform project_member_version_raise(array(select distinct project_id from old_rows));
        else
          perform project_member_version_raise(array(select project_id from new_rows union select project_id from old_rows));
        end if;
        return null;
      end
      $$`);
    // Transition tables: one trigger per kind of change, all running the same function.
    this.addSql(`
      create trigger project_member_version_insert after insert on project_member
      referencing new table as new_rows for each statement execute function project_member_version_bump()`);
    this.addSql(`
      create trigger project_member_version_update after update on project_member
      referencing new table as new_rows old table as old_rows for each statement execute function project_member_version_bump()`);
    this.addSql(`
      create trigger project_member_version_delete after delete on project_member
      referencing old table as old_rows for each statement execute function project_member_version_bump()`);
  }

  override down(): void {
    this.addSql(`drop trigger if exists project_member_version_insert on project_member`);
    this.addSql(`drop trigger if exists project_member_version_update on project_member`);
    this.addSql(`drop trigger if exists project_member_version_delete on project_member`);
    this.addSql(`drop function if exists project_member_version_bump()`);
    this.addSql(`drop function if exists project_member_version_raise(uuid[])`);
    this.addSql(`drop table if exists project_member_version`);
  }
}
