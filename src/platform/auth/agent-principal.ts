/**
 * Who an agent credential authenticates: one agent, in one project. It is never a `Viewer`: every
 * field that asks for a user refuses it, and it can call only the fields made for agent runtimes
 * (docs/agents.md#external-agent-runtimes).
 */
export interface AgentPrincipal {
  agentId: string;
  projectId: string;
  credentialId: string;
}

/** Checks an agent credential's secret; throws UNAUTHENTICATED for an unknown, revoked or malformed one. */
export type AgentCredentialVerifier = (secret: string) => Promise<AgentPrincipal>;

/** Agent credentials start with this, so a bearer token is told apart from a JWT without parsing it. */
export const AGENT_CREDENTIAL_PREFIX = 'agc_';

export const isAgentCredential = (token: string) => token.startsWith(AGENT_CREDENTIAL_PREFIX);
