import { AgentSchema } from '../agents/agent.entity.ts';
import type { Em } from '../../platform/db/orm.ts';
import { createdAtCursor, createdAtKey, findPage, keysetOrder, keysetWhere, type Page, type PageRequest } from '../../platform/db/pagination.ts';
import { notFound } from '../../platform/errors.ts';
import { messageCreatedInSession, type MessageRole } from '../../events/domain-event.ts';
import { newId } from '../../platform/db/ids.ts';
import { recordEventWith } from '../../outbox/outbox.writer.ts';
import { requireMembership } from '../projects/project.service.ts';
import { requireId, requireText } from '../../platform/validation.ts';
import { ChatSessionSchema, type IChatSession } from './chat-session.entity.ts';
import { MessageSchema } from './message.entity.ts';
import { insertMessageWithEvent, type NewMessage } from './message.repository.ts';
import { messageView, type MessageView } from './message.view.ts';

/** Characters (code points) in one message body. Long enough for pasted code, short of abuse. */
export const MAX_MESSAGE_BODY_LENGTH = 8_000;
export const MAX_SESSION_TITLE_LENGTH = 200;

/** A session in a project the viewer is a member of, or NOT_FOUND. */
export async function requireSession(em: Em, userId: string, sessionId: string): Promise<IChatSession> {
  // One query: the session, only if the viewer is a member of its project.
  const session = await em.findOne(ChatSessionSchema, { id: sessionId, project: { members: { userId } } });
  if (!session) throw notFound('ChatSession', sessionId);
  return session;
}

export async function getSession(em: Em, userId: string, sessionIdInput: string): Promise<IChatSession> {
  return requireSession(em, userId, requireId('id', sessionIdInput));
}

/** The sessions with these ids in projects the viewer is a member of (for `node`). */
export function findVisibleSessions(em: Em, userId: string, ids: string[]): Promise<IChatSession[]> {
  return em.find(ChatSessionSchema, { id: { $in: ids }, project: { members: { userId } } });
}

/** The messages with these ids in projects the viewer is a member of (for `node`). */
export async function findVisibleMessages(em: Em, userId: string, ids: string[]): Promise<MessageView[]> {
  return (await em.find(MessageSchema, { id: { $in: ids }, project: { members: { userId } } })).map(messageView);
}

export function listSessions(em: Em, projectId: string, request: PageRequest): Promise<Page<IChatSession>> {
  return findPage(request, {
    cursor: createdAtCursor,
    fetch: ({ from, backward, limit }) => em.find(ChatSessionSchema, { project: projectId, ...keysetWhere(from, backward) }, { orderBy: keysetOrder(backward), limit }),
    keyOf: createdAtKey,
  });
}

export function listMessages(em: Em, sessionId: string, request: PageRequest): Promise<Page<MessageView>> {
  return findPage(
    request,
    {
      cursor: createdAtCursor,
      fetch: ({ from, backward, limit }) => em.find(MessageSchema, { session: sessionId, ...keysetWhere(from, backward) }, { orderBy: keysetOrder(backward), limit }),
      keyOf: createdAtKey,
    },
    messageView,
  );
}

export async function createChatSession(
  em: Em,
  userId: string,
  input: { projectId: string; title: string },
): Promise<IChatSession> {
  const projectId = requireId('projectId', input.projectId);
  const title = requireText('title', input.title, MAX_SESSION_TITLE_LENGTH).trim();
  return em.transactional(async (tx) => {
    await requireMembership(tx, userId, projectId);
    return tx.create(ChatSessionSchema, { project: projectId, title, createdByUserId: userId, eventSequence: 0 });
  });
}

export interface SendMessageResult {
  message: MessageView;
  event: { id: string; sequence: number };
}

/**
 * Stores the message and its `message_created` event in one transaction: both commit or neither
 * does. The event payload carries the whole message so delivery never reads the database.
 *
 * The hot write path: one statement that checks membership, numbers the session, inserts the
 * message, numbers the project and inserts the event, committed as it ends. No unit of work and
 * no BEGIN/COMMIT round trips, so the project row, which every write to the project waits for, is
 * held for that statement only (docs/design-notes.md#the-write-path).
 */
export async function sendMessage(
  em: Em,
  userId: string,
  input: { sessionId: string; body: string },
): Promise<SendMessageResult> {
  const sessionId = requireId('sessionId', input.sessionId);
  const body = requireText('body', input.body, MAX_MESSAGE_BODY_LENGTH);
  const stored = await storeMessage(em, { sessionId, memberUserId: userId, author: { authorUserId: userId, role: 'user', agentId: null }, body });
  // One answer for "no such session" and "not a member of its project", as requireSession gives.
  if (!stored) throw notFound('ChatSession', sessionId);
  return stored;
}

/**
 * The author id of an agent's messages and events. Analytics tell agents from users by the
 * message role, never by this prefix.
 */
export const agentAuthorId = (agentId: string) => `agent:${agentId}`;

/**
 * The entry point for agent runtimes: stores a message written by `agentId` (role `agent`) and its
 * `message_created` event in one transaction. Not reachable with a user token: the built-in
 * runtime calls it, and external runtimes reach it only with an agent credential.
 *
 * With `replyToMessageId`, the message is the answer to that user message; a second answer to the
 * same message violates `message_reply_to_id_key` and nothing of it commits (the caller decides
 * whether that is a CONFLICT or "already answered").
 */
export async function recordAgentMessage(
  em: Em,
  input: { sessionId: string; agentId: string; body: string; replyToMessageId?: string | null },
): Promise<SendMessageResult> {
  const sessionId = requireId('sessionId', input.sessionId);
  const agentId = requireId('agentId', input.agentId);
  const body = requireText('body', input.body, MAX_MESSAGE_BODY_LENGTH);
  const replyToId = input.replyToMessageId == null ? null : requireId('replyToMessageId', input.replyToMessageId);
  return em.transactional(async (tx) => {
    const session = await tx.findOne(ChatSessionSchema, { id: sessionId });
    if (!session) throw notFound('ChatSession', sessionId);
    // Only an agent of the session's own project may speak in it.
    const agent = await tx.findOne(AgentSchema, { id: agentId, project: session.project.id });
    if (!agent) throw notFound('Agent', agentId);
    const stored = await storeMessage(tx, { sessionId, memberUserId: null, author: { authorUserId: agentAuthorId(agent.id), role: 'agent', agentId: agent.id }, body, replyToId });
    if (!stored) throw notFound('ChatSession', sessionId);
    return stored;
    // Joins the caller's transaction when there is one (the runtime marks its job done in it): a
    // savepoint would hide the commit from the publisher's wake-up hook, delaying delivery to its poll.
  }, { propagation: 'required' });
}

/** The author id of the runtime's own notices (role `system`). */
export const SYSTEM_AUTHOR_ID = 'system:agent-runtime';

/**
 * A `system` message answering `replyToMessageId` in its place (the agent could not answer), so no
 * client waits forever. Same uniqueness as an agent's reply: a message gets one answer or one notice.
 */
export async function recordSystemNotice(em: Em, input: { sessionId: string; body: string; replyToMessageId: string }): Promise<SendMessageResult> {
  const body = requireText('body', input.body, MAX_MESSAGE_BODY_LENGTH);
  return em.transactional(async (tx) => {
    const session = await tx.findOne(ChatSessionSchema, { id: input.sessionId });
    if (!session) throw notFound('ChatSession', input.sessionId);
    const stored = await storeMessage(tx, { sessionId: session.id, memberUserId: null, author: { authorUserId: SYSTEM_AUTHOR_ID, role: 'system', agentId: null }, body, replyToId: input.replyToMessageId });
    if (!stored) throw notFound('ChatSession', input.sessionId);
    return stored;
  }, { propagation: 'required' });
}

/**
 * The message and its event in one statement (in `em`'s transaction when it has one; then it must
 * be the transaction's last write, see the outbox writer). Undefined: no such session, or
 * `memberUserId` is not a member of its project.
 */
async function storeMessage(
  em: Em,
  input: {
    sessionId: string;
    /** Write only if this user is a member of the session's project; null: the caller checked. */
    memberUserId: string | null;
    author: { authorUserId: string; role: MessageRole; agentId: string | null };
    body: string;
    replyToId?: string | null;
  },
): Promise<SendMessageResult | undefined> {
  const { sessionId, author, body } = input;
  const replyToId = input.replyToId ?? null;
  const message: NewMessage = { id: newId(), sessionId, authorUserId: author.authorUserId, role: author.role, body, replyToId, createdAt: new Date() };
  const event = messageCreatedInSession({
    messageId: message.id,
    sessionId,
    authorUserId: author.authorUserId,
    role: author.role,
    ...(author.agentId ? { agentId: author.agentId } : {}),
    ...(replyToId ? { replyToMessageId: replyToId } : {}),
    body,
    createdAt: message.createdAt.toISOString(),
  });
  const recorded = await recordEventWith(em, event, (tx, row) => insertMessageWithEvent(tx, message, input.memberUserId, row));
  if (!recorded) return undefined;
  return {
    message: { ...message, projectId: recorded.projectId },
    event: { id: recorded.id, sequence: recorded.sequence },
  };
}
