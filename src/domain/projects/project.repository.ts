import type { Db } from '../../platform/db/database.ts';
import type { ProjectRole } from './project-member.entity.ts';

/**
 * The viewer's role in a project, or null. Every project-scoped read and write starts here, so it
 * is one indexed lookup in the caller's transaction rather than an entity load through the unit of
 * work (docs/design-notes.md#measurements-behind-some-choices).
 */
export async function findMemberRole(db: Db, projectId: string, userId: string): Promise<ProjectRole | null> {
  const row = await db.selectFrom('project_member').select('role').where('project_id', '=', projectId).where('user_id', '=', userId).executeTakeFirst();
  return row?.role ?? null;
}

/** The user ids of a project's members: one indexed read that answers for every subscriber of the project. */
export async function memberUserIds(db: Db, projectId: string): Promise<Set<string>> {
  const rows = await db.selectFrom('project_member').select('user_id').where('project_id', '=', projectId).execute();
  return new Set(rows.map((row) => row.user_id));
}
