import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, type TestApp } from './support/app.ts';
import { createProjectFixture } from './support/fixtures.ts';

const CREATE = `mutation($input: CreateAgentInput!) { createAgent(input: $input) { id name kind settings { instructions model temperature maxTokens wordDelayMs } } }`;
const UPDATE = `mutation($input: UpdateAgentInput!) { updateAgent(input: $input) { id name kind settings { instructions model temperature maxTokens wordDelayMs } } }`;

describe('agent kinds and settings', () => {
  let t: TestApp;
  let projectId: string;
  beforeAll(async () => {
    t = await startTestApp();
    ({ projectId } = await createProjectFixture(t, 'owner', ['member']));
  });
  afterAll(() => t.stop());

  it('creates echo agents by default and openai-compatible ones with a model', async () => {
    const echo = await t.gql(CREATE, { input: { projectId, name: 'Parrot' } }, { as: 'owner' });
    expect(echo.data.createAgent).toMatchObject({ kind: 'ECHO', settings: { model: null, instructions: null } });
    const gpt = await t.gql(CREATE, { input: { projectId, name: 'GPT', kind: 'OPENAI_COMPATIBLE', settings: { model: 'gpt-x', temperature: 0.2, instructions: 'Be brief.' } } }, { as: 'owner' });
    expect(gpt.data.createAgent).toMatchObject({ kind: 'OPENAI_COMPATIBLE', settings: { model: 'gpt-x', temperature: 0.2, instructions: 'Be brief.', maxTokens: null } });
  });

  it.each([
    [{ kind: 'OPENAI_COMPATIBLE' }, 'settings.model'],
    [{ kind: 'OPENAI_COMPATIBLE', settings: { model: 'm', temperature: 3 } }, 'settings.temperature'],
    [{ kind: 'OPENAI_COMPATIBLE', settings: { model: 'm', maxTokens: 0 } }, 'settings.maxTokens'],
    [{ kind: 'ECHO', settings: { model: 'm' } }, 'settings.model'],
    [{ settings: { wordDelayMs: 99_999 } }, 'settings.wordDelayMs'],
    [{ settings: { instructions: 'x'.repeat(8_001) } }, 'settings.instructions'],
    [{ kind: 'EXTERNAL', settings: { model: 'm' } }, 'settings.model'],
    [{ kind: 'EXTERNAL', settings: { wordDelayMs: 10 } }, 'settings.wordDelayMs'],
  ])('refuses invalid settings %j with BAD_USER_INPUT naming %s', async (fields, field) => {
    const result = await t.gql(CREATE, { input: { projectId, name: `Bad ${Math.random()}`, ...fields } }, { as: 'owner' });
    expect(result.status).toBe(200);
    expect(errorCode(result)).toBe('BAD_USER_INPUT');
    expect(result.errors![0]!.extensions!.field).toBe(field);
  });

  it('updateAgent changes name, kind and settings for owners; settings are checked against the new kind', async () => {
    const created = await t.gql(CREATE, { input: { projectId, name: 'Shifty' } }, { as: 'owner' });
    const agentId = created.data.createAgent.id;
    // To openai-compatible without a model: refused, nothing changes.
    expect(errorCode(await t.gql(UPDATE, { input: { agentId, kind: 'OPENAI_COMPATIBLE' } }, { as: 'owner' }))).toBe('BAD_USER_INPUT');
    const updated = await t.gql(UPDATE, { input: { agentId, name: 'Shifted', kind: 'OPENAI_COMPATIBLE', settings: { model: 'm1' } } }, { as: 'owner' });
    expect(updated.data.updateAgent).toMatchObject({ name: 'Shifted', kind: 'OPENAI_COMPATIBLE', settings: { model: 'm1' } });
    // Back to echo while keeping a model setting: refused; with new settings: fine.
    expect(errorCode(await t.gql(UPDATE, { input: { agentId, kind: 'ECHO' } }, { as: 'owner' }))).toBe('BAD_USER_INPUT');
    const back = await t.gql(UPDATE, { input: { agentId, kind: 'ECHO', settings: { wordDelayMs: 0 } } }, { as: 'owner' });
    expect(back.data.updateAgent).toMatchObject({ kind: 'ECHO', settings: { model: null, wordDelayMs: 0 } });
  });

  it('updateAgent: FORBIDDEN for members, NOT_FOUND for outsiders, CONFLICT for a taken name', async () => {
    const created = await t.gql(CREATE, { input: { projectId, name: 'Guarded' } }, { as: 'owner' });
    const agentId = created.data.createAgent.id;
    expect(errorCode(await t.gql(UPDATE, { input: { agentId, name: 'Mine' } }, { as: 'member' }))).toBe('FORBIDDEN');
    expect(errorCode(await t.gql(UPDATE, { input: { agentId, name: 'Mine' } }, { as: 'stranger' }))).toBe('NOT_FOUND');
    expect(errorCode(await t.gql(UPDATE, { input: { agentId, name: 'Parrot' } }, { as: 'owner' }))).toBe('CONFLICT');
    expect(errorCode(await t.gql(UPDATE, { input: { agentId: 'not-an-id' } }, { as: 'owner' }))).toBe('BAD_USER_INPUT');
  });
});
