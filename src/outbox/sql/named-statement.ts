import { CompiledQuery } from 'kysely';

/**
 * A fixed SQL statement written with named parameters (`:limit`, `:token`), compiled once to
 * PostgreSQL's positional ones. Its text never changes, so it can run as a named prepared
 * statement, and a reader sees every parameter by name where it is used. `::type` casts are left
 * alone.
 */
export interface NamedStatement<Params extends Record<string, unknown>, Row> {
  readonly text: string;
  readonly names: readonly (keyof Params & string)[];
  bind(params: Params): CompiledQuery<Row>;
}

export function namedStatement<Params extends Record<string, unknown>, Row>(source: string): NamedStatement<Params, Row> {
  const names: string[] = [];
  const text = source.replace(/(?<![:\w]):([a-z_][a-z0-9_]*)/g, (_match, name: string) => {
    let index = names.indexOf(name);
    if (index === -1) index = names.push(name) - 1;
    return `$${index + 1}`;
  });
  return {
    text,
    names: names as (keyof Params & string)[],
    bind(params) {
      const values = names.map((name) => {
        if (!(name in params)) throw new Error(`statement parameter :${name} is missing`);
        return params[name];
      });
      return CompiledQuery.raw(text, values) as CompiledQuery<Row>;
    },
  };
}
