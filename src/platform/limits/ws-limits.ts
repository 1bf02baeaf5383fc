import { GraphQLError } from 'graphql';
import { CloseCode, type Context } from 'graphql-ws';
import type { Extra } from 'graphql-ws/use/ws';
import type { WebSocketServer } from 'ws';
import type { ErrorCode } from '../errors.ts';
import { tooManySubscriptionsError } from './limit.errors.ts';

/**
 * Close codes a client of this server can see, named as graphql-ws names its own. The ones this
 * server adds live in 4000-4999 (private use) next to graphql-ws's 44xx/45xx.
 */
export const WsCloseCode = {
  /** The client did not send `connection_init` within WS_CONNECTION_INIT_TIMEOUT_MS (graphql-ws's own code). */
  ConnectionInitialisationTimeout: CloseCode.ConnectionInitialisationTimeout,
  /**
   * The user already has WS_MAX_CONNECTIONS_PER_USER sockets open on this instance. Not 4429:
   * graphql-ws uses that for "too many initialisation requests" and its client never retries it,
   * while this condition clears once the user's other sockets close (the client retries with
   * back-off).
   */
  TooManyConnections: 4430,
  /** A message larger than WS_MAX_MESSAGE_BYTES (RFC 6455 "Message Too Big", sent by `ws` itself). */
  MessageTooBig: 1009,
} as const;

export interface WsLimitOptions {
  /** Operations one connection may have running or open at once (0: no limit). */
  subscriptionsPerConnection: number;
  /** Sockets one user may hold open on this instance (0: no limit). */
  connectionsPerUser: number;
  connectionInitTimeoutMs: number;
  maxMessageBytes: number;
}

type WsContext = Context<Record<string, unknown> | undefined, Extra>;

/**
 * graphql-ws limits for one instance, counted in memory:
 * - per connection, the operations it holds at once: graphql-ws keeps every running or streaming
 *   operation of a socket in `ctx.subscriptions` (and drops it however it ends), so that record is
 *   the count and nothing here can leak;
 * - per user, the sockets open: a socket belongs to the user whose token it presents in
 *   `connectionParams`, or else to the viewer of its first authenticated operation (GraphiQL sends
 *   the token per operation). One too many is closed with 4430. The count is given back when the
 *   socket closes, also when it closes while its token is still being checked.
 *
 * The `connection_init` timeout and the message size limit are options of graphql-ws and `ws`
 * (`serverOptions`, `connectionInitWaitTimeout`).
 */
export function createWsLimits(options: WsLimitOptions) {
  const socketsByUser = new Map<string, number>();
  const ownerOf = new WeakMap<WsContext, string>();
  const closed = new WeakSet<WsContext>();

  return {
    /** For `new WebSocketServer(...)`: `ws` closes the socket with 1009 on a larger message. */
    serverOptions: { maxPayload: options.maxMessageBytes },
    connectionInitWaitTimeout: options.connectionInitTimeoutMs,

    /**
     * Counts the socket for `userId` (null: not known yet). False when the user is over the limit:
     * the socket is then being closed with 4430 and nothing more should be done for it.
     */
    claimSocket(ctx: WsContext, userId: string | null): boolean {
      if (!userId || options.connectionsPerUser <= 0 || ownerOf.has(ctx) || closed.has(ctx)) return true;
      const open = socketsByUser.get(userId) ?? 0;
      if (open >= options.connectionsPerUser) {
        ctx.extra.socket.close(WsCloseCode.TooManyConnections, 'Too many connections for this user');
        return false;
      }
      socketsByUser.set(userId, open + 1);
      ownerOf.set(ctx, userId);
      return true;
    },

    /** The errors to answer an operation with when the connection already holds its limit, else null. */
    admitOperation(ctx: WsContext): readonly GraphQLError[] | null {
      if (options.subscriptionsPerConnection <= 0) return null;
      // graphql-ws has already entered this operation's id.
      if (Object.keys(ctx.subscriptions).length <= options.subscriptionsPerConnection) return null;
      return [tooManySubscriptionsError('connection', options.subscriptionsPerConnection)];
    },

    /** For an operation refused by `claimSocket`: graphql-ws needs errors, the client sees the close code. */
    tooManyConnectionsErrors(): readonly GraphQLError[] {
      const code: ErrorCode = 'TOO_MANY_SUBSCRIPTIONS';
      return [new GraphQLError(`At most ${options.connectionsPerUser} WebSocket connections may be open for this user`, { extensions: { code, limit: options.connectionsPerUser, scope: 'connections' } })];
    },

    /** graphql-ws `onClose`: runs once for every socket, whatever closed it. */
    onClose(ctx: WsContext): void {
      closed.add(ctx);
      const userId = ownerOf.get(ctx);
      if (userId === undefined) return;
      ownerOf.delete(ctx);
      const left = (socketsByUser.get(userId) ?? 1) - 1;
      if (left > 0) socketsByUser.set(userId, left);
      else socketsByUser.delete(userId);
    },
  };
}

export type WsLimits = ReturnType<typeof createWsLimits>;

/**
 * `ws` closes a socket with 1009 when a message is over `maxPayload`, then emits the error on the
 * socket, and graphql-ws prints every socket error to stderr as an "Internal error ... Please check
 * your implementation". An oversized message is neither, and one stderr line per attempt is noise
 * anyone can produce, so that one error is kept from graphql-ws's handler; every other socket error
 * still reaches it. Register after `useServer`, whose connection listener adds the handler.
 */
export function quietOversizedMessages(wsServer: WebSocketServer): void {
  wsServer.on('connection', (socket) => {
    const handlers = socket.rawListeners('error') as ((error: Error) => void)[];
    socket.removeAllListeners('error');
    socket.on('error', (error) => {
      if ((error as { code?: unknown }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return;
      for (const handler of handlers) handler.call(socket, error);
    });
  });
}
