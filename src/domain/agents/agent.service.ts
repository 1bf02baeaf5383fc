import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { Em } from '../../platform/db/orm.ts';
import { createdAtCursor, createdAtKey, findPage, keysetOrder, keysetWhere, type Page, type PageRequest } from '../../platform/db/pagination.ts';
import { conflict } from '../../platform/errors.ts';
import { requireOwner } from '../projects/project.service.ts';
import { requireId, requireText } from '../../platform/validation.ts';
import { AgentSchema, type IAgent } from './agent.entity.ts';

export const MAX_AGENT_NAME_LENGTH = 100;

/** The agents with these ids in projects the viewer is a member of (for `node`). */
export function findVisibleAgents(em: Em, userId: string, ids: string[]): Promise<IAgent[]> {
  return em.find(AgentSchema, { id: { $in: ids }, project: { members: { userId } } });
}

export function listAgents(em: Em, projectId: string, request: PageRequest): Promise<Page<IAgent>> {
  return findPage(request, {
    cursor: createdAtCursor,
    fetch: ({ from, backward, limit }) => em.find(AgentSchema, { project: projectId, ...keysetWhere(from, backward) }, { orderBy: keysetOrder(backward), limit }),
    keyOf: createdAtKey,
  });
}

export async function createAgent(em: Em, viewerId: string, input: { projectId: string; name: string }): Promise<IAgent> {
  const projectId = requireId('projectId', input.projectId);
  const name = requireText('name', input.name, MAX_AGENT_NAME_LENGTH).trim();
  const duplicate = () => conflict(`An agent named "${name}" already exists in this project`);
  try {
    return await em.transactional(async (tx) => {
      await requireOwner(tx, viewerId, projectId);
      if (await tx.count(AgentSchema, { project: projectId, name })) throw duplicate();
      return tx.create(AgentSchema, { project: projectId, name });
    });
  } catch (error) {
    if (error instanceof UniqueConstraintViolationException) throw duplicate();
    throw error;
  }
}
