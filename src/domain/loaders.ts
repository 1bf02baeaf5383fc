import DataLoader from 'dataloader';
import { AgentSchema, type IAgent } from './agents/agent.entity.ts';
import { ChatSessionSchema, type IChatSession } from './chat/chat-session.entity.ts';
import type { Em } from '../platform/db/orm.ts';
import { ProjectMemberSchema, type IProjectMember } from './projects/project-member.entity.ts';
import { ProjectSchema, type IProject } from './projects/project.entity.ts';

/**
 * Per-request batching for fields that would otherwise query once per list item. Built with the
 * request's EntityManager and thrown away with it, so nothing is cached across requests.
 */
export interface Loaders {
  projectById: DataLoader<string, IProject | null>;
  sessionById: DataLoader<string, IChatSession | null>;
  agentById: DataLoader<string, IAgent | null>;
  /** Key: `${projectId}:${userId}`. */
  membership: DataLoader<string, IProjectMember | null>;
}

function byId<T extends { id: string }>(load: (ids: string[]) => Promise<T[]>) {
  return new DataLoader<string, T | null>(async (ids) => {
    const found = new Map((await load([...ids])).map((row) => [row.id, row]));
    return ids.map((id) => found.get(id) ?? null);
  });
}

/**
 * The resolver of a relation that exists as long as its parent does (its row is deleted with the
 * parent's, so a miss cannot happen within one request), loaded through the request's DataLoaders.
 */
export function related<Parent, T>(load: (loaders: Loaders, parent: Parent) => Promise<T | null>) {
  return async (parent: Parent, _args: unknown, ctx: { loaders: Loaders }): Promise<T> => (await load(ctx.loaders, parent))!;
}

export const membershipKey = (projectId: string, userId: string) => `${projectId}:${userId}`;

export function createLoaders(em: Em): Loaders {
  return {
    projectById: byId((ids) => em.find(ProjectSchema, { id: { $in: ids } })),
    sessionById: byId((ids) => em.find(ChatSessionSchema, { id: { $in: ids } })),
    agentById: byId((ids) => em.find(AgentSchema, { id: { $in: ids } })),
    membership: new DataLoader<string, IProjectMember | null>(async (keys) => {
      const pairs = keys.map((key) => {
        const at = key.indexOf(':');
        return { project: key.slice(0, at), userId: key.slice(at + 1) };
      });
      const rows = await em.find(ProjectMemberSchema, { $or: pairs });
      const found = new Map(rows.map((row) => [membershipKey(row.project.id, row.userId), row]));
      return keys.map((key) => found.get(key) ?? null);
    }),
  };
}
