import type { Metrics } from './metrics.ts';

/**
 * graphql-ws hooks that keep `graphql_ws_connected_clients` right: a connection counts from its
 * connection_init until its socket closes. `onClose` runs for every socket, also one refused in
 * `onConnect`, so the set makes the decrement match exactly one increment.
 *
 * Active subscriptions are counted in the envelop plugin (graphql-operations.plugin.ts), which sees
 * both graphql-ws and SSE streams and their end, whatever ends them.
 */
export function graphqlWsMetricsHooks(metrics: Metrics) {
  const counted = new WeakSet<object>();
  return {
    onConnect(ctx: object): void {
      if (counted.has(ctx)) return;
      counted.add(ctx);
      metrics.subscriptions.wsConnectedClients.inc();
    },
    onClose(ctx: object): void {
      if (counted.delete(ctx)) metrics.subscriptions.wsConnectedClients.dec();
    },
  };
}
