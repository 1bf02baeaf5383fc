import type { InterfaceRef, ObjectRef } from '@pothos/core';
import type { Page, PageRequest } from '../db/pagination.ts';
import { builder } from './builder.ts';
import type { GraphQLContext } from './context.ts';

/**
 * Relay connections over our keyset pages, forward (`first`/`after`) and backward
 * (`last`/`before`). Hand-written rather than Pothos's relay plugin: that plugin's connections
 * page by offset unless every resolver is rewritten to its own cursor helpers, and ours are
 * keyset reads with validated cursors (src/platform/db/pagination.ts).
 */
const PageInfoRef = builder.objectRef<Page<unknown>>('PageInfo').implement({
  fields: (t) => ({
    hasNextPage: t.boolean({ description: 'Whether items follow the last of this page.', resolve: (page) => page.hasNextPage() }),
    hasPreviousPage: t.boolean({ description: 'Whether items precede the first of this page.', resolve: (page) => page.hasPreviousPage() }),
    startCursor: t.string({
      nullable: true,
      description: 'The cursor of the first item (null on an empty page): pass it as `before` to read the page before.',
      resolve: (page) => {
        const first = page.items[0];
        return first === undefined ? null : page.cursorOf(first);
      },
    }),
    endCursor: t.string({
      description: 'The cursor of the last item (null on an empty page): pass it as `after` to read the page after.',
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

/**
 * Forward: `first` (default 20, at most 100) and `after` (an `endCursor`). Backward: `last` and
 * `before` (a `startCursor`), for lists read from their end such as a chat's latest messages.
 * One request reads one way: mixing the two is BAD_USER_INPUT. Validated by findPage.
 */
export const connectionArgs = builder.args((t) => ({
  first: t.int({ required: false, description: 'Page size reading forward, 0 to 100 (default 20).' }),
  after: t.string({ required: false, description: 'The `endCursor` of the previous page.' }),
  last: t.int({ required: false, description: 'Page size reading backward from the end (or from `before`), 0 to 100 (default 20). Not with `first`/`after`.' }),
  before: t.string({ required: false, description: 'The `startCursor` of the page after this one; reads backward. Not with `first`/`after`.' }),
}));

/** A paginated field on `parent`: the connection arguments in, a page of `list` out. */
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
