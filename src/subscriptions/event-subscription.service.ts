import type { Viewer } from '../platform/auth/token.ts';
import { requireSession } from '../domain/chat/chat.service.ts';
import { systemClock, type Clock } from '../platform/clock.ts';
import type { SubscriptionOptions } from '../platform/config.ts';
import { dbOf } from '../platform/db/database.ts';
import { forkEm, type Orm } from '../platform/db/orm.ts';
import { badInput, cursorExpired, DomainError, notFound } from '../platform/errors.ts';
import { requireMembership } from '../domain/projects/project.service.ts';
import type { EventBus } from '../bus/event-bus.ts';
import { requireId } from '../platform/validation.ts';
import type { DomainEvent } from '../events/domain-event.ts';
import { eventsAfter, expiredHorizon, newestPosition, positionOfEvent, type EventStreamScope } from '../events/event-log.repository.ts';
import { withAgentActivity } from './agent-activity-stream.ts';
import { createMembershipChecks, type Moment } from './membership-checks.ts';
import { orderedEventStream, StreamEnd, type OrderedStreamSource } from './event-stream.ts';
import type { AgentPrincipal } from '../platform/auth/agent-principal.ts';
import { requireActiveCredential } from '../domain/agents/agent-credential.service.ts';
import { isAddressedTo } from '../domain/agents/agent-credential.repository.ts';

export interface ResumePoint {
  /** The last eventId the client received. */
  after?: string | null;
  /** Or the last sequence number it received (0: everything from the start). */
  afterSequence?: number | null;
}

/** A stream over one gapless position column of event_outbox (see EventStreamScope). */
interface StreamShape extends EventStreamScope {
  projectId: string;
  accepts(event: DomainEvent): boolean;
  positionOf(event: DomainEvent): number;
}

export interface EventStreamsDeps {
  orm: Orm;
  bus: EventBus;
  options: SubscriptionOptions;
  onDelivered?(event: DomainEvent): void;
  onEnd?(reason: 'client' | 'error' | 'slow-consumer'): void;
  /** Times token expiry and membership re-checks; default: the real clock. */
  clock?: Clock;
}

/**
 * Opens `sessionEvents` / `projectEvents` streams for a viewer. It can only subscribe: publishing
 * is the OutboxPublisher's alone. Every database read runs on a fresh EntityManager fork, so a
 * subscription that lives for hours holds no identity map (docs/design-notes.md#subscription-context-lifetime).
 */
export function createEventStreams(deps: EventStreamsDeps) {
  const db = () => dbOf(forkEm(deps.orm));
  const clock = deps.clock ?? systemClock;

  const memberships = createMembershipChecks({ orm: deps.orm, clock, recheckMs: deps.options.authRecheckMs });

  /**
   * Membership is re-checked for an event when the last check is `authRecheckMs` older than the
   * event's arrival (docs/design-notes.md#authorisation-only-at-subscribe-time), from a member list
   * shared by every subscriber of the project (membership-checks.ts). The token's expiry is
   * checked on every event.
   */
  function authorizer(viewer: Viewer, projectId: string, checkedAt: Moment) {
    let passed = checkedAt;
    return async (event: DomainEvent | null) => {
      if (viewer.tokenExpiresAt && viewer.tokenExpiresAt.getTime() <= clock.now()) {
        throw new DomainError('UNAUTHENTICATED', 'The token has expired; subscribe again with a fresh token');
      }
      passed = await memberships.require(projectId, viewer.userId, event, passed);
    };
  }

  /** The newest committed position of a stream, kept on its project or session row. */
  async function currentPosition(stream: StreamShape): Promise<number> {
    const position = await newestPosition(db(), stream);
    if (position === null) throw notFound(stream.counterTable === 'project' ? 'Project' : 'ChatSession', stream.id);
    return position;
  }

  async function resolveStart(resume: ResumePoint, stream: StreamShape): Promise<number | null> {
    if (resume.after != null && resume.afterSequence != null) throw badInput('after', 'Give either after or afterSequence, not both');
    if (resume.afterSequence != null) {
      if (!Number.isInteger(resume.afterSequence) || resume.afterSequence < 0) throw badInput('afterSequence', 'afterSequence must be 0 or more');
      // A position nobody has reached yet would silently skip the events up to it.
      if (resume.afterSequence > (await currentPosition(stream))) {
        throw badInput('afterSequence', 'afterSequence is beyond the newest event of this stream');
      }
      // Events after it were removed by retention: resuming would skip them silently.
      const horizon = await expiredHorizon(db(), stream.id);
      if (horizon && resume.afterSequence < horizon.expiredThrough) throw cursorExpired('afterSequence');
      return resume.afterSequence;
    }
    if (resume.after != null) {
      const eventId = requireId('after', resume.after);
      const position = await positionOfEvent(db(), stream, eventId);
      const horizon = await expiredHorizon(db(), stream.id);
      // An event retention removed is no longer found: its stream has a horizon.
      if (position === null) throw horizon ? cursorExpired('after') : badInput('after', 'after is not an event of this stream');
      if (horizon && position < horizon.expiredThrough) throw cursorExpired('after');
      return position;
    }
    return null;
  }

  function open(viewer: Viewer, stream: StreamShape, resume: ResumePoint, checkedAt: Moment): Promise<AsyncIterableIterator<DomainEvent | StreamEnd>> {
    return openStream(stream, resume, authorizer(viewer, stream.projectId, checkedAt), viewer.tokenExpiresAt);
  }

  async function openStream(
    stream: StreamShape,
    resume: ResumePoint,
    authorize: (event: DomainEvent | null) => Promise<void>,
    endAt: Date | null,
  ): Promise<AsyncIterableIterator<DomainEvent | StreamEnd>> {
    const startAfter = await resolveStart(resume, stream);
    const source: OrderedStreamSource = {
      async subscribeLive(listener, missedSome) {
        const stopMissed = deps.bus.onResubscribed(missedSome);
        try {
          const unsubscribe = await deps.bus.subscribeProject(stream.projectId, (event) => {
            memberships.arrived(event);
            listener(event);
          });
          return () => {
            stopMissed();
            unsubscribe();
          };
        } catch (error) {
          stopMissed();
          throw error;
        }
      },
      accepts: stream.accepts,
      positionOf: stream.positionOf,
      loadAfter: (position, limit) => eventsAfter(db(), stream, position, limit),
      currentPosition: () => currentPosition(stream),
      authorize,
    };
    return orderedEventStream(source, {
      startAfter,
      bufferSize: deps.options.bufferSize,
      endAt,
      clock,
      ...(deps.onDelivered ? { onDelivered: deps.onDelivered } : {}),
      ...(deps.onEnd ? { onEnd: deps.onEnd } : {}),
    });
  }

  /** The credential is re-checked on an event at most every `authRecheckMs`, as a user's membership is. */
  function agentAuthorizer(agent: AgentPrincipal) {
    let checkedAt = clock.now();
    return async (_event: DomainEvent | null) => {
      if (clock.now() - checkedAt < deps.options.authRecheckMs) return;
      await requireActiveCredential(forkEm(deps.orm), agent.credentialId);
      checkedAt = clock.now();
    };
  }

  return {
    /**
     * The user messages addressed to an agent, for its external runtime: the project's committed
     * events in `projectSequence` order (replay after a position, then live, no gaps), of which
     * only user `message_created` events whose author has this agent active and that nobody has
     * answered yet are handed on (agent-credential.repository.ts#isAddressedTo).
     */
    async agentInbox(agent: AgentPrincipal, resume: ResumePoint) {
      const authorize = agentAuthorizer(agent);
      const ordered = await openStream({
        id: agent.projectId,
        projectId: agent.projectId,
        scope: 'project_id',
        position: 'project_sequence',
        counterTable: 'project',
        accepts: () => true,
        positionOf: (event) => event.projectSequence,
      }, resume, authorize, null);
      return onlyAddressed(ordered, (event) =>
        event.type === 'message_created' && event.payload.role === 'user'
          ? isAddressedTo(db(), { messageId: event.payload.messageId, projectId: event.projectId, authorUserId: event.userId, agentId: agent.agentId })
          : false,
      );
    },

    /**
     * Events of one chat session, in session `sequence` order; with `agentActivity`, the agents'
     * transient reply activity slipped in between them (agent-activity-stream.ts).
     */
    async session(viewer: Viewer, sessionIdInput: string, resume: ResumePoint & { agentActivity?: boolean | null }) {
      const sessionId = requireId('sessionId', sessionIdInput);
      const checkedAt = memberships.now();
      const session = await requireSession(forkEm(deps.orm), viewer.userId, sessionId);
      const projectId = session.project.id;
      const ordered = await open(viewer, {
        id: sessionId,
        projectId: session.project.id,
        scope: 'aggregate_id',
        position: 'sequence',
        counterTable: 'chat_session',
        accepts: (event) => event.aggregateId === sessionId,
        positionOf: (event) => event.sequence,
      }, resume, checkedAt);
      if (!resume.agentActivity) return ordered;
      const authorize = authorizer(viewer, projectId, checkedAt);
      return withAgentActivity(ordered, {
        subscribe: (listener) => deps.bus.subscribeActivity(projectId, listener),
        accepts: (activity) => activity.sessionId === sessionId,
        authorize: () => authorize(null),
        bufferSize: deps.options.bufferSize,
      });
    },

    /** Every event of a project (all sessions, agent switches), in `projectSequence` order. */
    async project(viewer: Viewer, projectIdInput: string, resume: ResumePoint) {
      const projectId = requireId('projectId', projectIdInput);
      const checkedAt = memberships.now();
      await requireMembership(forkEm(deps.orm), viewer.userId, projectId);
      return open(viewer, {
        id: projectId,
        projectId,
        scope: 'project_id',
        position: 'project_sequence',
        counterTable: 'project',
        accepts: () => true,
        positionOf: (event) => event.projectSequence,
      }, resume, checkedAt);
    },
  };
}

export type EventStreams = ReturnType<typeof createEventStreams>;

/**
 * The items of `ordered` that `keep` accepts, and its end. Filtering after the ordered stream
 * (not in its `accepts`) keeps its gapless positions intact: skipped events still advance it.
 */
function onlyAddressed(
  ordered: AsyncIterableIterator<DomainEvent | StreamEnd>,
  keep: (event: DomainEvent) => boolean | Promise<boolean>,
): AsyncIterableIterator<DomainEvent | StreamEnd> {
  const iterator: AsyncIterableIterator<DomainEvent | StreamEnd> = {
    async next() {
      for (;;) {
        const result = await ordered.next();
        if (result.done || result.value instanceof StreamEnd || (await keep(result.value))) return result;
      }
    },
    async return() {
      await ordered.return?.();
      return { done: true, value: undefined };
    },
    async throw(error?: unknown) {
      await ordered.return?.();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
