import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAbstractType, parse, specifiedRules, validate, type OperationDefinitionNode } from 'graphql';
import { afterAll, describe, expect, it } from 'vitest';
import { extractDocuments } from '../scripts/extract-documents.ts';
import { loadConfig } from '../src/platform/config.ts';
import { costRefusal, operationLimitRules } from '../src/platform/graphql/operation-limits.ts';
import { schema } from '../src/schema.ts';

// docs/clients.md is copied into client code as it is: every GraphQL document in it (```graphql
// blocks, and gql`…` / /* GraphQL */ `…` templates in its code blocks) must validate against the
// schema and pass the default limits, and its `possibleTypes` must be the schema's.

const text = readFileSync(new URL('../docs/clients.md', import.meta.url), 'utf8');
const blocks = [...text.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((match) => ({ lang: match[1]!, body: match[2]! }));

// The extraction script reads client code the way a client repository holds it: one file per block.
const folder = mkdtempSync(join(tmpdir(), 'clients-docs-'));
blocks.forEach((block, index) => {
  if (block.lang === 'graphql') writeFileSync(join(folder, `block-${index}.graphql`), block.body);
  else if (['ts', 'js', 'tsx', 'html'].includes(block.lang)) writeFileSync(join(folder, `block-${index}.ts`), block.body);
});
afterAll(() => rmSync(folder, { recursive: true, force: true }));

describe('docs/clients.md', () => {
  const documents = Object.values(extractDocuments([folder], schema));
  const names = documents.map((document) => (parse(document).definitions.find((d) => d.kind === 'OperationDefinition') as OperationDefinitionNode).name!.value);

  it('holds the operations of a chat screen, each valid against the schema', () => {
    expect(names).toEqual(
      expect.arrayContaining(['ChatScreen', 'OlderMessages', 'ChatEvents', 'SendChatMessage', 'RefetchNode', 'SessionEventsUrql', 'LatestMessagesUrql', 'BrowserChat', 'BrowserChatEvents']),
    );
  });

  it('asks for nothing the default limits refuse', () => {
    const limits = loadConfig({}).operationLimits;
    for (const source of documents) {
      const document = parse(source, { maxTokens: limits.maxTokens });
      expect(validate(schema, document, [...specifiedRules, ...operationLimitRules(limits)]).map((error) => error.message), source).toEqual([]);
      expect(costRefusal(limits, { schema, document, variableValues: {} })?.message ?? null, source).toBeNull();
    }
  });

  it("gives Apollo's cache the schema's possibleTypes for every interface", () => {
    const block = /possibleTypes: \{([\s\S]*?)\n\s*\},/.exec(text)?.[1];
    expect(block, 'a possibleTypes object in docs/clients.md').toBeDefined();
    const documented = Object.fromEntries(
      [...block!.matchAll(/(\w+): \[([^\]]*)\]/g)].map(([, name, types]) => [name, [...types!.matchAll(/'(\w+)'/g)].map((match) => match[1]).sort()]),
    );
    const actual = Object.fromEntries(
      Object.values(schema.getTypeMap())
        .filter((type) => isAbstractType(type) && !type.name.startsWith('__'))
        .map((type) => [type.name, schema.getPossibleTypes(type as never).map((possible) => possible.name).sort()]),
    );
    expect(documented).toEqual(actual);
  });
});
