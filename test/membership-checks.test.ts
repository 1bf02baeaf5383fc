import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Orm } from '../src/platform/db/orm.ts';
import type { MemberList } from '../src/domain/projects/project.repository.ts';
import { createMembershipChecks } from '../src/subscriptions/membership-checks.ts';
import { createTestDatabase, type TestDatabase } from './support/app.ts';
import { connect } from './support/database.ts';
import { FakeClock } from './support/fake-clock.ts';

const PROJECT = '01900000-0000-7000-8000-0000000000bb';
const OTHER = '01900000-0000-7000-8000-0000000000cc';

/** Reads that answer from `state` and count what was asked. */
function countingReads(state: { members: string[]; version: number }) {
  const asked = { lists: 0, versions: 0 };
  return {
    asked,
    reads: {
      async list(_projectId: string): Promise<MemberList> {
        asked.lists += 1;
        return { userIds: new Set(state.members), version: String(state.version) };
      },
      async version(_projectId: string): Promise<string> {
        asked.versions += 1;
        return String(state.version);
      },
    },
  };
}

describe('membership re-checks', () => {
  it('read the member list once, then only its version while nobody joins or leaves, and the list again when it moved', async () => {
    const clock = new FakeClock();
    const state = { members: ['alice', 'bob'], version: 7 };
    const { asked, reads } = countingReads(state);
    const checks = createMembershipChecks({ orm: null as unknown as Orm, clock, recheckMs: 5_000, reads });
    const subscribedAt = checks.now();
    await clock.advance(5_000);

    // Stale since subscribing: the first event reads the list, shared by both subscribers.
    const first = {};
    checks.arrived(first);
    const [alice, bob] = await Promise.all([checks.require(PROJECT, 'alice', first, subscribedAt), checks.require(PROJECT, 'bob', first, subscribedAt)]);
    expect(asked).toEqual({ lists: 1, versions: 0 });

    // Within the interval: nothing is read.
    await clock.advance(4_999);
    const second = {};
    checks.arrived(second);
    await checks.require(PROJECT, 'bob', second, bob);
    expect(asked).toEqual({ lists: 1, versions: 0 });

    // Past it, with the list unchanged: one row read, and the list held still answers.
    await clock.advance(1);
    const third = {};
    checks.arrived(third);
    const bobAgain = await checks.require(PROJECT, 'bob', third, bob);
    await checks.require(PROJECT, 'alice', third, alice);
    expect(asked).toEqual({ lists: 1, versions: 1 });

    // Bob leaves (the triggers raise the version): past the interval, the list is read again.
    state.members = ['alice'];
    state.version = 8;
    await clock.advance(5_000);
    const fourth = {};
    checks.arrived(fourth);
    await expect(checks.require(PROJECT, 'bob', fourth, bobAgain)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(asked).toEqual({ lists: 2, versions: 2 });
  });

  it('read the list again after a failed read, instead of confirming what never answered', async () => {
    const clock = new FakeClock();
    const state = { members: ['alice'], version: 1 };
    const { asked, reads } = countingReads(state);
    let failNext = true;
    const checks = createMembershipChecks({
      orm: null as unknown as Orm,
      clock,
      recheckMs: 0,
      reads: {
        ...reads,
        list: (projectId) => (failNext ? ((failNext = false), Promise.reject(new Error('connection lost'))) : reads.list(projectId)),
      },
    });
    const stale = { at: 0, seq: 0 };
    const event = {};
    checks.arrived(event);
    await expect(checks.require(PROJECT, 'alice', event, stale)).rejects.toThrow('connection lost');
    const later = {};
    checks.arrived(later);
    await checks.require(PROJECT, 'alice', later, stale);
    expect(asked).toEqual({ lists: 1, versions: 0 });
  });
});

describe('membership re-checks while a read is still answering', () => {
  it('read on their own when that read fails, instead of failing with it', async () => {
    const clock = new FakeClock();
    let failFirst: (error: Error) => void = () => {};
    let lists = 0;
    const checks = createMembershipChecks({
      orm: null as unknown as Orm,
      clock,
      recheckMs: 0,
      reads: {
        list: () => (++lists === 1 ? new Promise<MemberList>((_, reject) => (failFirst = reject)) : Promise.resolve({ userIds: new Set(['alice']), version: '1' })),
        version: async () => '1',
      },
    });
    const stale = { at: 0, seq: 0 };
    const first = {};
    checks.arrived(first);
    const firstCheck = checks.require(PROJECT, 'alice', first, stale);
    // A later event needs a fresh answer while the first read has not answered yet.
    const second = {};
    checks.arrived(second);
    const secondCheck = checks.require(PROJECT, 'alice', second, stale);
    failFirst(new Error('connection lost'));
    await expect(firstCheck).rejects.toThrow('connection lost');
    await expect(secondCheck).resolves.toBeDefined();
    expect(lists).toBe(2);
  });
});

describe('the member list version', () => {
  let db: TestDatabase;
  let client: pg.Client;
  beforeAll(async () => {
    db = await createTestDatabase();
    client = await connect(db.url);
    for (const id of [PROJECT, OTHER]) await client.query(`insert into project (id, name, created_at, event_sequence) values ($1, 'p', now(), 0)`, [id]);
  });
  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  const version = async (projectId: string) =>
    (await client.query<{ version: string }>('select version from project_member_version where project_id = $1', [projectId])).rows[0]?.version ?? '0';

  it('moves with every statement that changes a project’s members, whoever runs it, and only for that project', async () => {
    expect(await version(PROJECT)).toBe('0');
    await client.query(`insert into project_member (project_id, user_id, role) select $1, 'u' || g, 'member' from generate_series(1, 3) g`, [PROJECT]);
    expect(await version(PROJECT)).toBe('1');
    await client.query(`update project_member set role = 'owner' where project_id = $1 and user_id = 'u1'`, [PROJECT]);
    expect(await version(PROJECT)).toBe('2');
    await client.query(`delete from project_member where project_id = $1 and user_id = 'u2'`, [PROJECT]);
    expect(await version(PROJECT)).toBe('3');
    // A statement that changes nothing leaves it; another project's changes do not touch it.
    await client.query(`delete from project_member where project_id = $1 and user_id = 'nobody'`, [PROJECT]);
    await client.query(`insert into project_member (project_id, user_id, role) values ($1, 'x', 'owner')`, [OTHER]);
    expect(await version(PROJECT)).toBe('3');
    expect(await version(OTHER)).toBe('1');
  });

  it('rolls back with the change it counts', async () => {
    const before = await version(PROJECT);
    await client.query('begin');
    await client.query(`insert into project_member (project_id, user_id, role) values ($1, 'rolled-back', 'member')`, [PROJECT]);
    await client.query('rollback');
    expect(await version(PROJECT)).toBe(before);
  });

  it('does not stand in the way of deleting a project with its members', async () => {
    await client.query('delete from project where id = $1', [OTHER]);
    expect(await version(OTHER)).toBe('0');
  });
});
