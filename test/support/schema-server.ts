import { GraphQLInt, GraphQLObjectType, GraphQLSchema, GraphQLString } from 'graphql';
import { createTokenService } from '../../src/platform/auth/token.ts';
import { loadConfig } from '../../src/platform/config.ts';
import { createOrm } from '../../src/platform/db/orm.ts';
import type { GraphQLContext } from '../../src/platform/graphql/context.ts';
import type { Logger } from '../../src/platform/logger.ts';
import { createMetrics } from '../../src/platform/observability/metrics.ts';
import { createEventStreams } from '../../src/subscriptions/event-subscription.service.ts';
import { createMemoryBus } from '../../src/bus/event-bus.ts';
import { buildServer, type AppServer } from '../../src/server.ts';
import { createTestDatabase } from './app.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A schema of our own for the server's plumbing (transports, hooks, logging) while the real
 * subscriptions are being built elsewhere: `ticks` streams until the client leaves, `failing`
 * throws from its source stream after one value, `logged` writes through `ctx.log`.
 */
export const plumbingSchema = new GraphQLSchema({
  query: new GraphQLObjectType<unknown, GraphQLContext>({
    name: 'Query',
    fields: {
      logged: {
        type: GraphQLString,
        resolve: (_root, _args, ctx) => {
          ctx.log.info({ probe: 'resolver' }, 'resolver wrote through ctx.log');
          return 'ok';
        },
      },
    },
  }),
  subscription: new GraphQLObjectType<unknown, GraphQLContext>({
    name: 'Subscription',
    fields: {
      ticks: {
        type: GraphQLInt,
        subscribe: async function* () {
          for (let tick = 0; ; tick++) {
            yield { ticks: tick };
            await sleep(10);
          }
        },
      },
      failing: {
        type: GraphQLInt,
        subscribe: async function* () {
          yield { failing: 1 };
          throw new Error('source stream broke');
        },
      },
    },
  }),
});

export interface SchemaServer {
  server: AppServer;
  url: string;
  wsUrl: string;
  stop(): Promise<void>;
}

/** buildServer with `plumbingSchema` on its own database, on a free port. */
export async function startSchemaServer(logger: Logger): Promise<SchemaServer> {
  const db = await createTestDatabase();
  const orm = await createOrm({ kind: 'postgresql', url: db.url });
  const tokens = createTokenService({ secret: 'x'.repeat(32), issuer: 'test' });
  const events = createEventStreams({ orm, bus: createMemoryBus(), options: { bufferSize: 100, authRecheckMs: 0, keepAliveMs: 0, writeTimeoutMs: 0 } });
  const server = buildServer({ orm, schema: plumbingSchema, tokens, events, logger, metrics: createMetrics(), keepAliveMs: 0, limits: loadConfig({}).operationLimits });
  const running = await server.start(0, '127.0.0.1');
  return {
    server,
    url: running.url,
    wsUrl: `ws://127.0.0.1:${running.port}/graphql`,
    async stop() {
      await server.stop();
      await orm.close();
      await db.drop();
    },
  };
}
