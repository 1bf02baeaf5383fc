import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';
import type { EventBus } from '../bus/event-bus.ts';
import { AgentSchema } from '../domain/agents/agent.entity.ts';
import type { RuntimeAgentKind } from '../domain/agents/agent-settings.ts';
import { recordAgentMessage, recordSystemNotice } from '../domain/chat/chat.service.ts';
import { MessageSchema } from '../domain/chat/message.entity.ts';
import { MAX_MESSAGE_BODY_LENGTH } from '../domain/chat/chat.service.ts';
import { backoffMs } from '../outbox/backoff.ts';
import { systemClock, type Clock } from '../platform/clock.ts';
import { dbOf } from '../platform/db/database.ts';
import { forkEm, type Orm } from '../platform/db/orm.ts';
import type { Logger } from '../platform/logger.ts';
import { AgentAdapterError, type AgentAdapter, type ConversationMessage } from './agent-adapter.ts';
import type { AgentMetrics } from '../platform/observability/metrics.ts';
import { claimReplyJobs, extendLeases, fillReplyJobs, markJobFinished, releaseJob, scheduleRetry, type ReplyJobRow } from './agent-runtime.sql.ts';

export interface AgentRuntimeOptions {
  concurrency: number;
  pollIntervalMs: number;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  leaseMs: number;
  replyTimeoutMs: number;
  contextMessages: number;
  contextMaxChars: number;
}

export interface AgentRuntimeDeps {
  orm: Orm;
  bus: EventBus;
  logger: Logger;
  options: AgentRuntimeOptions;
  /** The adapter of each kind of agent. */
  adapters: Record<RuntimeAgentKind, AgentAdapter>;
  metrics?: AgentMetrics;
  /** Times polling, heartbeats and backoff; default: the real clock. */
  clock?: Clock;
}

/** What a user sees when the agent could not answer after every attempt. */
export const AGENT_FAILED_NOTICE = (agentName: string) => `${agentName} could not answer this message. Send it again to retry.`;

/** Most user-message events turned into jobs per statement. */
const FILL_BATCH = 1_000;

/**
 * Answers committed user messages with the active agent's reply (docs/agents.md). A consumer of
 * the event log beside the publisher, started and stopped by the app:
 *
 * 1. fill: committed user `message_created` events become reply jobs, keyed by the message
 *    (agent-runtime.sql.ts); nothing on the request path asks for a reply.
 * 2. claim: due jobs are claimed with a lease (SKIP LOCKED), the attempt counted at once.
 * 3. reply: the agent's adapter streams the reply; each piece goes to session subscribers as
 *    transient activity over the bus (never the outbox). A heartbeat keeps the lease.
 * 4. commit: the reply is stored with `recordAgentMessage` (the message and its `message_created`
 *    event in one transaction) and the job marked done in the same transaction. The message's
 *    unique `reply_to_id` makes a second reply impossible: a process killed mid-reply, a second
 *    runtime that took over a lapsed lease, or a job filled twice cannot commit another one.
 *    An interrupted reply is retried from scratch once its lease lapses.
 * 5. failure: transient adapter errors are retried with backoff; after the last attempt (or at
 *    once for a permanent error) a `system` message answers in the agent's place.
 *
 * A reply in flight when the user switches agent completes as the agent it was asked of.
 */
export class AgentRuntime {
  readonly #deps: AgentRuntimeDeps;
  readonly #clock: Clock;
  readonly #token = randomUUID();
  #running = false;
  #timer: (() => void) | null = null;
  #heartbeat: (() => void) | null = null;
  #cycle: Promise<void> = Promise.resolve();
  #wakeAgain = false;
  /** Replies in flight, by the message they answer. */
  readonly #inFlight = new Map<string, { abort: AbortController; done: Promise<void> }>();
  readonly #stopping = new AbortController();

  constructor(deps: AgentRuntimeDeps) {
    this.#deps = deps;
    this.#clock = deps.clock ?? systemClock;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#scheduleHeartbeat();
    this.nudge();
  }

  /** Look for new messages and due retries now (after a local commit). */
  nudge(): void {
    if (!this.#running) return;
    this.#timer?.();
    this.#timer = null;
    this.#wakeAgain = true;
    this.#cycle = this.#cycle.then(async () => {
      if (!this.#running || !this.#wakeAgain) return;
      this.#wakeAgain = false;
      try {
        await this.#tick();
      } catch (error) {
        this.#deps.logger.error({ err: String(error) }, 'agent runtime tick failed; retrying at the next interval');
      }
      this.#schedule(this.#deps.options.pollIntervalMs);
    });
  }

  /**
   * Stops claiming, aborts the replies in flight and gives their jobs back without counting the
   * attempt (the next start or another process answers them from scratch); idempotent.
   */
  async stop(): Promise<void> {
    this.#running = false;
    this.#timer?.();
    this.#timer = null;
    this.#heartbeat?.();
    this.#heartbeat = null;
    this.#stopping.abort();
    for (const reply of this.#inFlight.values()) reply.abort.abort();
    await this.#cycle;
    await Promise.all([...this.#inFlight.values()].map((reply) => reply.done));
  }

  /** Replies being written now (for tests and status). */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  #schedule(ms: number) {
    if (!this.#running) return;
    this.#timer?.();
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = null;
      this.nudge();
    }, ms);
  }

  #scheduleHeartbeat() {
    const every = Math.max(50, Math.floor(this.#deps.options.leaseMs / 3));
    this.#heartbeat = this.#clock.setTimeout(() => {
      const ids = [...this.#inFlight.keys()];
      void extendLeases(dbOf(forkEm(this.#deps.orm)), ids, this.#token, this.#deps.options.leaseMs)
        .then((held) => {
          // A lease that lapsed (a long pause) may be another process's now: stop writing.
          for (const id of ids) if (!held.has(id)) this.#inFlight.get(id)?.abort.abort();
        })
        .catch((error) => this.#deps.logger.warn({ err: String(error) }, 'agent reply heartbeat failed'))
        .finally(() => {
          if (this.#running) this.#scheduleHeartbeat();
        });
    }, every);
  }

  async #tick(): Promise<void> {
    const { orm, options } = this.#deps;
    for (;;) {
      const filled = await forkEm(orm).transactional((tx) => fillReplyJobs(dbOf(tx), FILL_BATCH));
      if (!filled.more || !this.#running) break;
    }
    const free = options.concurrency - this.#inFlight.size;
    if (free <= 0 || !this.#running) return;
    const jobs = await claimReplyJobs(dbOf(forkEm(orm)), { limit: free, token: this.#token, leaseMs: options.leaseMs });
    for (const job of jobs) {
      const abort = new AbortController();
      const done = this.#answer(job, abort.signal).finally(() => {
        this.#inFlight.delete(job.reply_to_message_id);
        // A slot is free, and the session's next message may be waiting for this one.
        this.nudge();
      });
      this.#inFlight.set(job.reply_to_message_id, { abort, done });
    }
  }

  async #answer(job: ReplyJobRow, signal: AbortSignal): Promise<void> {
    const { orm, bus, logger, options, metrics } = this.#deps;
    const id = job.reply_to_message_id;
    const log = logger.child({ replyTo: id, sessionId: job.session_id, agentId: job.agent_id, attempt: job.attempts });
    const startedAt = this.#clock.now();
    const em = forkEm(orm);
    const agent = await em.findOne(AgentSchema, { id: job.agent_id });
    if (!agent) {
      // Deleted since: the job row went with it (on delete cascade).
      return;
    }
    const agentName = agent.name;
    if (agent.kind === 'external') {
      // Made external after this job was filled: its own runtime answers (agentInbox), not this one.
      await markJobFinished(dbOf(em), id, 'done');
      return;
    }

    if (job.attempts > options.maxAttempts) {
      // Attempts are counted at claim: a reply that crashed its process every time ends here.
      await this.#fail(job, agentName, 'no attempts left');
      return;
    }

    const timeout = AbortSignal.timeout(options.replyTimeoutMs);
    const attemptSignal = AbortSignal.any([signal, timeout]);
    let text = '';
    try {
      const messages = await this.#conversation(job, agent.settings.instructions);
      bus.publishActivity({ kind: 'agent_reply_started', projectId: job.project_id, sessionId: job.session_id, replyTo: id, agentId: agent.id, at: new Date().toISOString() });
      const adapter = this.#deps.adapters[agent.kind as RuntimeAgentKind];
      let index = 0;
      for await (const piece of adapter.reply({ agent: { id: agent.id, name: agentName, kind: agent.kind, settings: agent.settings }, messages, signal: attemptSignal })) {
        if (attemptSignal.aborted) break;
        if (!piece) continue;
        text += piece;
        bus.publishActivity({ kind: 'agent_reply_delta', projectId: job.project_id, sessionId: job.session_id, replyTo: id, agentId: agent.id, index: index++, text: piece, at: new Date().toISOString() });
      }
      attemptSignal.throwIfAborted();
      const body = [...text].slice(0, MAX_MESSAGE_BODY_LENGTH).join('');
      if (!body.trim()) throw new AgentAdapterError('the agent returned an empty reply', true);
      await this.#commit(job, agent.id, body);
      metrics?.observeReply((this.#clock.now() - startedAt) / 1000);
      log.debug('agent reply committed');
    } catch (error) {
      if (signal.aborted && !this.#running) {
        // Stopping: hand the job back uncounted; it is answered from scratch later.
        await releaseJob(dbOf(forkEm(orm)), id, this.#token).catch(() => {});
        metrics?.record('released');
        return;
      }
      if (signal.aborted) {
        // Our lease lapsed and the job may be another process's now: leave it to that one.
        return;
      }
      if (error instanceof UniqueConstraintViolationException) {
        await markJobFinished(dbOf(forkEm(orm)), id, 'done');
        metrics?.record('already_answered');
        return;
      }
      const message = timeout.aborted ? `no reply within ${options.replyTimeoutMs} ms` : error instanceof Error ? error.message : String(error);
      const transient = timeout.aborted || !(error instanceof AgentAdapterError) || error.transient;
      if (transient && job.attempts < options.maxAttempts) {
        const wait = backoffMs(job.attempts, { baseMs: options.backoffBaseMs, maxMs: options.backoffMaxMs });
        await scheduleRetry(dbOf(forkEm(orm)), id, this.#token, wait, message);
        metrics?.record('retried');
        log.warn({ err: message, retryInMs: wait }, 'agent reply failed; retrying');
        this.#schedule(Math.min(wait, options.pollIntervalMs));
        return;
      }
      log.warn({ err: message }, 'agent reply failed for good; posting a notice');
      await this.#fail(job, agentName, message);
    }
  }

  /** The reply and its event, and the job marked done, in one transaction. */
  async #commit(job: ReplyJobRow, agentId: string, body: string): Promise<void> {
    await forkEm(this.#deps.orm).transactional(async (tx) => {
      // The job first: the reply's event locks the project's row and must be the last write.
      await markJobFinished(dbOf(tx), job.reply_to_message_id, 'done');
      await recordAgentMessage(tx, { sessionId: job.session_id, agentId, body, replyToMessageId: job.reply_to_message_id });
    });
    this.#deps.metrics?.record('answered');
  }

  /** A `system` notice answers the message instead, so no client waits forever. */
  async #fail(job: ReplyJobRow, agentName: string, reason: string): Promise<void> {
    try {
      await forkEm(this.#deps.orm).transactional(async (tx) => {
        await markJobFinished(dbOf(tx), job.reply_to_message_id, 'failed', reason);
        await recordSystemNotice(tx, { sessionId: job.session_id, body: AGENT_FAILED_NOTICE(agentName), replyToMessageId: job.reply_to_message_id });
      });
      this.#deps.metrics?.record('failed');
    } catch (error) {
      if (!(error instanceof UniqueConstraintViolationException)) throw error;
      await markJobFinished(dbOf(forkEm(this.#deps.orm)), job.reply_to_message_id, 'done');
      this.#deps.metrics?.record('already_answered');
    }
  }

  /**
   * The agent's instructions, then the session's most recent messages up to the one answered
   * (newest `contextMessages`, within `contextMaxChars`: the oldest go first, the answered one
   * always stays), oldest first.
   */
  async #conversation(job: ReplyJobRow, instructions: string | undefined): Promise<ConversationMessage[]> {
    const { contextMessages, contextMaxChars } = this.#deps.options;
    const em = forkEm(this.#deps.orm);
    const answered = await em.findOneOrFail(MessageSchema, { id: job.reply_to_message_id });
    const recent = await em.find(
      MessageSchema,
      { session: job.session_id, $or: [{ createdAt: { $lt: answered.createdAt } }, { createdAt: answered.createdAt, id: { $lte: answered.id } }] },
      { orderBy: { createdAt: 'desc', id: 'desc' }, limit: contextMessages },
    );
    const picked: ConversationMessage[] = [];
    let budget = contextMaxChars;
    for (const message of recent) {
      if (picked.length > 0 && message.body.length > budget) break;
      budget -= message.body.length;
      picked.push({ role: message.role === 'agent' ? 'assistant' : message.role === 'system' ? 'system' : 'user', content: message.body });
    }
    picked.reverse();
    return instructions ? [{ role: 'system', content: instructions }, ...picked] : picked;
  }
}
