import type { TestApp } from './app.ts';

/** A project owned by `owner`, with `members`, two agents and one session, made through the API. */
export async function createProjectFixture(t: TestApp, owner: string, members: string[] = []) {
  const project = await t.gql<{ createProject: { id: string } }>(
    'mutation($name: String!) { createProject(input: { name: $name }) { id } }',
    { name: `Project of ${owner}` },
    { as: owner },
  );
  const projectId = project.data!.createProject.id;
  for (const userId of members) {
    await t.gql('mutation($p: ID!, $u: ID!) { addProjectMember(input: { projectId: $p, userId: $u }) { userId } }', { p: projectId, u: userId }, { as: owner });
  }
  const agentIds: string[] = [];
  for (const name of ['Planner', 'Coder']) {
    const agent = await t.gql<{ createAgent: { id: string } }>(
      'mutation($p: ID!, $n: String!) { createAgent(input: { projectId: $p, name: $n }) { id } }',
      { p: projectId, n: name },
      { as: owner },
    );
    agentIds.push(agent.data!.createAgent.id);
  }
  const session = await t.gql<{ createChatSession: { id: string } }>(
    'mutation($p: ID!) { createChatSession(input: { projectId: $p, title: "General" }) { id } }',
    { p: projectId },
    { as: owner },
  );
  return { projectId, agentIds: agentIds as [string, string], sessionId: session.data!.createChatSession.id };
}

export const SEND_MESSAGE = `
  mutation($sessionId: ID!, $body: String!) {
    sendMessage(input: { sessionId: $sessionId, body: $body }) { eventId sequence message { id body role authorUserId } }
  }`;

export const SWITCH_AGENT = `
  mutation($projectId: ID!, $agentId: ID!) {
    switchAgent(input: { projectId: $projectId, agentId: $agentId }) {
      switched eventId sequence workerSpace { id activeAgent { id name } }
    }
  }`;
