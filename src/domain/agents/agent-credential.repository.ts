import { sql } from 'kysely';
import type { Db } from '../../platform/db/database.ts';

/** What authenticating with a credential needs, in one lookup (null: no such credential). */
export async function findCredentialForAuth(db: Db, credentialId: string) {
  return (
    (await db
      .selectFrom('agent_credential')
      .select(['id', 'agent_id', 'project_id', 'secret_hash', 'revoked_at'])
      .where('id', '=', credentialId)
      .executeTakeFirst()) ?? null
  );
}

/**
 * Records that the credential was used, at most once a minute: an external runtime posting deltas
 * would otherwise write this row many times a second.
 */
export async function touchCredential(db: Db, credentialId: string): Promise<void> {
  await sql`
    update agent_credential set last_used_at = now()
    where id = ${credentialId}::uuid and (last_used_at is null or last_used_at < now() - interval '1 minute')`.execute(db);
}

/**
 * Whether a user message is addressed to `agentId` now: its author's worker space in the project
 * has that agent active (the rule the in-process runtime uses to pick who answers), and nothing
 * has answered it yet (so an inbox replayed after a reconnect does not offer answered messages).
 */
export async function isAddressedTo(db: Db, input: { messageId: string; projectId: string; authorUserId: string; agentId: string }): Promise<boolean> {
  const { rows } = await sql<{ addressed: boolean }>`
    select exists (
      select 1 from worker_space ws
      where ws.project_id = ${input.projectId}::uuid and ws.user_id = ${input.authorUserId} and ws.active_agent_id = ${input.agentId}::uuid
    ) and not exists (
      select 1 from message m where m.reply_to_id = ${input.messageId}::uuid
    ) as addressed`.execute(db);
  return rows[0]?.addressed ?? false;
}
