import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { WorkerSpaceSchema } from '../agents/worker-space.entity.ts';
import { dbOf } from '../../platform/db/database.ts';
import type { Em } from '../../platform/db/orm.ts';
import { createdAtCursor, createdAtKey, cursorCodec, cursorKeys, findPage, keysetOrder, keysetWhere, type Page, type PageRequest } from '../../platform/db/pagination.ts';
import { conflict, forbidden, notFound } from '../../platform/errors.ts';
import { MAX_USER_ID_LENGTH, requireId, requireText, requireUserId } from '../../platform/validation.ts';
import { ProjectMemberSchema, type IProjectMember, type ProjectRole } from './project-member.entity.ts';
import { ProjectSchema, type IProject } from './project.entity.ts';
import { findMemberRole, memberList, memberListVersion, type MemberList } from './project.repository.ts';

export const MAX_PROJECT_NAME_LENGTH = 200;

/**
 * The viewer's role in a project, or NOT_FOUND: a project the viewer is not in looks the same as
 * one that does not exist.
 */
export async function requireMembership(em: Em, userId: string, projectId: string): Promise<{ role: ProjectRole }> {
  const role = await findMemberRole(em, projectId, userId);
  if (!role) throw notFound('Project', projectId);
  return { role };
}

/** Who is a member of a project now, and the list's version (the subscription servers' shared membership check). */
export function projectMemberList(em: Em, projectId: string): Promise<MemberList> {
  return memberList(dbOf(em), projectId);
}

/** The version of a project's member list: unchanged means nobody joined, left or changed role since. */
export function projectMemberListVersion(em: Em, projectId: string): Promise<string> {
  return memberListVersion(dbOf(em), projectId);
}

export async function requireOwner(em: Em, userId: string, projectId: string): Promise<{ role: ProjectRole }> {
  const membership = await requireMembership(em, userId, projectId);
  if (membership.role !== 'owner') throw forbidden('Only a project owner can do this');
  return membership;
}

export async function getProject(em: Em, userId: string, projectIdInput: string): Promise<IProject> {
  const projectId = requireId('id', projectIdInput);
  const membership = await em.findOne(ProjectMemberSchema, { project: projectId, userId }, { populate: ['project'] });
  if (!membership) throw notFound('Project', projectId);
  return membership.project;
}

/** The projects with these ids that the viewer is a member of (for `node`). */
export function findVisibleProjects(em: Em, userId: string, ids: string[]): Promise<IProject[]> {
  return em.find(ProjectSchema, { id: { $in: ids }, members: { userId } });
}

export function listMyProjects(em: Em, userId: string, request: PageRequest): Promise<Page<IProject>> {
  return findPage(request, {
    cursor: createdAtCursor,
    fetch: ({ from, backward, limit }) => em.find(ProjectSchema, { members: { userId }, ...keysetWhere(from, backward) }, { orderBy: keysetOrder(backward), limit }),
    keyOf: createdAtKey,
  });
}

/** Members are keyed by (joined at, user id). */
const memberCursor = cursorCodec([cursorKeys.instant, cursorKeys.text(MAX_USER_ID_LENGTH)]);

export function listMembers(em: Em, projectId: string, request: PageRequest): Promise<Page<IProjectMember>> {
  return findPage(request, {
    cursor: memberCursor,
    fetch: ({ from, backward, limit }) =>
      em.find(ProjectMemberSchema, { project: projectId, ...keysetWhere(from, backward, 'userId') }, { orderBy: keysetOrder(backward, 'userId'), limit }),
    keyOf: (member): [Date, string] => [member.createdAt, member.userId],
  });
}

/** Adds a member and the worker space every member has in a project, in one transaction. */
function addMembership(em: Em, projectId: string, userId: string, role: ProjectRole): IProjectMember {
  const member = em.create(ProjectMemberSchema, { project: projectId, userId, role });
  em.create(WorkerSpaceSchema, { project: projectId, userId, activeAgent: null, eventSequence: 0 });
  return member;
}

export async function createProject(em: Em, userId: string, input: { name: string }): Promise<IProject> {
  const name = requireText('name', input.name, MAX_PROJECT_NAME_LENGTH).trim();
  return em.transactional(async (tx) => {
    const project = tx.create(ProjectSchema, { name });
    addMembership(tx, project.id, userId, 'owner');
    return project;
  });
}

export async function addProjectMember(
  em: Em,
  viewerId: string,
  input: { projectId: string; userId: string; role?: ProjectRole | null },
): Promise<IProjectMember> {
  const projectId = requireId('projectId', input.projectId);
  const userId = requireUserId('userId', input.userId);
  const alreadyMember = () => conflict(`User ${userId} is already a member of this project`);
  try {
    return await em.transactional(async (tx) => {
      await requireOwner(tx, viewerId, projectId);
      if (await tx.count(ProjectMemberSchema, { project: projectId, userId })) throw alreadyMember();
      return addMembership(tx, projectId, userId, input.role ?? 'member');
    });
  } catch (error) {
    // Two owners adding the same user at once: the loser hits the primary key.
    if (error instanceof UniqueConstraintViolationException) throw alreadyMember();
    throw error;
  }
}
