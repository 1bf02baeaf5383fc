import pg from 'pg';
import { createBenchDatabase } from './support.ts';
import { insertEvents, seedMessage, type SeedEvent } from '../test/support/outbox-seed.ts';
import { createOrm } from '../src/platform/db/orm.ts';
import { discoverNewEvents } from '../src/outbox/outbox.sql.ts';
import { claimBatch } from '../src/outbox/sql/claim-batch.sql.ts';
const database = await createBenchDatabase('chat_outbox_probe');
try {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  const projectId = crypto.randomUUID();
  const sessions = Array.from({ length: 1000 }, () => crypto.randomUUID());
  const events: SeedEvent[] = [];
  for (let sequence = 1; sequence <= 20; sequence++) sessions.forEach((s, i) => events.push({ event: seedMessage(projectId, s), sequence, projectSequence: (sequence - 1) * 1000 + i + 1 }));
  await insertEvents(client, events);
  await client.query('analyze event_outbox');
  const orm = await createOrm({ kind: 'postgresql', url: database.url });
  console.time('discover'); await discoverNewEvents(orm); console.timeEnd('discover');
  const q = claimBatch.bind({ limit: 500, lease_seconds: 30, token: crypto.randomUUID() });
  await client.query('begin');
  const plan = await client.query(`explain (analyze, buffers) ${q.sql}`, [...q.parameters]);
  console.log(plan.rows.map((r) => r['QUERY PLAN']).join('\n'));
  await client.query('rollback');
  await orm.close();
  await client.end();
} finally {
  await database.drop();
}
