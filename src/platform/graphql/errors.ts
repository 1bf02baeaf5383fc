import { GraphQLError } from 'graphql';
import { isAsyncIterable, maskError as yogaMaskError, type Plugin } from 'graphql-yoga';
import { DomainError, type ErrorCode } from '../errors.ts';

/**
 * The one place domain errors become GraphQL errors. A DomainError keeps its message and gets its
 * code in `extensions.code`; anything else is masked (INTERNAL_SERVER_ERROR, no message, no stack,
 * no SQL), whatever NODE_ENV says.
 */
export function maskError(error: unknown, message: string): Error {
  const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
  if (original instanceof DomainError) {
    return new GraphQLError(original.message, {
      ...(error instanceof GraphQLError ? { nodes: error.nodes, source: error.source, positions: error.positions, path: error.path } : {}),
      extensions: { code: original.code, ...original.details },
    });
  }
  return yogaMaskError(error, message, false);
}

/**
 * graphql-js reports variables it cannot coerce (`first: "x"`) as request errors with no code.
 * They are the client's mistake, so they get BAD_USER_INPUT like every other invalid argument.
 */
export function useRequestErrorCodes(): Plugin {
  return {
    onExecute() {
      return {
        onExecuteDone({ result, setResult }) {
          if (isAsyncIterable(result) || !result.errors || result.data !== undefined) return;
          setResult({
            ...result,
            errors: result.errors.map((error) =>
              error.extensions?.code || error.path
                ? error
                : new GraphQLError(error.message, {
                    nodes: error.nodes,
                    source: error.source,
                    positions: error.positions,
                    extensions: { ...error.extensions, code: 'BAD_USER_INPUT' },
                  }),
            ),
          });
        },
      };
    },
  };
}

/**
 * yoga's own request parsers throw plain errors on some malformed requests (a GET whose
 * `variables` is not JSON: 500 INTERNAL_SERVER_ERROR) and uncoded ones on others (a multipart
 * body whose `operations` is not JSON: 200). Whatever a parser cannot read is the client's
 * mistake: 400 BAD_REQUEST.
 */
export function useRequestParseErrors(): Plugin {
  return {
    onRequestParse({ requestParser, setRequestParser }) {
      if (!requestParser) return;
      setRequestParser(async (request) => {
        try {
          return await requestParser(request);
        } catch (error) {
          // yoga's own refusals (body too large, bad JSON) already carry a code and a status.
          if (error instanceof GraphQLError && error.extensions?.code) throw error;
          const message = error instanceof GraphQLError ? error.message : 'The request could not be read as a GraphQL request.';
          throw requestRefusal('BAD_REQUEST', message, { status: 400 });
        }
      });
    },
  };
}

/** graphql-ws has no HTTP status: the hint for yoga is dropped before an error goes out there. */
export function withoutHttpExtension(error: GraphQLError): GraphQLError {
  if (!error.extensions?.http) return error;
  const { http: _http, ...extensions } = error.extensions;
  return new GraphQLError(error.message, { nodes: error.nodes, source: error.source, positions: error.positions, path: error.path, originalError: error.originalError, extensions });
}

/**
 * A request refused by a limit rather than by its meaning: a plain GraphQL error (raised around
 * execution, not by a service; masking passes it through) with a stable code. `http` is the
 * status and headers yoga answers with; `spec: false` keeps that status for `application/json`
 * too, where yoga would answer a validation or parse error with 200. yoga strips `http` from the
 * body; `forTransport` drops it for graphql-ws, which would send it verbatim.
 */
export function requestRefusal(
  code: ErrorCode,
  message: string,
  http: { status: number; headers?: Record<string, string> },
  details: Record<string, unknown> = {},
): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...details, http: { ...http, spec: false } } });
}

/** yoga's HTTP (and SSE) contexts carry the fetch Request; graphql-ws contexts do not. */
export const isHttpContext = (context: unknown): boolean => (context as { request?: unknown } | null)?.request !== undefined;

/** The error as the operation's transport should carry it. */
export const forTransport = (error: GraphQLError, context: unknown): GraphQLError => (isHttpContext(context) ? error : withoutHttpExtension(error));
