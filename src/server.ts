import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLError, type DocumentNode, type execute, type ExecutionArgs, type GraphQLSchema, type subscribe } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, type GraphiQLOptions } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { bearerToken, type TokenService } from './platform/auth/token.ts';
import type { CorsConfig, OperationLimits } from './platform/config.ts';
import type { Orm } from './platform/db/orm.ts';
import type { EventStreams } from './subscriptions/event-subscription.service.ts';
import { createSubscriptionGroups } from './subscriptions/subscription-groups.ts';
import { createContextFactory, type GraphQLContext } from './platform/graphql/context.ts';
import { verifyAgentCredential } from './domain/agents/agent-credential.service.ts';
import type { AgentActivity } from './events/agent-activity.ts';
import { maskError, useRequestErrorCodes, useRequestParseErrors, withoutHttpExtension } from './platform/graphql/errors.ts';
import { useOperationLimits } from './platform/graphql/operation-limits.ts';
import { createPersistedDocuments, type PersistedDocuments } from './platform/graphql/persisted-documents.ts';
import { useGraphiQLPage } from './platform/graphql/graphiql-page.ts';
import { createHealthChecks, type HealthChecks } from './platform/observability/health-checks.ts';
import { corsPolicy } from './platform/http/cors-policy.ts';
import { useRequestBodyLimit } from './platform/http/request-body-limit.plugin.ts';
import { useCsrfPrevention } from './platform/http/csrf-prevention.plugin.ts';
import { NO_LIMITS, type ServerLimits } from './platform/limits/server-limits.ts';
import { useUserLimits, viewerIdOf } from './platform/limits/user-limits.plugin.ts';
import { createWsLimits, quietOversizedMessages } from './platform/limits/ws-limits.ts';
import type { Logger } from './platform/logger.ts';
import { useOperationObservability } from './platform/observability/graphql-operations.plugin.ts';
import { useOperationTracing } from './platform/observability/graphql-tracing.plugin.ts';
import { graphqlWsMetricsHooks } from './platform/observability/graphql-ws.metrics.ts';
import { createHttpHandler } from './platform/observability/http-handler.ts';
import { createMetrics, type Metrics, type SubscriptionTransport } from './platform/observability/metrics.ts';
import { createWriteDeadline } from './platform/http/write-deadline.ts';
import { systemClock } from './platform/clock.ts';
import { createOpsEndpoints } from './platform/observability/ops-endpoints.ts';
import { requestRecordFor } from './platform/observability/request-context.ts';
import { yogaLogging } from './platform/observability/yoga-logging.ts';

export const GRAPHQL_PATH = '/graphql';

/** WebSocket close code 1001: the server is going away; clients reconnect elsewhere or later. */
const GOING_AWAY = 1001;

type EnvelopedRoot = {
  execute: (args: ExecutionArgs) => ReturnType<typeof execute>;
  subscribe: (args: ExecutionArgs) => ReturnType<typeof subscribe>;
};

/**
 * The bearer credential of a graphql-ws operation. Browsers cannot set headers on a WebSocket, so
 * clients send it in `connectionParams` (`authorization`, or a `headers` object, as some clients
 * nest it); GraphiQL sends its Headers tab in the operation's `extensions.headers`.
 */
function socketAuthorization(connectionParams: unknown, extensions: unknown): string | null {
  const pick = (bag: unknown): string | null => {
    if (!bag || typeof bag !== 'object') return null;
    const record = bag as Record<string, unknown>;
    const value = record.authorization ?? record.Authorization;
    return typeof value === 'string' ? value : null;
  };
  const params = connectionParams as Record<string, unknown> | undefined;
  const ext = extensions as Record<string, unknown> | undefined;
  return pick(params) ?? pick(params?.headers) ?? pick(ext?.headers) ?? null;
}

export interface ServerDeps {
  orm: Orm;
  schema: GraphQLSchema;
  tokens: TokenService;
  events: EventStreams;
  logger: Logger;
  /** graphql-ws ping interval in ms (0: off). Transport keep-alive; never an outbox event. */
  keepAliveMs: number;
  /** What one operation and one request body may ask of the server. */
  limits: OperationLimits;
  /** Cut a subscriber connection whose output has not drained for this long (ms; 0 or absent: never). */
  writeTimeoutMs?: number;
  /** Instruments the server records into (a fresh registry when absent). */
  metrics?: Metrics;
  /** Serve them at GET /metrics (`METRICS_ENABLED`, default true). */
  serveMetrics?: boolean;
  /** What /health/ready reports (database and migrations only when absent). */
  health?: HealthChecks;
  /** Origins allowed cross-origin (`CORS_ORIGINS`); none when absent. */
  cors?: CorsConfig;
  /** Per-user rate limits and WebSocket limits (docs/operations.md); none when absent. */
  userLimits?: ServerLimits;
  /** What GraphiQL opens with besides the defaults: the embedded demo's tab and headers. */
  graphiql?: GraphiQLOptions;
  /** APQ or trusted documents (`GRAPHQL_PERSISTED_DOCUMENTS`); any document runs when absent. */
  persistedDocuments?: PersistedDocuments;
  /**
   * Where external agent runtimes' reply deltas go (`postAgentReplyDelta`): the bus's transient
   * activity channel. Absent: deltas are accepted and reach nobody.
   */
  publishActivity?: (activity: AgentActivity) => void;
}

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:4000 (the port is real even when 0 was asked for). */
  url: string;
  port: number;
}

/**
 * The HTTP + WebSocket server: yoga answers queries, mutations and SSE subscriptions on
 * /graphql, graphql-ws answers WebSocket subscriptions on the same path and port. Both build
 * their context with the same factory.
 */
export function buildServer(deps: ServerDeps) {
  const metrics = deps.metrics ?? createMetrics({ logger: deps.logger });
  const createContext = createContextFactory({
    orm: deps.orm,
    tokens: deps.tokens,
    events: deps.events,
    metrics,
    verifyAgentCredential,
    publishActivity: deps.publishActivity ?? (() => {}),
  });
  const subscriptionGroups = createSubscriptionGroups({
    onExecuted: (groupSize) => metrics.subscriptions.recordGroupExecution(groupSize),
    onFrame: () => metrics.subscriptions.framesSent.inc(),
    onGroupCount: (groups) => metrics.subscriptions.groups.set(groups),
  });
  const health = deps.health ?? createHealthChecks({ orm: deps.orm, timeoutMs: 2_000, logger: deps.logger });
  const userLimits = deps.userLimits ?? NO_LIMITS;
  const wsLimits = createWsLimits(userLimits.options);
  const persisted = deps.persistedDocuments ?? createPersistedDocuments({ mode: 'off', trustedDocumentsFile: null, apqCacheSize: 1 });
  /** The user a socket's `connectionParams` token names, or null (none, or not valid: operations report that). */
  const socketUserId = async (connectionParams: unknown): Promise<string | null> => {
    try {
      const token = bearerToken(socketAuthorization(connectionParams, undefined));
      return token ? (await deps.tokens.verify(token)).userId : null;
    } catch {
      return null;
    }
  };

  const yoga = createYoga<Record<string, unknown>, GraphQLContext>({
    schema: deps.schema,
    graphqlEndpoint: GRAPHQL_PATH,
    context: async (initial: { request?: Request; socketAuthorization?: string | null; req?: IncomingMessage }) => {
      const { request, socketAuthorization, req } = initial;
      const log = req ? requestRecordFor(req, deps.logger).log : deps.logger;
      // Built on yoga's context object itself (context.ts says why); nothing is left to merge.
      await createContext(socketAuthorization !== undefined ? socketAuthorization : request?.headers.get('authorization'), log, initial);
      return {} as GraphQLContext;
    },
    maskedErrors: { maskError },
    // useRequestBodyLimit does it, without counting a body whose length is declared.
    maxRequestBodySize: false,
    plugins: [
      // Served from the npm package (GraphiQL works without internet access), compressed and cached.
      useGraphiQLPage({
        endpoint: GRAPHQL_PATH,
        graphiql: { title: 'chat-outbox', subscriptionsProtocol: 'WS', shouldPersistHeaders: true, ...deps.graphiql },
      }),
      useCsrfPrevention(),
      useRequestBodyLimit(deps.limits.maxBodyBytes),
      useRequestParseErrors(),
      // Before parsing: a hash becomes its document (or the request is refused) first.
      ...persisted.plugins,
      useOperationLimits(deps.limits),
      useRequestErrorCodes(),
      useOperationTracing(),
      useOperationObservability({ metrics, logger: deps.logger }),
      // Before useUserLimits, which wraps whatever subscribe function it finds.
      subscriptionGroups.plugin(),
      // After observability, so that operations it refuses are still counted and logged.
      useUserLimits({ rates: userLimits.rates, subscriptionsPerUser: userLimits.options.subscriptionsPerUser }),
    ],
    cors: corsPolicy(deps.cors ?? { origins: [] }),
    // useGraphiQLPage serves it instead.
    graphiql: false,
    landingPage: false,
    logging: yogaLogging(deps.logger),
  });

  const ops = createOpsEndpoints({ metrics: deps.serveMetrics === false ? null : metrics, health, logger: deps.logger });
  const writeDeadline = createWriteDeadline({
    timeoutMs: deps.writeTimeoutMs ?? 0,
    clock: systemClock,
    onCut: (transport) => {
      metrics.subscriptions.recordConnectionCut(transport as SubscriptionTransport);
      deps.logger.warn({ transport, timeoutMs: deps.writeTimeoutMs }, 'subscriber connection cut: its output did not drain');
    },
  });
  // SSE responses stream until the client leaves: they are the HTTP requests with a write deadline.
  const graphqlOverHttp = (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers.accept?.includes('text/event-stream')) {
      res.once('close', writeDeadline.watch({ buffered: () => res.writableLength, cut: () => res.destroy() }, 'sse'));
    }
    return yoga(req, res);
  };
  const httpServer: Server = createServer(createHttpHandler({ logger: deps.logger, ops, next: graphqlOverHttp }));
  const wsServer = new WebSocketServer({ server: httpServer, path: GRAPHQL_PATH, ...wsLimits.serverOptions });
  wsServer.on('connection', (socket) => {
    socket.once('close', writeDeadline.watch({ buffered: () => socket.bufferedAmount, cut: () => socket.terminate() }, 'ws'));
  });
  const wsMetrics = graphqlWsMetricsHooks(metrics);
  const wsDisposable = useServer(
    {
      connectionInitWaitTimeout: wsLimits.connectionInitWaitTimeout,
      onConnect: async (ctx) => {
        // Counted before the await: onClose may run meanwhile, and must find it counted.
        wsMetrics.onConnect(ctx);
        if (!wsLimits.claimSocket(ctx, await socketUserId(ctx.connectionParams))) return false;
      },
      onClose: (ctx) => {
        wsLimits.onClose(ctx);
        wsMetrics.onClose(ctx);
      },
      // The envelop-wrapped execute/subscribe of this operation travel in rootValue (yoga's recipe).
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args),
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args),
      onSubscribe: async (ctx, _id, received) => {
        const overLimit = wsLimits.admitOperation(ctx);
        if (overLimit) return overLimit;
        const params = await persisted.resolve(received);
        if (params instanceof GraphQLError) return [withoutHttpExtension(params)];
        const payload = { ...received, ...params, query: params.query ?? '' };
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          socketAuthorization: socketAuthorization(ctx.connectionParams, payload.extensions),
        });
        let document: DocumentNode;
        try {
          document = parse(payload.query);
        } catch (error) {
          // A syntax error is this operation's problem: answer it, keep the socket open.
          if (error instanceof GraphQLError) return [withoutHttpExtension(error)];
          throw error;
        }
        const contextValue = await contextFactory();
        if (!wsLimits.claimSocket(ctx, viewerIdOf(contextValue))) return wsLimits.tooManyConnectionsErrors();
        const args = {
          schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue,
          rootValue: { execute, subscribe },
        };
        const errors = validate(args.schema, args.document);
        if (errors.length) return errors.map(withoutHttpExtension);
        return args;
      },
    },
    wsServer,
    deps.keepAliveMs,
  );
  quietOversizedMessages(wsServer);

  let running: RunningServer | null = null;

  return {
    yoga,
    httpServer,
    subscriptionGroups,
    metrics,
    health,
    async start(port: number, host: string): Promise<RunningServer> {
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => {
          httpServer.off('error', reject);
          resolve();
        });
      });
      const address = httpServer.address() as AddressInfo;
      const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
      running = { port: address.port, url: `http://${shownHost}:${address.port}` };
      return running;
    },
    /** Closes sockets (clients are told the server is going away) and stops accepting requests. */
    async stop(): Promise<void> {
      writeDeadline.stop();
      for (const client of wsServer.clients) client.close(GOING_AWAY, 'Server shutting down');
      await wsDisposable.dispose();
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      await yoga.dispose();
      running = null;
    },
    get running() {
      return running;
    },
  };
}

export type AppServer = ReturnType<typeof buildServer>;
