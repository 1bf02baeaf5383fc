// npm run outbox -- <command>: operator commands for the outbox, against DATABASE_URL (or the
// embedded database). Failed events are put back with their original eventId.
//   npm run outbox -- status [--project <id>]
//   npm run outbox -- reprocess (--event <id> ... | --project <id> | --all)
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { loadConfigOrExit } from '../src/config.ts';
import { createOrm, forkEm } from '../src/db/orm.ts';
import { isUuid } from '../src/db/ids.ts';
import { createLogger } from '../src/logger.ts';
import { logReprocessed } from '../src/outbox/outbox.log.ts';
import { reprocessFailed, reprocessedLogEvent } from '../src/outbox/outbox.sql.ts';

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
  const db = forkEm(orm).getKysely();
  if (command === 'status') {
    const { rows } = await sql<{ status: string; count: string; oldest: string | null }>`
      select status, count(*) as count, min(created_at) as oldest from event_outbox
      where status <> 'published' ${values.project ? sql`and project_id = ${values.project}` : sql``}
      group by status order by status`.execute(db);
    if (rows.length === 0) console.log('no pending or failed events');
    for (const row of rows) console.log(`${row.status}: ${row.count} (oldest ${row.oldest ? new Date(row.oldest).toISOString() : '-'})`);
  } else {
    const rows = await reprocessFailed(db, {
      ...(values.project ? { projectId: values.project } : {}),
      ...(values.event?.length ? { eventIds: values.event } : {}),
    });
    const logger = createLogger({ level: config.logLevel, pretty: false, destination: process.stderr });
    for (const row of rows) logReprocessed(logger, reprocessedLogEvent(row), { by: 'cli' });
    const ids = rows.map((row) => row.id);
    console.log(`requeued ${ids.length} failed event(s)${ids.length ? `:\n${ids.join('\n')}` : ''}`);
  }
} finally {
  await orm.close();
}
