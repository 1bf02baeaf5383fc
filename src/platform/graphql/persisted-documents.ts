import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { usePersistedOperations } from '@graphql-yoga/plugin-persisted-operations';
import { GraphQLError } from 'graphql';
import type { GraphQLParams, Plugin } from 'graphql-yoga';
import { ConfigError, type AppConfig } from '../config.ts';
import type { ErrorCode } from '../errors.ts';

/**
 * Persisted documents, in one of three modes (`GRAPHQL_PERSISTED_DOCUMENTS`):
 * - `off`: any document runs (the default);
 * - `automatic`: automatic persisted queries (APQ, Apollo's protocol): a client sends
 *   `extensions.persistedQuery.sha256Hash` alone; on PERSISTED_QUERY_NOT_FOUND it sends the
 *   document with its hash once, the server checks the hash and remembers the document, and later
 *   hash-only requests run it. Any document still runs: APQ saves bandwidth, it restricts nothing;
 * - `trusted`: only the documents of an allow-list file run (`GRAPHQL_TRUSTED_DOCUMENTS_FILE`, a
 *   JSON map sha256 hex → document, as `npm run documents:extract` writes it, or Apollo's persisted
 *   query manifest). A client sends the
 *   hash, or the exact text of a listed document; anything else is PERSISTED_QUERY_ONLY, an
 *   unknown hash PERSISTED_QUERY_NOT_FOUND. No client can add to the list.
 * A persisted document is parsed, validated and limited (depth, cost, …) like any other.
 */
export type PersistedDocumentOptions = AppConfig['persistedDocuments'];
export type PersistedDocumentMode = PersistedDocumentOptions['mode'];

export interface PersistedDocuments {
  mode: PersistedDocumentMode;
  /** The yoga plugins that apply the mode to HTTP requests (none when off). */
  plugins: Plugin[];
  /**
   * The same rules for a graphql-ws operation: its params with the persisted document filled in,
   * or the refusal. graphql-ws requires `query` to be a string: a hash-only operation sends `""`.
   */
  resolve(params: SocketOperation): Promise<GraphQLParams | GraphQLError>;
}

/** A graphql-ws subscribe payload. */
interface SocketOperation {
  query: string;
  operationName?: string | null | undefined;
  variables?: Record<string, unknown> | null | undefined;
  extensions?: Record<string, unknown> | null | undefined;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const SHA256_HEX = /^[0-9a-f]{64}$/;

function refusal(code: ErrorCode, message: string, status: number): GraphQLError {
  return new GraphQLError(message, { extensions: { code, http: { status, spec: false } } });
}

/** The hash a request names (Apollo's `extensions.persistedQuery`, version 1), or null. */
function persistedHash(params: GraphQLParams): string | null {
  const persisted = (params.extensions as { persistedQuery?: { version?: unknown; sha256Hash?: unknown } } | undefined)?.persistedQuery;
  return persisted?.version === 1 && typeof persisted.sha256Hash === 'string' ? persisted.sha256Hash.toLowerCase() : null;
}

/** Reads the allow-list; a file that is not one stops start-up with a message naming the setting. */
export function readTrustedDocuments(file: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError(`GRAPHQL_TRUSTED_DOCUMENTS_FILE ${file} cannot be read as JSON: ${(error as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ConfigError(`GRAPHQL_TRUSTED_DOCUMENTS_FILE ${file} must be a JSON object mapping sha256 hashes to documents`);
  }
  const documents = new Map<string, string>();
  // Apollo's manifest (@apollo/generate-persisted-query-manifest) lists the same pairs as { id, body }.
  const manifest = json as { format?: unknown; operations?: { id?: unknown; body?: unknown }[] };
  const entries =
    manifest.format === 'apollo-persisted-query-manifest' && Array.isArray(manifest.operations)
      ? manifest.operations.map((operation) => [String(operation.id), operation.body] as const)
      : Object.entries(json);
  for (const [hash, document] of entries) {
    if (!SHA256_HEX.test(hash) || typeof document !== 'string' || sha256(document) !== hash) {
      throw new ConfigError(`GRAPHQL_TRUSTED_DOCUMENTS_FILE ${file}: "${hash.slice(0, 70)}" is not the sha256 of its document (rerun npm run documents:extract)`);
    }
    documents.set(hash, document);
  }
  return documents;
}

/** A bounded map that forgets the least recently used entry. */
class RecentDocuments {
  readonly #documents = new Map<string, string>();
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  get(hash: string): string | null {
    const document = this.#documents.get(hash);
    if (document === undefined) return null;
    this.#documents.delete(hash);
    this.#documents.set(hash, document);
    return document;
  }
  set(hash: string, document: string): void {
    this.#documents.delete(hash);
    this.#documents.set(hash, document);
    if (this.#documents.size > this.#max) this.#documents.delete(this.#documents.keys().next().value!);
  }
}

export function createPersistedDocuments(options: PersistedDocumentOptions): PersistedDocuments {
  const { mode } = options;
  const asParams = (operation: SocketOperation): GraphQLParams => ({
    query: operation.query || undefined,
    operationName: operation.operationName ?? undefined,
    variables: operation.variables ?? undefined,
    extensions: operation.extensions ?? undefined,
  });
  if (mode === 'off') return { mode, plugins: [], resolve: async (operation) => asParams(operation) };

  const trusted = mode === 'trusted' ? readTrustedDocuments(options.trustedDocumentsFile ?? '') : null;
  const recent = new RecentDocuments(options.apqCacheSize);

  const notFound = () =>
    // Apollo's and urql's APQ clients resend the document on this message or code. 404, not 400:
    // Apollo Client stops sending hashes for good after a 400 or 500.
    refusal('PERSISTED_QUERY_NOT_FOUND', 'PersistedQueryNotFound', 404);
  const onlyPersisted = () =>
    refusal('PERSISTED_QUERY_ONLY', 'Only persisted documents run here: send extensions.persistedQuery.sha256Hash of a listed document.', 400);

  /**
   * Before the package's plugin: a document whose text is listed becomes a hash-only request (so
   * clients that send the text of their persisted documents still run them), and in `automatic`
   * mode a document sent with its hash is checked and remembered.
   */
  const admitDocument = (params: GraphQLParams): GraphQLParams => {
    if (!params.query) return params;
    const hash = persistedHash(params);
    if (trusted) {
      const textHash = sha256(params.query);
      if (!trusted.has(textHash) || (hash !== null && hash !== textHash)) throw onlyPersisted();
      return { ...params, query: undefined, extensions: { ...params.extensions, persistedQuery: { version: 1, sha256Hash: textHash } } };
    }
    if (hash !== null) {
      if (sha256(params.query) !== hash) throw refusal('BAD_REQUEST', 'extensions.persistedQuery.sha256Hash is not the sha256 of the document sent with it.', 400);
      recent.set(hash, params.query);
    }
    return params;
  };

  const persisted = usePersistedOperations({
    allowArbitraryOperations: !trusted,
    getPersistedOperation: (hash) => (trusted ? (trusted.get(hash.toLowerCase()) ?? null) : recent.get(hash.toLowerCase())),
    customErrors: {
      notFound: () => notFound(),
      persistedQueryOnly: () => onlyPersisted(),
      // Neither a document nor a hash.
      keyNotFound: () => (trusted ? onlyPersisted() : refusal('BAD_REQUEST', 'Send a document (query) or extensions.persistedQuery.sha256Hash.', 400)),
    },
  }) as Plugin;

  const admit: Plugin = {
    onParams({ params, setParams }) {
      const admitted = admitDocument(params);
      if (admitted !== params) setParams(admitted);
    },
  };

  return {
    mode,
    plugins: [admit, persisted],
    async resolve(operation) {
      // The same two onParams hooks yoga runs for HTTP, run here for a socket's operation.
      let current = asParams(operation);
      try {
        for (const plugin of [admit, persisted]) {
          await plugin.onParams!({
            params: current,
            setParams: (next: GraphQLParams) => {
              current = next;
            },
            request: new Request('http://graphql-ws.invalid/graphql'),
            context: {},
          } as never);
        }
      } catch (error) {
        if (error instanceof GraphQLError) return error;
        throw error;
      }
      return current;
    },
  };
}
