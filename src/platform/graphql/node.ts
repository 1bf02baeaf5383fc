import { badInput, notFound } from '../errors.ts';
import { requireId } from '../validation.ts';
import { builder } from './builder.ts';
import type { GraphQLContext } from './context.ts';

/**
 * Relay's global object identification (https://relay.dev/graphql/objectidentification.htm).
 *
 * A Node's `id` is the object's own `id`, unchanged: every id is a random UUID, unique across all
 * tables, so it already identifies one object globally and clients keep the ids they store. To
 * answer `node(id:)` each type looks the id up in its own table, filtered by what the viewer may
 * see; an id nobody may see and an id that does not exist both answer NOT_FOUND.
 */

/** Ids one `nodes` request may ask for: one page's worth, like a connection. */
export const MAX_NODE_IDS = 100;

interface NodeType {
  name: string;
  /** The objects with these ids that the viewer may see (any order; missing ones are left out). */
  load(ctx: GraphQLContext, ids: string[]): Promise<{ id: string }[]>;
}

const nodeTypes: NodeType[] = [];
/** Which type each object handed out by node/nodes is, for the interface's resolveType. */
const typeOfNode = new WeakMap<object, string>();

export const NodeRef = builder.interfaceRef<{ id: string }>('Node').implement({
  description: 'An object that can be refetched by its id alone with `node(id:)` (Relay global object identification).',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Globally unique: the same UUID as the type\'s own `id`.' }),
  }),
  resolveType: (node) => typeOfNode.get(node) ?? null,
});

/**
 * Lets `node(id:)` find objects of the type `name` (which lists `interfaces: [NodeRef]`) with
 * `load`, which must apply the same visibility rules as the type's own query.
 */
export function nodeType<T extends { id: string }>(name: string, load: (ctx: GraphQLContext, ids: string[]) => Promise<T[]>): void {
  nodeTypes.push({ name, load });
}

/** The visible objects for `ids`, in order; a NOT_FOUND error in place of each one not visible. */
async function loadNodes(ctx: GraphQLContext, ids: string[], field: string): Promise<({ id: string } | Error)[]> {
  const wanted = ids.map((id) => requireId(field, id));
  const found = new Map<string, { id: string }>();
  // One query per type, whatever the number of ids: a UUID lives in exactly one table.
  for (const type of nodeTypes) {
    const missing = [...new Set(wanted.filter((id) => !found.has(id)))];
    if (missing.length === 0) break;
    for (const node of await type.load(ctx, missing)) {
      typeOfNode.set(node, type.name);
      found.set(node.id, node);
    }
  }
  return wanted.map((id) => found.get(id) ?? notFound('Node', id));
}

builder.queryFields((t) => ({
  node: t.field({
    type: NodeRef,
    nullable: true,
    description:
      'Any Project, ChatSession, Message, Agent or WorkerSpace by its id, with the visibility of its own query (NOT_FOUND otherwise; BAD_USER_INPUT for an id that is not a UUID).',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      ctx.viewer();
      const [node] = await loadNodes(ctx, [args.id], 'id');
      if (node instanceof Error) throw node;
      return node!;
    },
  }),
  nodes: t.field({
    type: [NodeRef],
    nullable: { list: false, items: true },
    description: `The objects for \`ids\` (at most ${MAX_NODE_IDS}), in the same order: null, with a NOT_FOUND error at its index, for each one the viewer may not see.`,
    args: { ids: t.arg.idList({ required: true }) },
    resolve: async (_root, args, ctx) => {
      ctx.viewer();
      if (args.ids.length > MAX_NODE_IDS) throw badInput('ids', `ids may hold at most ${MAX_NODE_IDS} ids`);
      // graphql-js answers an Error in a list with null there and an error at that path.
      return (await loadNodes(ctx, args.ids, 'ids')) as { id: string }[];
    },
  }),
}));
