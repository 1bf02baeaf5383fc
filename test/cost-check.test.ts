import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/platform/config.ts';
import { costRefusal, createCostCheck } from '../src/platform/graphql/operation-limits.ts';
import { schema } from '../src/schema.ts';

const limits = loadConfig({}).operationLimits;

/** What the per-request cost says (nothing kept), beside what the kept check says, for the same request. */
function bothChecks(check: ReturnType<typeof createCostCheck>, source: ReturnType<typeof parse>, variableValues: Record<string, unknown>, operationName?: string) {
  const request = { schema, document: source, variableValues, operationName };
  const kept = check(request);
  const fresh = costRefusal(limits, request);
  return { kept: kept?.extensions.cost ?? 'allowed', fresh: fresh?.extensions.cost ?? 'allowed' };
}

describe('the cost kept per document', () => {
  it('a document no variable can change costs the same for every request, and is refused every time when over', () => {
    const check = createCostCheck(limits);
    const expensive = parse(`query($id: ID!) { project(id: $id) { sessions(first: 100) { nodes { messages(first: 100) { nodes { id body } } } } } }`);
    for (const id of ['a', 'b', 'c']) {
      const { kept, fresh } = bothChecks(check, expensive, { id });
      expect(kept).toBe(fresh);
      expect(kept).toBeGreaterThan(limits.maxCost);
    }
  });

  it.each([
    ['a page size', `query($id: ID!, $n: Int) { project(id: $id) { sessions(first: $n) { nodes { messages(first: $n) { nodes { id } } } } } }`, { n: 5 }, { n: 100 }],
    [
      'a page size inside a fragment',
      `query($id: ID!, $n: Int) { project(id: $id) { ...S } } fragment S on Project { sessions(last: $n) { nodes { messages(last: $n) { nodes { id } } } } }`,
      { n: 5 },
      { n: 100 },
    ],
    [
      'an @include',
      `query($id: ID!, $all: Boolean!) { project(id: $id) { id sessions(first: 100) @include(if: $all) { nodes { messages(first: 100) { nodes { id } } } } } }`,
      { all: false },
      { all: true },
    ],
    [
      'a list of ids',
      `query($ids: [ID!]!) { nodes(ids: $ids) { ... on ChatSession { messages(first: 100) { nodes { id } } } } }`,
      { ids: ['a'] },
      { ids: Array.from({ length: 200 }, (_, i) => `id${i}`) },
    ],
  ])('where %s comes from a variable, each request is costed with its own, whatever ran before', (_what, source, cheap, expensive) => {
    const check = createCostCheck(limits);
    const document = parse(source);
    for (const variables of [cheap, expensive, cheap, expensive]) {
      const { kept, fresh } = bothChecks(check, document, { id: 'p', ...variables });
      expect(kept).toBe(fresh);
    }
    expect(bothChecks(check, document, { id: 'p', ...cheap }).kept).toBe('allowed');
    expect(bothChecks(check, document, { id: 'p', ...expensive }).kept).toBeGreaterThan(limits.maxCost);
  });

  it('each operation of a document has its own cost', () => {
    const check = createCostCheck(limits);
    const document = parse(`
      query Cheap($id: ID!) { project(id: $id) { id } }
      query Costly($id: ID!) { project(id: $id) { sessions(first: 100) { nodes { messages(first: 100) { nodes { id } } } } } }`);
    expect(bothChecks(check, document, { id: 'p' }, 'Cheap').kept).toBe('allowed');
    expect(bothChecks(check, document, { id: 'p' }, 'Costly').kept).toBeGreaterThan(limits.maxCost);
    expect(bothChecks(check, document, { id: 'p' }, 'Cheap').kept).toBe('allowed');
  });
});
