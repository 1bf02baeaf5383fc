// A process that runs only the agent runtime, for a test to kill with SIGKILL mid-reply.
import { AgentRuntime } from '../../src/agents-runtime/agent-runtime.ts';
import { createEchoAdapter } from '../../src/agents-runtime/echo.adapter.ts';
import { createMemoryBus } from '../../src/bus/event-bus.ts';
import { createOrm } from '../../src/platform/db/orm.ts';
import { createLogger } from '../../src/platform/logger.ts';

const orm = await createOrm({ kind: 'postgresql', url: process.env.CHILD_DATABASE_URL! });
const echo = createEchoAdapter();
const runtime = new AgentRuntime({
  orm,
  bus: createMemoryBus(),
  logger: createLogger({ level: 'silent', pretty: false }),
  options: { ...JSON.parse(process.env.CHILD_OPTIONS!) },
  adapters: { echo, 'openai-compatible': echo },
});
runtime.start();
process.stdout.write('started\n');
