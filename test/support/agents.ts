import { AgentRuntime, type AgentRuntimeOptions } from '../../src/agents-runtime/agent-runtime.ts';
import type { AgentAdapter } from '../../src/agents-runtime/agent-adapter.ts';
import type { Metrics } from '../../src/platform/observability/metrics.ts';
import { createEchoAdapter } from '../../src/agents-runtime/echo.adapter.ts';
import { createMemoryBus, type EventBus } from '../../src/bus/event-bus.ts';
import { createAgent } from '../../src/domain/agents/agent.service.ts';
import { switchAgent } from '../../src/domain/agents/worker-space.service.ts';
import { createChatSession, sendMessage } from '../../src/domain/chat/chat.service.ts';
import { createProject } from '../../src/domain/projects/project.service.ts';
import { forkEm, type Orm } from '../../src/platform/db/orm.ts';
import { createLogger } from '../../src/platform/logger.ts';

export const FAST_RUNTIME: AgentRuntimeOptions = {
  concurrency: 8,
  pollIntervalMs: 50,
  maxAttempts: 3,
  backoffBaseMs: 20,
  backoffMaxMs: 100,
  leaseMs: 5_000,
  replyTimeoutMs: 10_000,
  contextMessages: 20,
  contextMaxChars: 16_000,
};

/** A runtime on `orm` with the echo adapter unless told otherwise. Stop it. */
export function testRuntime(orm: Orm, options: { adapters?: Partial<Record<'echo' | 'openai-compatible', AgentAdapter>>; bus?: EventBus; runtime?: Partial<AgentRuntimeOptions>; metrics?: Metrics } = {}) {
  const echo = createEchoAdapter();
  return new AgentRuntime({
    orm,
    bus: options.bus ?? createMemoryBus(),
    logger: createLogger({ level: 'silent', pretty: false }),
    options: { ...FAST_RUNTIME, ...options.runtime },
    adapters: { echo, 'openai-compatible': echo, ...options.adapters },
    ...(options.metrics ? { metrics: options.metrics.agents } : {}),
  });
}

/** A project of `owner` with one agent made active for them and one session, through the services. */
export async function agentFixture(orm: Orm, owner = 'alice', agentName = 'Echo') {
  const em = forkEm(orm);
  const project = await createProject(em, owner, { name: `Agents of ${owner} ${Math.random()}` });
  const agent = await createAgent(forkEm(orm), owner, { projectId: project.id, name: agentName });
  await switchAgent(forkEm(orm), owner, { projectId: project.id, agentId: agent.id });
  const session = await createChatSession(forkEm(orm), owner, { projectId: project.id, title: 'Talk' });
  return { projectId: project.id, agentId: agent.id, sessionId: session.id, owner };
}

export const say = (orm: Orm, userId: string, sessionId: string, body: string) => sendMessage(forkEm(orm), userId, { sessionId, body });
