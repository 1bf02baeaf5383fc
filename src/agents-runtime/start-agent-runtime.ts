import type { EventBus } from '../bus/event-bus.ts';
import type { Clock } from '../platform/clock.ts';
import type { AppConfig } from '../platform/config.ts';
import type { Orm } from '../platform/db/orm.ts';
import type { Logger } from '../platform/logger.ts';
import type { AgentMetrics } from '../platform/observability/metrics.ts';
import { wakeOnLocalCommit } from '../outbox/outbox.wakeups.ts';
import { AgentRuntime } from './agent-runtime.ts';
import { createEchoAdapter } from './echo.adapter.ts';
import { createOpenAiCompatibleAdapter } from './openai-compatible.adapter.ts';

/**
 * The runtime as the app runs it: every kind's adapter, its metrics on the app's, woken
 * by this process's commits (a commit elsewhere is found by polling).
 */
export function startAgentRuntime(deps: { orm: Orm; bus: EventBus; logger: Logger; config: AppConfig['agents']; metrics: AgentMetrics | null; clock?: Clock | undefined }): AgentRuntime {
  const { config } = deps;
  const runtime = new AgentRuntime({
    orm: deps.orm,
    bus: deps.bus,
    logger: deps.logger.child({ component: 'agents' }),
    options: config,
    adapters: {
      echo: createEchoAdapter(deps.clock ? { clock: deps.clock } : {}),
      'openai-compatible': createOpenAiCompatibleAdapter({ baseUrl: config.openai.baseUrl, apiKey: config.openai.apiKey }),
    },
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    ...(deps.clock ? { clock: deps.clock } : {}),
  });
  wakeOnLocalCommit(deps.orm, () => runtime.nudge());
  runtime.start();
  return runtime;
}
