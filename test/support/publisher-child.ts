// A publisher in its own process whose bus never confirms: it claims a batch and hangs in
// publish, so the parent test can SIGKILL it mid-batch. Not used outside tests.
import { createOrm } from '../../src/platform/db/orm.ts';
import { createLogger } from '../../src/platform/logger.ts';
import { OutboxPublisher } from '../../src/outbox/outbox.publisher.ts';
import type { EventBus } from '../../src/bus/event-bus.ts';

const orm = await createOrm({ kind: 'postgresql', url: process.env.CHILD_DATABASE_URL! });
const hangingBus: EventBus = {
  publish: () => new Promise(() => {}),
  subscribeProject: async () => () => {},
  onResubscribed: () => () => {},
  publishActivity: () => {},
  subscribeActivity: async () => () => {},
  close: async () => {},
};
const publisher = new OutboxPublisher({
  orm,
  bus: hangingBus,
  logger: createLogger({ level: 'silent', pretty: false }),
  options: { batchSize: 100, pollIntervalMs: 1000, maxAttempts: 5, backoffBaseMs: 10, backoffMaxMs: 10, claimLeaseMs: Number(process.env.CHILD_LEASE_MS) },
});
console.log('ready');
await publisher.runOnce(); // never returns: killed while publishing
