import type { Plugin } from '@envelop/core';
import {
  createSourceEventStream,
  executeSubscriptionEvent,
  getNamedType,
  print,
  TypeInfo,
  validateSubscriptionArgs,
  visit,
  visitWithTypeInfo,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
  type ValidatedSubscriptionArgs,
} from 'graphql';
import { principalIdOf, type GraphQLContext } from '../platform/graphql/context.ts';
import { EVENT_TYPES, type DomainEvent } from '../events/domain-event.ts';
import { wrappedIterator } from './wrapped-iterator.ts';

/**
 * Fields whose value comes from the delivered event alone: no EntityManager, no DataLoader, no
 * viewer. A subscription that selects only these renders the same for every subscriber of the
 * same stream, whoever they are. The list is checked by a test that executes every field on it
 * with a context that throws when touched (test/subscription-groups.test.ts).
 */
const EVENT_ONLY_FIELDS: Record<string, readonly string[]> = {
  Subscription: ['projectEvents', 'sessionEvents'],
  ChatEvent: ['eventId', 'type', 'sequence', 'projectSequence', 'occurredAt', 'projectId', 'sessionId', 'userId'],
  MessageCreatedEvent: ['message'],
  AgentSwitchedEvent: ['workerSpaceId', 'from', 'to'],
  AgentSnapshot: ['id', 'name'],
  AgentReplyStarted: ['replyTo', 'agentId'],
  AgentReplyDelta: ['replyTo', 'agentId', 'index', 'text'],
  Message: ['id', 'body', 'role', 'authorUserId', 'replyToId', 'createdAt'],
};
const EVENT_INTERFACE = 'ChatEvent';
export const EVENT_ONLY_FIELD_LIST: readonly string[] = Object.entries(EVENT_ONLY_FIELDS).flatMap(([type, fields]) => fields.map((field) => `${type}.${field}`));

/** Whether every field `document` selects is rendered from the event alone. */
function selectsEventOnly(schema: GraphQLSchema, document: DocumentNode): boolean {
  const typeInfo = new TypeInfo(schema);
  let eventOnly = true;
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field(node) {
        if (node.name.value.startsWith('__')) return;
        const parent = typeInfo.getParentType();
        const named = parent && getNamedType(parent);
        const allowed = named ? (EVENT_ONLY_FIELDS[named.name] ?? []) : [];
        const viaInterface = named && 'getInterfaces' in named && named.getInterfaces().some((i) => i.name === EVENT_INTERFACE);
        if (!allowed.includes(node.name.value) && !(viaInterface && EVENT_ONLY_FIELDS[EVENT_INTERFACE]!.includes(node.name.value))) eventOnly = false;
      },
    }),
  );
  return eventOnly;
}

/** Arguments that say where a stream starts, never how an event renders. */
const RESUME_ARGUMENTS = new Set(['after', 'afterSequence']);

/**
 * The document as the group key sees it: the subscription field's resume point (`after`,
 * `afterSequence`) taken out, with the variables used only there, so that clients that resume
 * from different events (every reconnecting client does) still share one execution per event.
 */
function withoutResumePoints(document: DocumentNode): { text: string; resumeVariables: Set<string> } {
  const inResume = new Set<string>();
  const elsewhere = new Set<string>();
  let depth = 0;
  // Only the operation's own root field: a fragment's top-level field may be nested anywhere.
  let inFragment = false;
  const stripped = visit(document, {
    FragmentDefinition: {
      enter() {
        inFragment = true;
      },
      leave() {
        inFragment = false;
      },
    },
    Field: {
      enter() {
        depth += 1;
      },
      leave() {
        depth -= 1;
      },
    },
    Argument(node) {
      const resume = !inFragment && depth === 1 && RESUME_ARGUMENTS.has(node.name.value);
      visit(node.value, { Variable: (variable) => void (resume ? inResume : elsewhere).add(variable.name.value) });
      return resume ? null : undefined;
    },
  });
  // Variable definitions stay in the text: they do not change how an event renders either way.
  return { text: print(stripped), resumeVariables: new Set([...inResume].filter((name) => !elsewhere.has(name))) };
}

export interface SubscriptionGroupsDeps {
  /** Called with the number of subscribers an execution serves: the group's size, or 1 for a stream's own item. */
  onExecuted?(groupSize: number): void;
  /** Called for every result handed to a subscriber (a frame on its connection). */
  onFrame?(): void;
  /** Called when the number of open groups changes. */
  onGroupCount?(groups: number): void;
}

/**
 * Results kept per group (the oldest goes first). The members of a group render a live event within
 * moments of each other, so a few suffice; a member replaying history or far behind executes its
 * own (the same result, at its own cost). Kept small because memory is groups × this × result size.
 */
const RESULTS_PER_GROUP = 8;

interface Group {
  key: string;
  subscribers: number;
  /** Results by eventId, oldest first. */
  results: Map<string, ExecutionResult | Promise<ExecutionResult>>;
}

const COMMITTED = new Set<string>(EVENT_TYPES);
/** A committed event (not a stream's end, not transient agent activity, whose fields depend on the stream). */
const isCommittedEvent = (item: unknown): item is DomainEvent =>
  typeof item === 'object' && item !== null && COMMITTED.has((item as DomainEvent).type) && typeof (item as DomainEvent).eventId === 'string' && !('activity' in item);

/**
 * Executes each committed event once per group of subscriptions that would render it the same:
 * the same document, operation, variables and authorisation scope. Every subscriber of a group is
 * handed the same result object, so an event costs one execution per group instead of one per
 * subscriber. Each subscription keeps its own ordered stream (order, deduplication, gap filling,
 * resume, per-event authorisation, bounded buffer): only the rendering is shared, so a subscriber
 * that resumes from history, falls behind or is refused an event gets exactly what it would get
 * alone.
 *
 * The authorisation scope is "everyone" when the document selects only fields rendered from the
 * event (EVENT_ONLY_FIELDS), and the principal (user or agent) otherwise, so a field that reads
 * the database or the viewer is never shared between viewers.
 */
export function createSubscriptionGroups(deps: SubscriptionGroupsDeps = {}) {
  const groups = new Map<string, Group>();
  const printed = new WeakMap<DocumentNode, { text: string; resumeVariables: Set<string>; eventOnly: boolean }>();

  function documentOf(schema: GraphQLSchema, document: DocumentNode) {
    let known = printed.get(document);
    if (!known) {
      known = { ...withoutResumePoints(document), eventOnly: selectsEventOnly(schema, document) };
      printed.set(document, known);
    }
    return known;
  }

  function groupKey(args: ExecutionArgs): string {
    const { text, resumeVariables, eventOnly } = documentOf(args.schema, args.document);
    const variables = Object.entries(args.variableValues ?? {}).filter(([name]) => !resumeVariables.has(name));
    const scope = eventOnly ? '*' : `principal:${principalIdOf(args.contextValue as GraphQLContext) ?? ''}`;
    return JSON.stringify([text, args.operationName ?? null, variables, scope]);
  }

  function join(key: string): Group {
    let group = groups.get(key);
    if (!group) {
      group = { key, subscribers: 0, results: new Map() };
      groups.set(key, group);
      deps.onGroupCount?.(groups.size);
    }
    group.subscribers += 1;
    return group;
  }

  function leave(group: Group) {
    group.subscribers -= 1;
    if (group.subscribers === 0 && groups.get(group.key) === group) {
      groups.delete(group.key);
      deps.onGroupCount?.(groups.size);
    }
  }

  function render(group: Group, validated: ValidatedSubscriptionArgs, item: unknown): ExecutionResult | Promise<ExecutionResult> {
    const execute = (sharedBy: number) => {
      deps.onExecuted?.(sharedBy);
      return executeSubscriptionEvent({ ...validated, rootValue: item });
    };
    // A stream's end or transient activity is this subscriber's own.
    if (!isCommittedEvent(item)) return execute(1);
    // Alone in its group: nobody to share with, nothing to keep.
    if (group.subscribers === 1) return execute(1);
    let result = group.results.get(item.eventId);
    if (!result) {
      result = execute(group.subscribers);
      group.results.set(item.eventId, result);
      if (group.results.size > RESULTS_PER_GROUP) group.results.delete(group.results.keys().next().value!);
      // A failed execution is not shared: the next subscriber executes again.
      if (result instanceof Promise) result.catch(() => group.results.delete(item.eventId));
    }
    return result;
  }

  async function subscribe(args: ExecutionArgs, fallback: (args: ExecutionArgs) => unknown): Promise<unknown> {
    const validated = validateSubscriptionArgs(args);
    // Invalid arguments: the executor's own answer (with its codes and statuses).
    if (!('schema' in validated)) return fallback(args);
    const source = await createSourceEventStream(validated);
    if (!(Symbol.asyncIterator in (source as object))) return source;
    const events = (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    const group = join(groupKey(args));
    let left = false;
    const leaveOnce = () => {
      if (left) return;
      left = true;
      leave(group);
    };
    return wrappedIterator<ExecutionResult>(
      events,
      async () => {
        const next = await events.next();
        if (next.done) {
          leaveOnce();
          return { done: true, value: undefined };
        }
        const value = await render(group, validated, next.value);
        deps.onFrame?.();
        return { done: false, value };
      },
      leaveOnce,
    );
  }

  return {
    /** The envelop plugin: subscriptions go through the groups (before plugins that wrap subscribe). */
    plugin(): Plugin {
      return {
        onSubscribe({ subscribeFn, setSubscribeFn }) {
          setSubscribeFn(((args: ExecutionArgs) => subscribe(args, subscribeFn as (args: ExecutionArgs) => unknown)) as never);
        },
      };
    },
    /** Open groups and their sizes (for tests and diagnostics). */
    sizes(): number[] {
      return [...groups.values()].map((group) => group.subscribers);
    },
  };
}

export type SubscriptionGroups = ReturnType<typeof createSubscriptionGroups>;
