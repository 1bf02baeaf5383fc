// Runs before the suite: without a PostgreSQL server every test would fail; say so in one line.
import pg from 'pg';

const url = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
try {
  await client.connect();
  await client.query('select 1');
  await client.end();
} catch (error) {
  const reason = error instanceof Error ? error.message : String(error);
  const shown = url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
  console.error(`No PostgreSQL answers at TEST_DATABASE_URL=${shown} (${reason}); start one or set TEST_DATABASE_URL.`);
  process.exit(1);
}
