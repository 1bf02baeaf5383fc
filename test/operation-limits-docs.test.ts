import { readFileSync } from 'node:fs';
import { getIntrospectionQuery, parse, specifiedRules, validate, type DocumentNode, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { loadConfig, type OperationLimits } from '../src/platform/config.ts';
import { costRefusal, operationLimitRules } from '../src/platform/graphql/operation-limits.ts';
import { schema } from '../src/schema.ts';

const defaults = loadConfig({}).operationLimits;

/** The default limits divided by `factor`: what the documented operations must still pass. */
function tightened(limits: OperationLimits, factor: number): OperationLimits {
  return {
    ...limits,
    maxDepth: Math.floor(limits.maxDepth / factor),
    maxAliases: Math.floor(limits.maxAliases / factor),
    maxDirectives: Math.floor(limits.maxDirectives / factor),
    maxCost: Math.floor(limits.maxCost / factor),
    maxTokens: Math.floor(limits.maxTokens / factor),
  };
}

/** Every ```graphql block of the docs that is a document with an operation. */
function documentedOperations(): { where: string; document: DocumentNode; source: string }[] {
  const found: { where: string; document: DocumentNode; source: string }[] = [];
  for (const file of ['docs/api.md', 'docs/analytics.md', 'docs/events.md', 'README.md']) {
    const text = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
    for (const [index, match] of [...text.matchAll(/```graphql\n([\s\S]*?)```/g)].entries()) {
      const source = match[1]!;
      // Some blocks show a bare field with its selection (`projectEvents(...) { ... }`), not a document.
      let document: DocumentNode;
      try {
        document = parse(source);
      } catch {
        continue;
      }
      if (document.definitions.some((d) => d.kind === 'OperationDefinition')) found.push({ where: `${file} block ${index + 1}`, document, source });
    }
  }
  return found;
}

function limitErrors(document: DocumentNode, source: string, limits: OperationLimits): string[] {
  const errors = validate(schema, document, [...specifiedRules, ...operationLimitRules(limits)]).map((e) => e.message);
  parse(source, { maxTokens: limits.maxTokens });
  for (const definition of document.definitions) {
    if (definition.kind !== 'OperationDefinition') continue;
    const name = (definition as OperationDefinitionNode).name?.value;
    const refusal = costRefusal(limits, { schema, document, variableValues: {}, operationName: name });
    if (refusal) errors.push(refusal.message);
  }
  return errors;
}

describe('the default limits leave room for every documented operation', () => {
  const operations = documentedOperations();

  it('the docs hold operations to check', () => {
    expect(operations.length).toBeGreaterThanOrEqual(10);
  });

  it.each(operations.map((o) => [o.where, o] as const))('%s passes at half the default limits', (_where, operation) => {
    expect(limitErrors(operation.document, operation.source, tightened(defaults, 2))).toEqual([]);
  });

  it("GraphiQL's introspection query passes the default limits", () => {
    const source = getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true, specifiedByUrl: true });
    expect(limitErrors(parse(source), source, defaults)).toEqual([]);
  });
});
