import type { InterfaceRef, ObjectRef } from '@pothos/core';
import type { Page, PageRequest } from '../db/pagination.ts';
import { builder } from './builder.ts';
import type { GraphQLContext } from './context.ts';

/**
 * Forward-only Relay connections over our keyset pages. (Pothos's relay plugin always adds
 * `last`/`before`, which keyset pages over append-only data do not need.)
 */
const PageInfoRef = builder.objectRef<Page<unknown>>('PageInfo').implement({
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage'),
    endCursor: t.string({
      nullable: true,
      resolve: (page) => {
        const last = page.items.at(-1);
        return last === undefined ? null : page.cursorOf(last);
      },
    }),
  }),
});

export function connectionType<T>(name: string, nodeRef: ObjectRef<any, T> | InterfaceRef<any, T>) {
  const edgeRef = builder.objectRef<{ cursor: string; node: T }>(`${name}Edge`).implement({
    fields: (t) => ({
      cursor: t.exposeString('cursor'),
      node: t.field({ type: nodeRef, resolve: (edge) => edge.node as never }),
    }),
  });
  return builder.objectRef<Page<T>>(`${name}Connection`).implement({
    fields: (t) => ({
      edges: t.field({
        type: [edgeRef],
        resolve: (page) => page.items.map((node) => ({ cursor: page.cursorOf(node), node })),
      }),
      nodes: t.field({ type: [nodeRef], resolve: (page) => page.items }),
      pageInfo: t.field({ type: PageInfoRef, resolve: (page) => page as Page<unknown> }),
    }),
  });
}

/** `first` (default 20, at most 100) and `after` (an `endCursor`), validated by the service. */
export const connectionArgs = builder.args((t) => ({
  first: t.int({ required: false, description: 'Page size, 0 to 100 (default 20).' }),
  after: t.string({ required: false, description: 'The `endCursor` of the previous page.' }),
}));

/** A paginated field on `parent`: `first`/`after` in, a page of `list` out. */
export function connectionField<Parent, Node>(
  parent: ObjectRef<any, Parent>,
  name: string,
  options: {
    connection: ObjectRef<any, Page<Node>>;
    description?: string;
    list: (parent: Parent, args: PageRequest, ctx: GraphQLContext) => Promise<Page<Node>>;
  },
): void {
  builder.objectField(parent, name, (t) =>
    t.field({
      type: options.connection,
      ...(options.description ? { description: options.description } : {}),
      args: connectionArgs,
      resolve: (source, args, ctx) => options.list(source, args, ctx),
    }),
  );
}
