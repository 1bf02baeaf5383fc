// The design an outbox replaces, as a benchmark peer: a bare graphql-yoga server over pg that
// inserts one row per sendMessage and publishes the event in-process (yoga's createPubSub), with
// graphql-ws subscriptions on the same port. No outbox, no authorisation, no ordering or gap
// fill: what it delivers can disagree with the database (a publish after a commit that the process
// dies before, or a publish of a row another instance never sees). It speaks the same
// `sendMessage` / `projectEvents` / `sessionEvents` shape as chat-outbox, so a bench sends the
// same documents to both.
//
//   DATABASE_URL=postgres://... PORT=0 node bench/peers/bare-server.ts
//
// Prints one JSON line `{"msg":"bare server is listening","url":...}` once it listens.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { useServer } from 'graphql-ws/use/ws';
import { createPubSub, createSchema, createYoga } from 'graphql-yoga';
import pg from 'pg';
import { WebSocketServer } from 'ws';

/** Tables of the bare server; a bench creates its sessions in `bare_session` directly. */
export const BARE_SCHEMA = `
  create table if not exists bare_session (id uuid primary key, project_id uuid not null);
  create table if not exists bare_message (
    id uuid primary key default gen_random_uuid(),
    session_id uuid not null references bare_session (id),
    project_id uuid not null,
    author_user_id text not null,
    body text not null,
    created_at timestamptz not null default now()
  );
  create index if not exists bare_message_session_idx on bare_message (session_id, created_at);`;

interface BareEvent {
  eventId: string;
  type: 'message_created';
  sequence: number;
  projectSequence: number;
  projectId: string;
  sessionId: string;
  userId: string;
  message: { id: string; body: string; sessionId: string; createdAt: string };
}

const typeDefs = /* GraphQL */ `
  type Message { id: ID! body: String! sessionId: ID! createdAt: String! }
  interface ChatEvent { eventId: ID! type: String! sequence: Int! projectSequence: Int! projectId: ID! sessionId: ID userId: String! }
  type MessageCreatedEvent implements ChatEvent {
    eventId: ID! type: String! sequence: Int! projectSequence: Int! projectId: ID! sessionId: ID userId: String! message: Message!
  }
  input SendMessageInput { sessionId: ID! body: String! }
  type SendMessagePayload { eventId: ID! message: Message! }
  type Query { ok: Boolean! }
  type Mutation { sendMessage(input: SendMessageInput!): SendMessagePayload! }
  type Subscription { projectEvents(projectId: ID!): ChatEvent! sessionEvents(sessionId: ID!): ChatEvent! }
`;

export async function startBareServer(options: { databaseUrl: string; port: number; host?: string; poolSize?: number }) {
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: options.poolSize ?? 10 });
  await pool.query(BARE_SCHEMA);
  const pubSub = createPubSub<{ [topic: string]: [BareEvent] }>();
  // Positions counted in memory: what a naive server has, and wrong across instances or restarts.
  const projectSequences = new Map<string, number>();
  const sessionSequences = new Map<string, number>();
  const next = (counters: Map<string, number>, key: string) => {
    const value = (counters.get(key) ?? 0) + 1;
    counters.set(key, value);
    return value;
  };

  const schema = createSchema({
    typeDefs,
    resolvers: {
      Query: { ok: () => true },
      ChatEvent: { __resolveType: () => 'MessageCreatedEvent' },
      Mutation: {
        async sendMessage(_root: unknown, { input }: { input: { sessionId: string; body: string } }) {
          const { rows } = await pool.query<{ id: string; project_id: string; created_at: Date }>(
            `insert into bare_message (session_id, project_id, author_user_id, body)
             select id, project_id, 'bench', $2 from bare_session where id = $1
             returning id, project_id, created_at`,
            [input.sessionId, input.body],
          );
          const row = rows[0];
          if (!row) throw new Error('no such session');
          const message = { id: row.id, body: input.body, sessionId: input.sessionId, createdAt: row.created_at.toISOString() };
          const event: BareEvent = {
            eventId: row.id,
            type: 'message_created',
            sequence: next(sessionSequences, input.sessionId),
            projectSequence: next(projectSequences, row.project_id),
            projectId: row.project_id,
            sessionId: input.sessionId,
            userId: 'bench',
            message,
          };
          pubSub.publish(`project:${row.project_id}`, event);
          pubSub.publish(`session:${input.sessionId}`, event);
          return { eventId: row.id, message };
        },
      },
      Subscription: {
        projectEvents: {
          subscribe: (_root: unknown, { projectId }: { projectId: string }) => pubSub.subscribe(`project:${projectId}`),
          resolve: (event: BareEvent) => event,
        },
        sessionEvents: {
          subscribe: (_root: unknown, { sessionId }: { sessionId: string }) => pubSub.subscribe(`session:${sessionId}`),
          resolve: (event: BareEvent) => event,
        },
      },
    },
  });

  const yoga = createYoga({ schema, graphiql: false, logging: false, maskedErrors: true });
  const server = createServer(yoga);
  const wss = new WebSocketServer({ server, path: yoga.graphqlEndpoint });
  // yoga's recipe for graphql-ws: the enveloped execute/subscribe travel in rootValue.
  useServer(
    {
      execute: (args: any) => args.rootValue.execute(args),
      subscribe: (args: any) => args.rootValue.subscribe(args),
      onSubscribe: async (ctx, _id, params) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({ ...ctx, req: ctx.extra.request, socket: ctx.extra.socket, params });
        const args = {
          schema,
          operationName: params.operationName,
          document: parse(params.query),
          variableValues: params.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
        const errors = validate(args.schema, args.document);
        if (errors.length) return errors;
        return args;
      },
    },
    wss,
  );
  await new Promise<void>((resolve) => server.listen(options.port, options.host ?? '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}${yoga.graphqlEndpoint}`,
    async stop() {
      for (const client of wss.clients) client.terminate();
      await new Promise((resolve) => wss.close(resolve));
      await new Promise((resolve) => server.close(resolve));
      await pool.end();
    },
  };
}

if (import.meta.main) {
  const server = await startBareServer({
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    port: Number(process.env.PORT ?? 0),
    host: process.env.HOST,
    poolSize: process.env.BARE_POOL_SIZE ? Number(process.env.BARE_POOL_SIZE) : undefined,
  });
  console.log(JSON.stringify({ msg: 'bare server is listening', url: server.url }));
  const stop = async () => {
    await server.stop();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
