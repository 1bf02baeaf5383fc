import { dbOf, type Db } from '../../platform/db/database.ts';
import { runHot, type Em } from '../../platform/db/orm.ts';
import type { ProjectRole } from './project-member.entity.ts';

/**
 * The viewer's role in a project, or null. Every project-scoped read and write starts here, so it
 * is one indexed lookup in the caller's transaction rather than an entity load through the unit of
 * work (docs/design-notes.md#measurements-behind-some-choices), and outside a transaction a
 * prepared statement (runHot).
 */
export async function findMemberRole(em: Em, projectId: string, userId: string): Promise<ProjectRole | null> {
  const [row] = await runHot(em, dbOf(em).selectFrom('project_member').select('role').where('project_id', '=', projectId).where('user_id', '=', userId).compile());
  return row?.role ?? null;
}

/** A project's members as of one moment, and the version of the list they were read at. */
export interface MemberList {
  userIds: Set<string>;
  /** `project_member_version.version` ('0' before the first change); raised with every change to the list. */
  version: string;
}

/** The version of a project's member list: one row, whatever the number of members. */
export async function memberListVersion(db: Db, projectId: string): Promise<string> {
  const row = await db.selectFrom('project_member_version').select('version').where('project_id', '=', projectId).executeTakeFirst();
  return row?.version ?? '0';
}

/**
 * The user ids of a project's members and the list's version, in one statement (so one snapshot:
 * the version is the one these members are at). One read answers for every subscriber of the project.
 */
export async function memberList(db: Db, projectId: string): Promise<MemberList> {
  const rows = await db
    .selectFrom('project')
    .leftJoin('project_member', 'project_member.project_id', 'project.id')
    .leftJoin('project_member_version', 'project_member_version.project_id', 'project.id')
    .select(['project_member.user_id', 'project_member_version.version'])
    .where('project.id', '=', projectId)
    .execute();
  return {
    userIds: new Set(rows.flatMap((row) => (row.user_id === null ? [] : [row.user_id]))),
    version: rows[0]?.version ?? '0',
  };
}
