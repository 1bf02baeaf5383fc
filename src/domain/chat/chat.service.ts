import { AgentSchema } from '../agents/agent.entity.ts';
import type { Em } from '../../platform/db/orm.ts';
import { createdAtCursor, createdAtKey, findPage, keysetOrder, keysetWhere, type Page, type PageRequest } from '../../platform/db/pagination.ts';
import { notFound } from '../../platform/errors.ts';
import { messageCreated, type MessageRole } from '../../events/domain-event.ts';
import { recordEvent } from '../../outbox/outbox.writer.ts';
import { requireMembership } from '../projects/project.service.ts';
import { requireId, requireText } from '../../platform/validation.ts';
import { ChatSessionSchema, type IChatSession } from './chat-session.entity.ts';
import { MessageSchema, type IMessage } from './message.entity.ts';
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
  message: IMessage;
  event: { id: string; sequence: number };
}

/**
 * Stores the message and its `message_created` event in one transaction: both commit or neither
 * does. The event payload carries the whole message so delivery never reads the database.
 */
export async function sendMessage(
  em: Em,
  userId: string,
  input: { sessionId: string; body: string },
): Promise<SendMessageResult> {
  const sessionId = requireId('sessionId', input.sessionId);
  const body = requireText('body', input.body, MAX_MESSAGE_BODY_LENGTH);
  return em.transactional(async (tx) => {
    const session = await requireSession(tx, userId, sessionId);
    return storeMessage(tx, session, { authorUserId: userId, role: 'user', agentId: null }, body);
  });
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
    return storeMessage(tx, session, { authorUserId: agentAuthorId(agent.id), role: 'agent', agentId: agent.id }, body, replyToId);
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
    return storeMessage(tx, session, { authorUserId: SYSTEM_AUTHOR_ID, role: 'system', agentId: null }, body, input.replyToMessageId);
  }, { propagation: 'required' });
}

async function storeMessage(
  tx: Em,
  session: IChatSession,
  author: { authorUserId: string; role: MessageRole; agentId: string | null },
  body: string,
  replyToId: string | null = null,
): Promise<SendMessageResult> {
  const message = tx.create(MessageSchema, {
    replyToId,
    session,
    project: session.project,
    authorUserId: author.authorUserId,
    role: author.role,
    body,
  });
  const event = await recordEvent(
    tx,
    messageCreated(session.project.id, {
      messageId: message.id,
      sessionId: session.id,
      authorUserId: author.authorUserId,
      role: message.role,
      ...(author.agentId ? { agentId: author.agentId } : {}),
      ...(replyToId ? { replyToMessageId: replyToId } : {}),
      body: message.body,
      createdAt: message.createdAt.toISOString(),
    }),
  );
  return { message, event: { id: event.id, sequence: event.sequence } };
}
