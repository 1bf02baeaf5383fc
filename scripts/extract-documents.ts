// Extracts a client's GraphQL operations into the allow-list for trusted documents mode
// (GRAPHQL_PERSISTED_DOCUMENTS=trusted, docs/operations.md):
//
//   npm run documents:extract -- <folder>... [--out trusted-documents.json]
//
// It reads .graphql/.gql files whole, and the gql`…` / graphql`…` / /* GraphQL */ `…` templates
// of .ts/.tsx/.js/.jsx/.mjs/.cjs/.vue/.svelte files. Each operation becomes one document: the
// operation and every fragment it uses (found anywhere in the folders; `${…}` interpolations are
// dropped, the spreads name the fragments), printed by graphql-js, keyed by its sha256 (hex). Every
// document is validated against this server's schema first; a file that does not parse, a
// fragment or operation name defined twice differently, or a document the schema refuses stops
// the script with a message naming the file.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, print, validate, visit, type DefinitionNode, type DocumentNode, type FragmentDefinitionNode, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';

const WHOLE_FILES = new Set(['.graphql', '.gql']);
const SOURCE_FILES = new Set(['.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs', '.vue', '.svelte']);
/** A tagged template (gql`…`, graphql`…`, gql(`…`)) or one marked /* GraphQL *\/ `…`. */
const TEMPLATE = /(?:\b(?:gql|graphql)\s*\(?\s*|\/\*\s*GraphQL\s*\*\/\s*)`((?:[^`\\]|\\.)*)`/g;

export class ExtractionError extends Error {
  override name = 'ExtractionError';
}

/** The GraphQL sources of one folder, with where each came from. */
function sources(folder: string): { where: string; text: string }[] {
  const found: { where: string; text: string }[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (WHOLE_FILES.has(extname(entry.name))) found.push({ where: relative(process.cwd(), path), text: readFileSync(path, 'utf8') });
      else if (SOURCE_FILES.has(extname(entry.name))) {
        const text = readFileSync(path, 'utf8');
        for (const match of text.matchAll(TEMPLATE)) {
          const line = text.slice(0, match.index).split('\n').length;
          // Interpolations are fragments pasted in; their definitions are extracted where they are written.
          found.push({ where: `${relative(process.cwd(), path)}:${line}`, text: match[1]!.replace(/\$\{[^}]*\}/g, '') });
        }
      }
    }
  };
  walk(folder);
  return found;
}

const fragmentSpreads = (node: DefinitionNode): string[] => {
  const names: string[] = [];
  visit(node, { FragmentSpread: (spread) => void names.push(spread.name.value) });
  return names;
};

/** The allow-list for the operations found in `folders`: sha256 hex → document. */
export function extractDocuments(folders: string[], schema: GraphQLSchema): Record<string, string> {
  const operations = new Map<string, { node: OperationDefinitionNode; where: string }>();
  const fragments = new Map<string, { node: FragmentDefinitionNode; where: string }>();
  for (const { where, text } of folders.flatMap(sources)) {
    if (text.trim() === '') continue;
    let document: DocumentNode;
    try {
      document = parse(text);
    } catch (error) {
      throw new ExtractionError(`${where}: ${(error as Error).message}`);
    }
    for (const definition of document.definitions) {
      if (definition.kind === 'FragmentDefinition') {
        const seen = fragments.get(definition.name.value);
        if (seen && print(seen.node) !== print(definition)) throw new ExtractionError(`${where}: fragment ${definition.name.value} is also defined differently in ${seen.where}`);
        fragments.set(definition.name.value, { node: definition, where });
      } else if (definition.kind === 'OperationDefinition') {
        // The allow-list is what a team reviews: every operation has a name.
        if (!definition.name) throw new ExtractionError(`${where}: an operation without a name; name it (e.g. query ChatScreen { … })`);
        const seen = operations.get(definition.name.value);
        if (seen && print(seen.node) !== print(definition)) throw new ExtractionError(`${where}: operation ${definition.name.value} is also defined differently in ${seen.where}`);
        operations.set(definition.name.value, { node: definition, where });
      }
    }
  }

  const list: Record<string, string> = {};
  for (const [name, { node, where }] of [...operations].sort(([a], [b]) => a.localeCompare(b))) {
    const used = new Set<string>();
    const pending = fragmentSpreads(node);
    while (pending.length) {
      const fragment = pending.pop()!;
      if (used.has(fragment)) continue;
      const definition = fragments.get(fragment);
      if (!definition) throw new ExtractionError(`${where}: operation ${name} uses fragment ${fragment}, which is defined in none of the folders`);
      used.add(fragment);
      pending.push(...fragmentSpreads(definition.node));
    }
    const document: DocumentNode = { kind: 'Document' as DocumentNode['kind'], definitions: [node, ...[...used].sort().map((fragment) => fragments.get(fragment)!.node)] };
    const errors = validate(schema, document);
    if (errors.length) throw new ExtractionError(`${where}: operation ${name} does not validate against the schema: ${errors.map((error) => error.message).join('; ')}`);
    const text = print(document);
    list[createHash('sha256').update(text).digest('hex')] = text;
  }
  return list;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--out');
  const out = at >= 0 ? args[at + 1] : 'trusted-documents.json';
  const folders = args.filter((_arg, i) => at < 0 || (i !== at && i !== at + 1));
  if (!out || folders.length === 0) {
    console.error('usage: npm run documents:extract -- <folder>... [--out trusted-documents.json]');
    process.exit(2);
  }
  const { schema } = await import('../src/schema.ts');
  try {
    const list = extractDocuments(folders, schema);
    writeFileSync(out, `${JSON.stringify(list, null, 2)}\n`);
    console.log(`wrote ${Object.keys(list).length} documents to ${out}`);
  } catch (error) {
    if (!(error instanceof ExtractionError)) throw error;
    console.error(error.message);
    process.exit(1);
  }
}
