import { createAgent } from '../agents/agent.service.ts';
import { switchAgent } from '../agents/worker-space.service.ts';
import { ChatSessionSchema } from '../chat/chat-session.entity.ts';
import { createChatSession } from '../chat/chat.service.ts';
import { ProjectSchema } from '../projects/project.entity.ts';
import { addProjectMember, createProject } from '../projects/project.service.ts';
import type { Em } from '../../platform/db/orm.ts';

/** The demo users `npm start` prints tokens for. Their ids are what a token's `sub` carries. */
export const DEMO_USERS = [
  { userId: 'demo-alice', role: 'owner' },
  { userId: 'demo-bob', role: 'member' },
] as const;

const DEMO_SESSION_TITLE = 'Welcome';

/**
 * Gives an empty database something to click through in GraphiQL: one project owned by Alice with
 * Bob as a member, two agents and one session. Does nothing when any project exists. Goes through
 * the same services as the API, so the demo data obeys every rule real data does. Returns the demo
 * session (seeded now or before) for GraphiQL's example operations; null when there is none.
 */
export async function seedDemo(em: Em): Promise<{ seeded: boolean; sessionId: string | null }> {
  if ((await em.count(ProjectSchema, {})) > 0) {
    const session = await em.findOne(
      ChatSessionSchema,
      { title: DEMO_SESSION_TITLE, createdByUserId: DEMO_USERS[0].userId },
      { orderBy: { createdAt: 'asc' } },
    );
    return { seeded: false, sessionId: session?.id ?? null };
  }
  const [alice, bob] = DEMO_USERS;
  const project = await createProject(em, alice.userId, { name: 'Demo project' });
  await addProjectMember(em, alice.userId, { projectId: project.id, userId: bob.userId, role: 'member' });
  const planner = await createAgent(em, alice.userId, { projectId: project.id, name: 'Planner' });
  await createAgent(em, alice.userId, { projectId: project.id, name: 'Coder' });
  await switchAgent(em, alice.userId, { projectId: project.id, agentId: planner.id });
  const session = await createChatSession(em, alice.userId, { projectId: project.id, title: DEMO_SESSION_TITLE });
  return { seeded: true, sessionId: session.id };
}
