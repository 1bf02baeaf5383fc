// npm run outbox -- <command>: operator commands for the outbox, against DATABASE_URL (or the
// embedded database). Failed events are put back with their original eventId.
//   npm run outbox -- status [--project <id>]
//   npm run outbox -- reprocess (--event <id> ... | --project <id> | --all)
import { parseArgs } from 'node:util';
import { loadConfigOrExit } from '../src/platform/config.ts';
import { dbOf } from '../src/platform/db/database.ts';
import { createOrm, forkEm } from '../src/platform/db/orm.ts';
import { isUuid } from '../src/platform/db/ids.ts';
import { createLogger } from '../src/platform/logger.ts';
import { deliveryCounts } from '../src/outbox/outbox-delivery.repository.ts';
import { reprocessFailedEvents } from '../src/outbox/outbox-reprocessing.ts';

const usage = 'usage: npm run outbox -- status [--project <id>] | reprocess (--event <id> ... | --project <id> | --all)';
const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { project: { type: 'string' }, event: { type: 'string', multiple: true }, all: { type: 'boolean' } },
});
const [command] = positionals;
for (const id of [values.project, ...(values.event ?? [])]) {
  if (id !== undefined && !isUuid(id)) {
    console.error(`not an id: ${id}\n${usage}`);
    process.exit(2);
  }
}
if (command !== 'status' && command !== 'reprocess') {
  console.error(usage);
  process.exit(2);
}
// Requeueing every failed event of every project is a big step: it has to be asked for by name.
if (command === 'reprocess' && !values.project && !values.event?.length && !values.all) {
  console.error(`reprocess needs --event, --project, or --all to requeue every failed event\n${usage}`);
  process.exit(2);
}

// It neither serves nor signs tokens, so it needs no JWT setting.
const config = loadConfigOrExit(process.env, { requireAuth: false });
const orm = await createOrm(config.database);
try {
  if (command === 'status') {
    const db = dbOf(forkEm(orm));
    // The same query as the outboxStatus GraphQL query, over every project unless --project.
    const counts = await deliveryCounts(db, values.project ?? null);
    if (counts.pending === 0 && counts.failed === 0) console.log('no pending or failed events');
    for (const [status, count, oldest] of [
      ['failed', counts.failed, counts.oldestFailedAt],
      ['pending', counts.pending, counts.oldestPendingAt],
    ] as const) {
      if (count > 0) console.log(`${status}: ${count} (oldest ${oldest?.toISOString() ?? '-'})`);
    }
  } else {
    const logger = createLogger({ level: config.logLevel, pretty: false, destination: process.stderr });
    // The same service as the reprocessFailedEvents mutation: publishers are woken after commit.
    const rows = await reprocessFailedEvents(forkEm(orm), logger, {
      ...(values.project ? { projectId: values.project } : {}),
      ...(values.event?.length ? { eventIds: values.event } : {}),
      by: 'cli',
    });
    const ids = rows.map((row) => row.id);
    console.log(`requeued ${ids.length} failed event(s)${ids.length ? `:\n${ids.join('\n')}` : ''}`);
  }
} finally {
  await orm.close();
}
