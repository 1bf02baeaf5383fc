import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives';
import {
  getNamedType,
  GraphQLError,
  isListType,
  isNonNullType,
  isObjectType,
  Kind,
  parse,
  visit,
  type ASTVisitor,
  type DocumentNode,
  type GraphQLSchema,
  type GraphQLOutputType,
  type ValueNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import { getComplexity, type ComplexityEstimator } from 'graphql-query-complexity';
import type { Plugin } from 'graphql-yoga';
import type { OperationLimits } from '../config.ts';
import { DEFAULT_PAGE_SIZE } from '../db/pagination.ts';
import { forTransport, requestRefusal } from './errors.ts';
import { rootFieldCount } from './root-fields.ts';

const tooComplex = (message: string, details: Record<string, unknown> = {}) => requestRefusal('QUERY_TOO_COMPLEX', message, { status: 400 }, details);

/**
 * Cost of one field: 1, plus its selection times the page it asks for on connections (`first` or
 * `last`, or the default page), the number of ids on lists fetched by `ids`, and a fixed guess on
 * other lists. Introspection costs nothing here: graphql's
 * own MaxIntrospectionDepthRule (in its specified rules) bounds it.
 */
function costEstimator(listSize: number): ComplexityEstimator {
  return ({ type, field, args, childComplexity }) => {
    if (field.name.startsWith('__')) return 0;
    // A connection's `nodes` and `edges` are the page its field already counted.
    if (isConnectionObject(type)) return 1 + childComplexity;
    if (isConnection(field.type)) {
      // One of `first` (forward) or `last` (backward) sizes the page; a request mixing them is refused anyway.
      const page = typeof args.first === 'number' ? args.first : typeof args.last === 'number' ? args.last : DEFAULT_PAGE_SIZE;
      return 1 + childComplexity * Math.max(page, 1);
    }
    // A list asked for by ids (`nodes(ids:)`) has at most as many items as ids.
    if (isList(field.type) && Array.isArray(args.ids)) return 1 + childComplexity * Math.max(args.ids.length, 1);
    return 1 + childComplexity * (isList(field.type) ? listSize : 1);
  };
}

const isList = (type: GraphQLOutputType): boolean => isListType(isNonNullType(type) ? type.ofType : type);

const isConnection = (type: GraphQLOutputType): boolean => isConnectionObject(getNamedType(type));

function isConnectionObject(type: unknown): boolean {
  return isObjectType(type) && 'pageInfo' in type.getFields() && 'nodes' in type.getFields();
}

/** At most `max` root fields in a mutation (fragments included): one request, a bounded number of writes. */
function maxMutationFieldsRule(max: number): ValidationRule {
  return (context: ValidationContext): ASTVisitor => ({
    OperationDefinition(operation) {
      if (operation.operation !== 'mutation') return;
      const count = rootFieldCount(context.getDocument(), operation.selectionSet);
      if (count > max) {
        context.reportError(tooComplex(`A request may run at most ${max} mutation fields, this one has ${count}.`, { limit: 'mutationFields', max }));
      }
    },
  });
}

/** graphql-armor rules report an uncoded "Syntax Error"; ours carry the code and the limit instead. */
function armorOptions(limit: string, max: number) {
  return {
    n: max,
    propagateOnRejection: false,
    onReject: [
      (context: ValidationContext | null, error: GraphQLError) =>
        context?.reportError(tooComplex(error.message.replace(/^Syntax Error: /, ''), { limit, max })),
    ],
  };
}

/**
 * yoga marks parse and validation errors `spec: true` (answered 200 under `application/json`)
 * after our hooks have run; a refusal by limit stays the 4xx it was given.
 */
function keepRefusalStatus(error: GraphQLError) {
  const extensions = error.extensions as { code?: unknown; http?: { spec?: boolean } };
  if (extensions.http && extensions.code === 'QUERY_TOO_COMPLEX') extensions.http.spec = false;
}

/**
 * The limits that depend on the document alone, as validation rules (yoga caches a document's
 * validation, so nothing here may depend on variables).
 */
export function operationLimitRules(limits: OperationLimits): ValidationRule[] {
  return [
    maxDepthRule(armorOptions('depth', limits.maxDepth)),
    maxAliasesRule(armorOptions('aliases', limits.maxAliases)),
    maxDirectivesRule(armorOptions('directives', limits.maxDirectives)),
    maxMutationFieldsRule(limits.maxMutationFields),
  ];
}

type CostedRequest = { schema: GraphQLSchema; document: DocumentNode; variableValues?: unknown; operationName?: string | null };

/** The operation's cost with its variables; null when they cannot be used (graphql's coercion answers that with BAD_USER_INPUT). */
function costOf(limits: OperationLimits, request: CostedRequest): number | null {
  try {
    return getComplexity({
      schema: request.schema,
      query: request.document,
      variables: (request.variableValues ?? {}) as Record<string, unknown>,
      operationName: request.operationName ?? undefined,
      estimators: [costEstimator(limits.listSizeGuess)],
    });
  } catch {
    return null;
  }
}

/**
 * The cost of one operation with its variables (`first: $n` or `last: $n` counts as the `$n` sent), or a
 * QUERY_TOO_COMPLEX error when it is above the limit.
 */
export function costRefusal(limits: OperationLimits, request: CostedRequest): GraphQLError | null {
  return overCost(limits, costOf(limits, request));
}

const overCost = (limits: OperationLimits, cost: number | null): GraphQLError | null =>
  cost === null || cost <= limits.maxCost
    ? null
    : tooComplex(`The operation costs ${cost}, more than the limit of ${limits.maxCost}.`, { limit: 'cost', max: limits.maxCost, cost });

/** The arguments the cost estimator reads: page sizes and the ids of a list. */
const SIZING_ARGUMENTS = new Set(['first', 'last', 'ids']);

const readsVariable = (value: ValueNode): boolean =>
  value.kind === Kind.VARIABLE ||
  (value.kind === Kind.LIST && value.values.some(readsVariable)) ||
  (value.kind === Kind.OBJECT && value.fields.some((field) => readsVariable(field.value)));

/**
 * Whether a variable can change the document's cost: one that sizes a page or a list, or one that
 * a directive reads (`@skip`/`@include` drop a selection from the cost). Anywhere in the document,
 * fragments included, so that no operation is taken for fixed when it is not.
 */
function costReadsVariables(document: DocumentNode): boolean {
  let reads = false;
  visit(document, {
    Field(field) {
      if (field.arguments?.some((argument) => SIZING_ARGUMENTS.has(argument.name.value) && readsVariable(argument.value))) reads = true;
    },
    Directive(directive) {
      if (directive.arguments?.some((argument) => readsVariable(argument.value))) reads = true;
    },
  });
  return reads;
}

/**
 * `costRefusal` with each document's cost kept when no variable can change it: the cost walk was
 * 5 % of the server's CPU under `bench:writes`, for a `sendMessage` whose cost is always the same.
 * A document whose page sizes come from variables is costed per request, as before.
 */
export function createCostCheck(limits: OperationLimits) {
  const known = new WeakMap<DocumentNode, { schema: GraphQLSchema; fixed: boolean; costs: Map<string | null, number> }>();
  return (request: CostedRequest): GraphQLError | null => {
    let entry = known.get(request.document);
    if (!entry || entry.schema !== request.schema) {
      entry = { schema: request.schema, fixed: !costReadsVariables(request.document), costs: new Map() };
      known.set(request.document, entry);
    }
    if (!entry.fixed) return costRefusal(limits, request);
    const operation = request.operationName ?? null;
    let cost = entry.costs.get(operation) ?? null;
    if (cost === null) {
      cost = costOf(limits, request);
      if (cost !== null) entry.costs.set(operation, cost);
    }
    return overCost(limits, cost);
  };
}

/**
 * The operation limits, for every transport (HTTP, SSE and graphql-ws all parse and validate
 * through yoga's envelop):
 * - tokens: counted by graphql's own parser, which stops at the limit, so a huge document costs
 *   no more than the limit to reject; a document nested deep enough to exhaust the stack is
 *   refused the same way instead of crashing the request;
 * - depth, aliases and directives (graphql-armor) and mutation root fields: validation rules,
 *   checked before anything runs;
 * - cost (graphql-query-complexity, multiplied by page sizes): it can depend on the variables, so it
 *   is checked per request, after validation and before execution or subscription (kept per
 *   document when no variable can change it);
 * - the execution deadline: a query or mutation still running after it is answered with TIMEOUT
 *   and its execution is aborted (no further resolvers run); the request pool's
 *   `statement_timeout` bounds the SQL statement that was in flight.
 * Each rejection is coded (QUERY_TOO_COMPLEX, TIMEOUT) and, over HTTP, a 4xx/5xx status.
 */
export function useOperationLimits(limits: OperationLimits): Plugin {
  const rules = operationLimitRules(limits);
  const costCheck = createCostCheck(limits);
  return {
    onParse({ setParseFn }) {
      setParseFn((source, options) => {
        try {
          return parse(source, { ...options, maxTokens: limits.maxTokens });
        } catch (error) {
          if (error instanceof RangeError) throw tooComplex('The document is nested too deeply to parse.', { limit: 'nesting' });
          if (error instanceof GraphQLError && /more than \d+ tokens/.test(error.message)) {
            throw tooComplex(`The document has more than ${limits.maxTokens} tokens.`, { limit: 'tokens', max: limits.maxTokens });
          }
          throw error;
        }
      });
    },
    onValidate({ addValidationRule }) {
      for (const rule of rules) addValidationRule(rule);
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const refusal = costCheck(args);
      if (refusal) setResultAndStopExecution({ errors: [forTransport(refusal, args.contextValue)] });
    },
    onResultProcess({ result }) {
      for (const single of Array.isArray(result) ? result : [result]) {
        if ('errors' in single && single.errors) single.errors.forEach(keepRefusalStatus);
      }
    },
    onExecute({ args, executeFn, setExecuteFn, setResultAndStopExecution }) {
      const refusal = costCheck(args);
      if (refusal) return setResultAndStopExecution({ errors: [forTransport(refusal, args.contextValue)] });
      if (limits.operationTimeoutMs <= 0) return;
      // yoga's executor takes `signal` (the request's own, which ends when the client goes away).
      setExecuteFn((executeArgs: Parameters<typeof executeFn>[0] & { signal?: AbortSignal }) => {
        const deadline = AbortSignal.timeout(limits.operationTimeoutMs);
        // Built only when it happens: a GraphQLError captures a stack, on every request otherwise.
        const timeout = () =>
          requestRefusal('TIMEOUT', `The operation did not finish within ${limits.operationTimeoutMs} ms and was cancelled.`, { status: 503 }, {
            timeoutMs: limits.operationTimeoutMs,
          });
        const signal = executeArgs.signal ? AbortSignal.any([executeArgs.signal, deadline]) : deadline;
        return new Promise((resolve, reject) => {
          const onTimeout = () => resolve({ errors: [timeout()] });
          deadline.addEventListener('abort', onTimeout, { once: true });
          Promise.resolve(executeFn({ ...executeArgs, signal } as Parameters<typeof executeFn>[0]))
            .then(resolve, (error) => (deadline.aborted ? resolve({ errors: [timeout()] }) : reject(error)))
            .finally(() => deadline.removeEventListener('abort', onTimeout));
        });
      });
    },
  };
}
