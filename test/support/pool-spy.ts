import pg from 'pg';
import type { Orm } from '../../src/platform/db/orm.ts';

/** A query the pool was asked to run: its text, and its name when it runs as a prepared statement. */
export interface PoolQuery {
  text: string;
  name?: string;
}

/** Records, until `restore`, what `pick` takes from each query `orm`'s pool is asked to run (null: nothing). */
export async function recordPoolQueries(orm: Orm, pick: (query: PoolQuery) => string | null): Promise<{ recorded: string[]; restore: () => void }> {
  const pool = (await orm.em.getConnection().getNativeClient()) as pg.Pool;
  const recorded: string[] = [];
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  const spied = pool as unknown as { query: (...args: unknown[]) => unknown };
  spied.query = (...args: unknown[]) => {
    const config = args[0] as { name?: string; text?: string } | string;
    const picked = pick(typeof config === 'string' ? { text: config } : { text: config.text ?? '', name: config.name });
    if (picked !== null) recorded.push(picked);
    return query(...args);
  };
  return { recorded, restore: () => void (spied.query = query) };
}
