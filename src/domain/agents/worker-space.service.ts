import { LockMode } from '@mikro-orm/core';
import type { Em } from '../../platform/db/orm.ts';
import { notFound } from '../../platform/errors.ts';
import { agentSwitched } from '../../events/domain-event.ts';
import { recordEvent } from '../../outbox/outbox.writer.ts';
import { requireMembership } from '../projects/project.service.ts';
import { requireId } from '../../platform/validation.ts';
import { AgentSchema } from './agent.entity.ts';
import { WorkerSpaceSchema, type IWorkerSpace } from './worker-space.entity.ts';

/** The viewer's worker space in a project they are a member of (NOT_FOUND otherwise). */
/**
 * The worker spaces with these ids that are the viewer's own, in projects they are still a member
 * of (for `node`): like `workerSpace(projectId)`, a member sees only their own.
 */
export function findVisibleWorkerSpaces(em: Em, userId: string, ids: string[]): Promise<IWorkerSpace[]> {
  return em.find(WorkerSpaceSchema, { id: { $in: ids }, userId, project: { members: { userId } } });
}

export async function getMyWorkerSpace(em: Em, userId: string, projectIdInput: string): Promise<IWorkerSpace> {
  const projectId = requireId('projectId', projectIdInput);
  await requireMembership(em, userId, projectId);
  const space = await em.findOne(WorkerSpaceSchema, { project: projectId, userId });
  if (!space) throw notFound('WorkerSpace for project', projectId);
  return space;
}

export interface SwitchAgentResult {
  workerSpace: IWorkerSpace;
  /** The `agent_switched` event, or null when the agent was already active (a no-op). */
  event: { id: string; sequence: number } | null;
}

/**
 * Makes `agentId` the active agent of the viewer's worker space and records `agent_switched` in the
 * same transaction. The worker space row is locked first so two concurrent switches see each
 * other's result: each event's `fromAgentId` is the agent the previous switch left active.
 */
export async function switchAgent(
  em: Em,
  userId: string,
  input: { projectId: string; agentId: string },
): Promise<SwitchAgentResult> {
  const projectId = requireId('projectId', input.projectId);
  const agentId = requireId('agentId', input.agentId);
  return em.transactional(async (tx) => {
    await requireMembership(tx, userId, projectId);
    // An agent of another project is, from here, an agent that does not exist.
    const agent = await tx.findOne(AgentSchema, { id: agentId, project: projectId });
    if (!agent) throw notFound('Agent', agentId);
    // Lock without joining the agent: after waiting for a concurrent switch, PostgreSQL re-reads
    // the locked row but not the rows joined to it, so a joined agent would be the stale one.
    const space = await tx.findOne(
      WorkerSpaceSchema,
      { project: projectId, userId },
      { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true },
    );
    if (!space) throw notFound('WorkerSpace for project', projectId);

    const from = space.activeAgent ? await tx.findOne(AgentSchema, { id: space.activeAgent.id }) : null;
    if (from?.id === agent.id) return { workerSpace: space, event: null };

    space.activeAgent = agent;
    const event = await recordEvent(
      tx,
      agentSwitched(projectId, userId, {
        workerSpaceId: space.id,
        fromAgentId: from?.id ?? null,
        fromAgentName: from?.name ?? null,
        toAgentId: agent.id,
        toAgentName: agent.name,
      }),
    );
    return { workerSpace: space, event: { id: event.id, sequence: event.sequence } };
  });
}
