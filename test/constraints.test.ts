import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/app.ts';
import { connect } from './support/database.ts';

// The database itself refuses outbox rows the publisher could not handle, whoever writes them.
let db: TestDatabase;
let client: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase();
  client = await connect(db.url);
});
afterAll(async () => {
  await client?.end();
  await db?.drop();
});

const valid = {
  id: '01900000-0000-7000-8000-000000000001',
  event_type: 'message_created',
  aggregate_type: 'chat_session',
  aggregate_id: '01900000-0000-7000-8000-0000000000aa',
  sequence: 1,
  project_sequence: 1,
  project_id: '01900000-0000-7000-8000-0000000000bb',
  user_id: 'alice',
  session_id: '01900000-0000-7000-8000-0000000000aa',
  payload: '{"messageId":"m"}',
};

let nextProjectSequence = 1;

async function insert(overrides: Record<string, unknown>) {
  const row: Record<string, unknown> = { ...valid, id: crypto.randomUUID(), project_sequence: nextProjectSequence++, ...overrides };
  const columns = Object.keys(row);
  await client.query(
    `insert into event_outbox (${columns.join(', ')}) values (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
    Object.values(row),
  );
}

describe('event_outbox constraints', () => {
  it('accepts a valid row', async () => {
    await expect(insert({ aggregate_id: crypto.randomUUID(), session_id: null, aggregate_type: 'worker_space', event_type: 'agent_switched' })).resolves.toBeUndefined();
  });

  it.each([
    ['a missing payload', { payload: null }, /null value in column "payload"/],
    ['a payload that is not an object', { payload: '[1,2]' }, /event_outbox_payload_check/],
    ['an unknown event type', { event_type: 'message_deleted' }, /event_outbox_event_type_check/],
    ['sequence 0', { sequence: 0 }, /event_outbox_sequence_check/],
    ['project sequence 0', { project_sequence: 0 }, /event_outbox_project_sequence_check/],
    ['a chat event without a session', { session_id: null }, /event_outbox_session_check/],
  ])('rejects %s', async (_name, overrides, error) => {
    await expect(insert({ aggregate_id: crypto.randomUUID(), ...overrides })).rejects.toThrow(error);
  });

  it('rejects a second event with the same sequence number in one aggregate', async () => {
    const aggregate = crypto.randomUUID();
    await insert({ aggregate_id: aggregate, session_id: aggregate, sequence: 7 });
    await expect(insert({ aggregate_id: aggregate, session_id: aggregate, sequence: 7 })).rejects.toThrow(/event_outbox_aggregate_sequence_key/);
  });
});

describe('domain constraints', () => {
  it('rejects an unknown member role and an empty message body', async () => {
    const project = crypto.randomUUID();
    await client.query(`insert into project (id, name) values ($1, 'p')`, [project]);
    await expect(client.query(`insert into project_member (project_id, user_id, role) values ($1, 'u', 'admin')`, [project])).rejects.toThrow(/role_check/);
    const session = crypto.randomUUID();
    await client.query(`insert into chat_session (id, project_id, title, created_by_user_id) values ($1, $2, 't', 'u')`, [session, project]);
    await expect(
      client.query(`insert into message (id, session_id, project_id, author_user_id, role, body) values ($1, $2, $3, 'u', 'user', '')`, [crypto.randomUUID(), session, project]),
    ).rejects.toThrow(/body_check/);
  });
});

describe('outbox_delivery constraints', () => {
  async function insertPosition(overrides: Record<string, unknown>) {
    const row: Record<string, unknown> = { aggregate_id: crypto.randomUUID(), aggregate_type: 'chat_session', project_id: valid.project_id, written_through: 3, delivered_through: 1, ...overrides };
    const columns = Object.keys(row);
    await client.query(`insert into outbox_delivery (${columns.join(', ')}) values (${columns.map((_, i) => `$${i + 1}`).join(', ')})`, Object.values(row));
  }

  it('accepts a valid position', async () => {
    await expect(insertPosition({})).resolves.toBeUndefined();
  });

  it.each([
    ['negative attempts', { attempts: -1 }, /outbox_delivery_attempts_check/],
    ['a position past what was written', { delivered_through: 4 }, /outbox_delivery_position_check/],
    ['a claim token without a lease', { claim_token: '01900000-0000-7000-8000-0000000000cc' }, /outbox_delivery_claim_check/],
    ['an unknown aggregate type', { aggregate_type: 'project' }, /outbox_delivery_aggregate_type_check/],
  ])('rejects %s', async (_name, overrides, error) => {
    await expect(insertPosition(overrides)).rejects.toThrow(error);
  });
});
