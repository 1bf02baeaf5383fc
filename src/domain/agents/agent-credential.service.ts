import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AgentActivity } from '../../events/agent-activity.ts';
import { AGENT_CREDENTIAL_PREFIX, type AgentPrincipal } from '../../platform/auth/agent-principal.ts';
import { dbOf } from '../../platform/db/database.ts';
import { newId } from '../../platform/db/ids.ts';
import type { Em } from '../../platform/db/orm.ts';
import { badInput, conflict, notFound, unauthenticated } from '../../platform/errors.ts';
import { requireId, requireText } from '../../platform/validation.ts';
import { MAX_MESSAGE_BODY_LENGTH, recordAgentMessage, type SendMessageResult } from '../chat/chat.service.ts';
import { MessageSchema, type IMessage } from '../chat/message.entity.ts';
import { requireOwner } from '../projects/project.service.ts';
import { AgentCredentialSchema, type IAgentCredential } from './agent-credential.entity.ts';
import { findCredentialForAuth, touchCredential } from './agent-credential.repository.ts';
import { AgentSchema } from './agent.entity.ts';

/** Credentials one agent may hold at once (not revoked): enough to rotate, few enough to audit. */
export const MAX_ACTIVE_CREDENTIALS_PER_AGENT = 10;

/** `agc_<credential id>_<32 random bytes, base64url>`: the id finds the row, the rest is checked against its hash. */
const CREDENTIAL_FORMAT = /^agc_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

const hashSecret = (secret: string) => createHash('sha256').update(secret, 'utf8').digest();

const refused = () => unauthenticated('The agent credential is not valid or has been revoked');

/** An agent in a project the viewer owns; NOT_FOUND for non-members, FORBIDDEN for members. */
async function requireOwnedAgent(em: Em, viewerId: string, agentIdInput: string) {
  const agentId = requireId('agentId', agentIdInput);
  const agent = await em.findOne(AgentSchema, { id: agentId, project: { members: { userId: viewerId } } });
  if (!agent) throw notFound('Agent', agentId);
  await requireOwner(em, viewerId, agent.project.id);
  return agent;
}

/**
 * Owners only. A new credential for the agent; the secret is returned here and never again (only
 * its SHA-256 is stored). The secret is 32 random bytes, so a fast hash cannot be brute-forced.
 */
export async function createAgentCredential(em: Em, viewerId: string, input: { agentId: string }): Promise<{ credential: IAgentCredential; secret: string }> {
  return em.transactional(async (tx) => {
    const agent = await requireOwnedAgent(tx, viewerId, input.agentId);
    const active = await tx.count(AgentCredentialSchema, { agent: agent.id, revokedAt: null });
    if (active >= MAX_ACTIVE_CREDENTIALS_PER_AGENT) {
      throw conflict(`An agent can hold at most ${MAX_ACTIVE_CREDENTIALS_PER_AGENT} credentials that are not revoked; revoke one first`);
    }
    const id = newId();
    const secret = `${AGENT_CREDENTIAL_PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
    const credential = tx.create(AgentCredentialSchema, {
      id,
      agent: agent.id,
      project: agent.project.id,
      secretHash: hashSecret(secret),
      createdByUserId: viewerId,
      lastUsedAt: null,
      revokedAt: null,
    });
    return { credential, secret };
  });
}

/** Owners only. Ends the credential's access at once: requests and new subscriptions are refused, open ones end. */
export async function revokeAgentCredential(em: Em, viewerId: string, input: { credentialId: string }): Promise<IAgentCredential> {
  const credentialId = requireId('credentialId', input.credentialId);
  return em.transactional(async (tx) => {
    const credential = await tx.findOne(AgentCredentialSchema, { id: credentialId, project: { members: { userId: viewerId } } });
    if (!credential) throw notFound('AgentCredential', credentialId);
    await requireOwner(tx, viewerId, credential.project.id);
    credential.revokedAt ??= new Date();
    return credential;
  });
}

/** Owners only: the agent's credentials, newest first, without secrets. */
export async function listAgentCredentials(em: Em, viewerId: string, agent: { id: string; project: { id: string } }): Promise<IAgentCredential[]> {
  await requireOwner(em, viewerId, agent.project.id);
  return em.find(AgentCredentialSchema, { agent: agent.id }, { orderBy: { createdAt: 'desc', id: 'desc' } });
}

/**
 * The agent a credential authenticates, or UNAUTHENTICATED (malformed, unknown, revoked, or its
 * agent deleted: the row goes with it). The hash is compared in constant time.
 */
export async function verifyAgentCredential(em: Em, secret: string): Promise<AgentPrincipal> {
  const match = CREDENTIAL_FORMAT.exec(secret);
  if (!match) throw refused();
  const db = dbOf(em);
  const row = await findCredentialForAuth(db, match[1]!);
  if (!row || row.revoked_at !== null) throw refused();
  const stored = Buffer.from(row.secret_hash);
  const given = hashSecret(secret);
  if (stored.length !== given.length || !timingSafeEqual(stored, given)) throw refused();
  await touchCredential(db, row.id);
  return { agentId: row.agent_id, projectId: row.project_id, credentialId: row.id };
}

/** A user message of the agent's project, or NOT_FOUND (another project's messages do not exist for it). */
async function requireAnswerable(em: Em, principal: AgentPrincipal, replyToInput: string): Promise<IMessage> {
  const replyTo = requireId('replyTo', replyToInput);
  const message = await em.findOne(MessageSchema, { id: replyTo, project: principal.projectId });
  if (!message) throw notFound('Message', replyTo);
  if (message.role !== 'user') throw badInput('replyTo', 'Only a user message can be answered');
  return message;
}

const alreadyAnswered = (messageId: string) => conflict(`Message ${messageId} has already been answered`);

/**
 * An external runtime's reply: stored like the in-process runtime's (`recordAgentMessage`: the
 * message and its `message_created` event in one transaction), under the same unique
 * `reply_to_id`, so a message gets one answer whoever writes it; a second one is CONFLICT.
 */
export async function postAgentReply(em: Em, principal: AgentPrincipal, input: { replyTo: string; body: string }): Promise<SendMessageResult> {
  const body = requireText('body', input.body, MAX_MESSAGE_BODY_LENGTH);
  const message = await requireAnswerable(em, principal, input.replyTo);
  try {
    return await em.transactional(async (tx) => {
      if (await tx.count(MessageSchema, { replyToId: message.id })) throw alreadyAnswered(message.id);
      return recordAgentMessage(tx, { sessionId: message.session.id, agentId: principal.agentId, body, replyToMessageId: message.id });
    });
  } catch (error) {
    // Two replies racing: the loser hits message_reply_to_id_key and nothing of it commits.
    if (error instanceof UniqueConstraintViolationException) throw alreadyAnswered(message.id);
    throw error;
  }
}

/** Longest text of one delta; a reply's whole body is limited anyway. */
export const MAX_DELTA_TEXT_LENGTH = MAX_MESSAGE_BODY_LENGTH;

/**
 * The transient activity of one piece of an external runtime's reply, for the caller to hand to
 * the bus (never stored). Index 0 also announces the reply (`agent_reply_started`), as the
 * in-process runtime does. A message already answered is CONFLICT: the runtime can stop writing.
 */
export async function agentReplyDelta(em: Em, principal: AgentPrincipal, input: { replyTo: string; index: number; text: string }): Promise<AgentActivity[]> {
  if (!Number.isInteger(input.index) || input.index < 0) throw badInput('index', 'index must be an integer of 0 or more');
  // Not requireText: a piece of a reply may well be only a space or a line break.
  const text = input.text;
  if (text.length === 0) throw badInput('text', 'text must not be empty');
  if ([...text].length > MAX_DELTA_TEXT_LENGTH) throw badInput('text', `text must be at most ${MAX_DELTA_TEXT_LENGTH} characters`);
  const message = await requireAnswerable(em, principal, input.replyTo);
  if (await em.count(MessageSchema, { replyToId: message.id })) throw alreadyAnswered(message.id);
  const base = { projectId: principal.projectId, sessionId: message.session.id, replyTo: message.id, agentId: principal.agentId, at: new Date().toISOString() };
  const delta: AgentActivity = { kind: 'agent_reply_delta', ...base, index: input.index, text };
  return input.index === 0 ? [{ kind: 'agent_reply_started', ...base }, delta] : [delta];
}

/** UNAUTHENTICATED once the credential is revoked or gone: open inbox subscriptions re-check it. */
export async function requireActiveCredential(em: Em, credentialId: string): Promise<void> {
  const row = await findCredentialForAuth(dbOf(em), credentialId);
  if (!row || row.revoked_at !== null) throw refused();
}
