import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { Em } from '../../platform/db/orm.ts';
import { createdAtCursor, createdAtKey, findPage, keysetOrder, keysetWhere, type Page, type PageRequest } from '../../platform/db/pagination.ts';
import { conflict } from '../../platform/errors.ts';
import { requireOwner } from '../projects/project.service.ts';
import { requireId, requireText } from '../../platform/validation.ts';
import { AgentSchema, type IAgent } from './agent.entity.ts';
import { notFound } from '../../platform/errors.ts';
import { validateAgentSettings, type AgentKind } from './agent-settings.ts';

/** Settings as a client sends them; validated for the agent's kind by validateAgentSettings. */
export type AgentSettingsInput = Record<string, unknown>;

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

export async function createAgent(
  em: Em,
  viewerId: string,
  input: { projectId: string; name: string; kind?: AgentKind | null; settings?: AgentSettingsInput | null },
): Promise<IAgent> {
  const projectId = requireId('projectId', input.projectId);
  const name = requireText('name', input.name, MAX_AGENT_NAME_LENGTH).trim();
  const kind = input.kind ?? 'echo';
  const settings = validateAgentSettings(kind, input.settings);
  const duplicate = () => conflict(`An agent named "${name}" already exists in this project`);
  try {
    return await em.transactional(async (tx) => {
      await requireOwner(tx, viewerId, projectId);
      if (await tx.count(AgentSchema, { project: projectId, name })) throw duplicate();
      return tx.create(AgentSchema, { project: projectId, name, kind, settings });
    });
  } catch (error) {
    if (error instanceof UniqueConstraintViolationException) throw duplicate();
    throw error;
  }
}

/**
 * Owners only. Changes an agent's name, kind or settings; settings not given are kept, and are
 * checked again against the (new) kind, so an agent never holds settings its kind cannot use.
 * Replies already being written finish with the settings they started with.
 */
export async function updateAgent(
  em: Em,
  viewerId: string,
  input: { agentId: string; name?: string | null; kind?: AgentKind | null; settings?: AgentSettingsInput | null },
): Promise<IAgent> {
  const agentId = requireId('agentId', input.agentId);
  const name = input.name == null ? null : requireText('name', input.name, MAX_AGENT_NAME_LENGTH).trim();
  const duplicate = () => conflict(`An agent named "${name}" already exists in this project`);
  try {
    return await em.transactional(async (tx) => {
      const agent = await tx.findOne(AgentSchema, { id: agentId, project: { members: { userId: viewerId } } });
      if (!agent) throw notFound('Agent', agentId);
      await requireOwner(tx, viewerId, agent.project.id);
      const kind = input.kind ?? (agent.kind as AgentKind);
      agent.settings = validateAgentSettings(kind, input.settings ?? (agent.settings as AgentSettingsInput));
      agent.kind = kind;
      if (name !== null && name !== agent.name) {
        if (await tx.count(AgentSchema, { project: agent.project.id, name })) throw duplicate();
        agent.name = name;
      }
      return agent;
    });
  } catch (error) {
    if (error instanceof UniqueConstraintViolationException) throw duplicate();
    throw error;
  }
}
