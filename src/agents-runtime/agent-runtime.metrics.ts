import { Counter, Histogram, type Registry } from 'prom-client';

export type ReplyOutcome = 'answered' | 'retried' | 'failed' | 'already_answered' | 'released';

/** The runtime's instruments, on the app's registry (its metrics endpoint shows them). */
export function createAgentRuntimeMetrics(registry: Registry | null) {
  const registers = registry ? [registry] : [];
  const replies = new Counter({
    name: 'agent_replies_total',
    help: 'Attempts at agent replies by outcome: answered, retried (a transient adapter error, another attempt follows), failed (a system notice was posted instead), already_answered (another process committed the reply first), released (stopping)',
    labelNames: ['outcome'] as const,
    registers,
  });
  const replySeconds = new Histogram({
    name: 'agent_reply_seconds',
    help: 'From the start of an attempt to its committed reply',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers,
  });
  return {
    record(outcome: ReplyOutcome) {
      replies.inc({ outcome });
    },
    observeReply(seconds: number) {
      replySeconds.observe(seconds);
    },
  };
}
