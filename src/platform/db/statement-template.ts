import { CompiledQuery, type Compilable } from 'kysely';
import type { Db } from './database.ts';

/** Stands in for one value while a statement is built; never reaches the database. */
class Slot {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

/**
 * A hot statement built once with the typed query builder and then run with fresh values: the
 * builder's work (a tree of immutable nodes, walked by its compiler) costs more CPU than the
 * round trip of a small write, and the SQL text is the same every time. `build` receives stand-ins
 * for the values and must use each only as a value (`eb.val(values.x)`, `where(col, '=', values.x)`),
 * never branch on one: choices of shape go into `shape`, one compiled statement per shape.
 */
export function statementTemplate<Values extends object, Shape extends string, Row>(
  names: readonly (keyof Values & string)[],
  build: (db: Db, values: Values, shape: Shape) => Compilable<Row>,
) {
  // Per shape: the SQL, and per parameter either the value's name or a constant of the statement (`+ 1`).
  const compiled = new Map<Shape, { sql: string; order: (Slot | { constant: unknown })[] }>();
  return {
    compile(db: Db, values: Values, shape: Shape): CompiledQuery<Row> {
      let template = compiled.get(shape);
      if (!template) {
        const slots = Object.fromEntries(names.map((name) => [name, new Slot(name)])) as unknown as Values;
        const query = build(db, slots, shape).compile();
        const order = query.parameters.map((parameter) => (parameter instanceof Slot ? parameter : { constant: parameter }));
        compiled.set(shape, (template = { sql: query.sql, order }));
      }
      const parameters = template.order.map((parameter) => (parameter instanceof Slot ? values[parameter.name as keyof Values] : parameter.constant));
      return CompiledQuery.raw(template.sql, parameters) as CompiledQuery<Row>;
    },
  };
}
