import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, TEST_JWT_SECRET, type GqlResult, type TestApp } from './support/app.ts';
import { createProjectFixture, SEND_MESSAGE } from './support/fixtures.ts';
import { generateProviderKey, TestIdentityProvider, type ProviderKey } from './support/identity-provider.ts';
import { captureLogs } from './support/observability.ts';
import { SESSION_EVENTS, subscribe } from './support/subscriber.ts';

/** One operation with exactly this bearer token (or none). */
async function gqlWith(t: TestApp, token: string | null, query: string, variables: Record<string, unknown> = {}): Promise<GqlResult<any>> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const response = await fetch(t.app.graphqlUrl, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  return { status: response.status, ...((await response.json()) as object) };
}

const VIEWER = '{ viewer { userId } }';
const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** What an attacker who read the public JWKS can build: HS256, keyed with the public key itself. */
function hmacWithPublicKey(provider: TestIdentityProvider, key: ProviderKey, secret: string, subject = 'mallory') {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', kid: key.kid, typ: 'JWT' })
    .setSubject(subject)
    .setIssuer(provider.issuer)
    .setAudience(provider.audience)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(secret));
}

describe('tokens from an OpenID Connect provider (JWT_JWKS_URL)', () => {
  let provider: TestIdentityProvider;
  let rsa: ProviderKey, ec: ProviderKey, ed: ProviderKey, ps: ProviderKey, unpublished: ProviderKey;
  let t: TestApp;

  beforeAll(async () => {
    provider = await TestIdentityProvider.start();
    [rsa, ec, ed, ps, unpublished] = await Promise.all([
      generateProviderKey('rsa-1', 'RS256'),
      generateProviderKey('ec-1', 'ES256'),
      generateProviderKey('ed-1', 'EdDSA'),
      generateProviderKey('ps-1', 'PS256'),
      generateProviderKey('rsa-unpublished', 'RS256'),
    ]);
    provider.published = [rsa, ec, ed, ps];
    // A one-hour cooldown: within this file, no made-up kid may cause a second fetch.
    t = await startTestApp(provider.env({ SUBSCRIPTION_AUTH_RECHECK_MS: '0', JWT_JWKS_COOLDOWN_MS: '3600000' }), {
      token: (userId, expiresIn) => provider.sign(rsa, userId, {}, expiresIn),
    });
  });
  afterAll(async () => {
    await t?.stop();
    await provider?.stop();
  });

  it.each([['RS256'], ['ES256'], ['EdDSA']])('accepts a %s token; the user id is its sub', async (alg) => {
    const key = [rsa, ec, ed].find((k) => k.alg === alg)!;
    const result = await gqlWith(t, await provider.sign(key, `user-${alg}`), VIEWER);
    expect(result.errors).toBeUndefined();
    expect(result.data.viewer.userId).toBe(`user-${alg}`);
  });

  it('works end to end: a query, sendMessage, and the graphql-ws subscription that receives its event', async () => {
    const { projectId, sessionId } = await createProjectFixture(t, 'oidc-alice', ['oidc-bob']);
    const bobToken = await provider.sign(ec, 'oidc-bob');
    const sub = await subscribe(t.app.graphqlUrl, await provider.sign(ed, 'oidc-alice'), SESSION_EVENTS, { sessionId });
    try {
      const sent = await gqlWith(t, bobToken, SEND_MESSAGE, { sessionId, body: 'signed by the provider' });
      expect(sent.errors).toBeUndefined();
      await sub.waitForCount(1);
      expect(sub.events[0]).toMatchObject({ eventId: sent.data.sendMessage.eventId, type: 'MESSAGE_CREATED', message: { body: 'signed by the provider' } });
      expect(sub.errors).toEqual([]);

      const read = await gqlWith(t, bobToken, 'query($p: ID!) { project(id: $p) { sessions { nodes { messages { nodes { body authorUserId } } } } } }', { p: projectId });
      expect(read.data.project.sessions.nodes[0].messages.nodes).toEqual([{ body: 'signed by the provider', authorUserId: 'oidc-bob' }]);
    } finally {
      await sub.stop();
    }
  });

  describe('answers UNAUTHENTICATED, over GraphQL, to', () => {
    // The message says why, so each case fails if the token is refused for another reason than its own.
    const NOT_ACCEPTED = /algorithm this server does not accept/;
    const cases: [string, () => Promise<string>, RegExp][] = [
      ['an expired token (beyond the clock tolerance)', () => provider.sign(rsa, 'u', { exp: now() - 120 }), /expired/],
      ['a token that is not valid yet (nbf)', () => provider.sign(rsa, 'u', { nbf: now() + 3600 }), /"nbf"/],
      ['a token for another audience', () => provider.sign(rsa, 'u', { aud: 'some-other-app' }), /"aud"/],
      ['a token from another issuer', () => provider.sign(rsa, 'u', { iss: 'https://evil.example/' }), /"iss"/],
      ['a token without sub', () => provider.sign(rsa, 'u', { sub: undefined }), /"sub"/],
      ['a token whose sub is longer than 200 characters', () => provider.sign(rsa, 'u'.repeat(201)), /subject/],
      ['a token signed by a key the provider does not publish (unknown kid)', () => provider.sign(unpublished, 'u'), /key this server does not know/],
      ['a token signed by another key under a published kid', () => provider.sign({ ...unpublished, kid: rsa.kid }, 'u'), /not valid/],
      [
        'an unsigned token (alg: none)',
        async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'mallory', iss: provider.issuer, aud: provider.audience, exp: now() + 600 })}.`,
        NOT_ACCEPTED,
      ],
      ['an HS256 token keyed with the RSA public key PEM (HS/RS confusion)', () => hmacWithPublicKey(provider, rsa, rsa.publicPem), NOT_ACCEPTED],
      ['an HS256 token keyed with the RSA public JWK', () => hmacWithPublicKey(provider, rsa, JSON.stringify(rsa.publicJwk)), NOT_ACCEPTED],
      ['an HS256 token, when no JWT_SECRET is configured', () => hmacWithPublicKey(provider, rsa, TEST_JWT_SECRET), NOT_ACCEPTED],
      ['a token signed with a published key whose algorithm is not in JWT_JWKS_ALGORITHMS (PS256)', () => provider.sign(ps, 'u'), NOT_ACCEPTED],
      ['garbage', async () => 'not.a.jwt', /not valid/],
    ];

    it.each(cases)('%s', async (_name, build, reason) => {
      const result = await gqlWith(t, await build(), VIEWER);
      expect(result.status).toBeLessThan(500);
      expect(errorCode(result)).toBe('UNAUTHENTICATED');
      expect(result.errors?.[0]?.message).toMatch(reason);
      expect(result.data?.viewer ?? null).toBeNull();
      // Within the cooldown, no rejected token (an unknown kid included) makes the server call the provider again.
      expect(provider.fetches).toBeLessThanOrEqual(1);
    });

    it('a graphql-ws subscription with an expired token', async () => {
      const { sessionId } = await createProjectFixture(t, 'oidc-carol');
      const sub = await subscribe(t.app.graphqlUrl, await provider.sign(rsa, 'oidc-carol', { exp: now() - 120 }), SESSION_EVENTS, { sessionId });
      try {
        await sub.waitFor((s) => s.errors.length > 0);
        expect(sub.errors[0]?.extensions?.code).toBe('UNAUTHENTICATED');
        expect(sub.events).toEqual([]);
      } finally {
        await sub.stop();
      }
    });
  });

  it('accepts a token up to JWT_CLOCK_TOLERANCE_S (default 30 s) past its exp', async () => {
    const result = await gqlWith(t, await provider.sign(rsa, 'skewed', { exp: now() - 5 }), VIEWER);
    expect(result.data?.viewer?.userId).toBe('skewed');
  });
});

describe('key rotation at the provider', () => {
  let provider: TestIdentityProvider;
  let t: TestApp;
  let oldKey: ProviderKey, newKey: ProviderKey;

  beforeAll(async () => {
    provider = await TestIdentityProvider.start();
    [oldKey, newKey] = await Promise.all([generateProviderKey('2026-01', 'RS256'), generateProviderKey('2026-02', 'ES256')]);
    provider.published = [oldKey];
    // Cooldown 0: an unknown kid is looked up again at once, so no test waits on a clock. The
    // cache age is the shortest allowed, for the withdrawal below.
    t = await startTestApp(provider.env({ JWT_JWKS_COOLDOWN_MS: '0', JWT_JWKS_CACHE_MAX_AGE_MS: '1000' }));
  });
  afterAll(async () => {
    await t?.stop();
    await provider?.stop();
  });

  it('accepts a token with the new kid once it is published, and refuses the old key after it is withdrawn', async () => {
    expect((await gqlWith(t, await provider.sign(oldKey, 'before'), VIEWER)).data.viewer.userId).toBe('before');
    expect(provider.fetches).toBe(1);

    // Not yet published: refused (the lookup finds no such kid).
    expect(errorCode(await gqlWith(t, await provider.sign(newKey, 'early'), VIEWER))).toBe('UNAUTHENTICATED');

    provider.published = [oldKey, newKey];
    const fetchesBeforeRotation = provider.fetches;
    expect((await gqlWith(t, await provider.sign(newKey, 'after'), VIEWER)).data.viewer.userId).toBe('after');
    expect(provider.fetches).toBe(fetchesBeforeRotation + 1);
    // Both keys are now cached: the old one still works, without another fetch.
    expect((await gqlWith(t, await provider.sign(oldKey, 'overlap'), VIEWER)).data.viewer.userId).toBe('overlap');
    expect(provider.fetches).toBe(fetchesBeforeRotation + 1);

    // Withdrawn: once the cached set is older than JWT_JWKS_CACHE_MAX_AGE_MS it is fetched again.
    provider.published = [newKey];
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(errorCode(await gqlWith(t, await provider.sign(oldKey, 'withdrawn'), VIEWER))).toBe('UNAUTHENTICATED');
    expect((await gqlWith(t, await provider.sign(newKey, 'still'), VIEWER)).data.viewer.userId).toBe('still');
  });

  it('with the default cooldown, an unknown kid right after a fetch is refused without asking the provider again', async () => {
    const patient = await startTestApp(provider.env(), { db: t.db });
    try {
      expect((await gqlWith(patient, await provider.sign(newKey, 'first'), VIEWER)).data.viewer.userId).toBe('first');
      const fetches = provider.fetches;
      const stranger = await generateProviderKey('made-up', 'RS256');
      for (let i = 0; i < 5; i++) expect(errorCode(await gqlWith(patient, await provider.sign(stranger, 'x'), VIEWER))).toBe('UNAUTHENTICATED');
      expect(provider.fetches).toBe(fetches);
    } finally {
      await patient.stop();
    }
  });
});

describe('JWT_SECRET and JWT_JWKS_URL together', () => {
  let provider: TestIdentityProvider;
  let rsa: ProviderKey;
  let t: TestApp;

  beforeAll(async () => {
    provider = await TestIdentityProvider.start();
    rsa = await generateProviderKey('rsa-1', 'RS256');
    provider.published = [rsa];
    t = await startTestApp(provider.env({ JWT_SECRET: TEST_JWT_SECRET }));
  });
  afterAll(async () => {
    await t?.stop();
    await provider?.stop();
  });

  it('accept HS256 tokens signed with the secret and the provider tokens, each checked with its own key', async () => {
    expect((await gqlWith(t, await t.app.tokens.sign('dev-user'), VIEWER)).data.viewer.userId).toBe('dev-user');
    expect((await gqlWith(t, await provider.sign(rsa, 'oidc-user'), VIEWER)).data.viewer.userId).toBe('oidc-user');
  });

  it.each([
    ['the RSA public key PEM', () => rsa.publicPem],
    ['the RSA public JWK', () => JSON.stringify(rsa.publicJwk)],
  ])('refuse an HS256 token keyed with %s', async (_name, secret) => {
    const result = await gqlWith(t, await hmacWithPublicKey(provider, rsa, secret()), VIEWER);
    expect(errorCode(result)).toBe('UNAUTHENTICATED');
    // Checked with the secret, as every HS256 token is here, and that signature does not match it.
    expect(result.errors?.[0]?.message).toBe('The token is not valid');
  });
});

describe('when the provider cannot be reached', () => {
  const unavailable = async (t: TestApp, token: string) => {
    const result = await gqlWith(t, token, VIEWER);
    expect(result.status).toBeLessThan(500);
    expect(errorCode(result)).toBe('UNAUTHENTICATED');
    expect(result.errors?.[0]?.message).toMatch(/signing keys are unavailable/);
  };
  const authLogs = (logs: ReturnType<typeof captureLogs>) => logs.records().filter((r) => r.component === 'auth').map((r) => [r.level, r.msg]);

  it('refuses its tokens with UNAUTHENTICATED (never a 500), warns once, and accepts them again once it answers', async () => {
    const provider = await TestIdentityProvider.start();
    const key = await generateProviderKey('rsa-1', 'RS256');
    provider.published = [key];
    provider.available = false;
    const logs = captureLogs('info');
    const t = await startTestApp(provider.env(), { logger: logs.logger });
    try {
      await unavailable(t, await provider.sign(key, 'u'));
      await unavailable(t, await provider.sign(key, 'u'));
      expect(authLogs(logs)).toEqual([[40, expect.stringMatching(/could not fetch the JWKS/)]]);

      provider.available = true;
      expect((await gqlWith(t, await provider.sign(key, 'back'), VIEWER)).data.viewer.userId).toBe('back');
      expect(authLogs(logs)).toEqual([
        [40, expect.stringMatching(/could not fetch the JWKS/)],
        [30, 'the JWKS can be fetched again'],
      ]);
    } finally {
      await t.stop();
      await provider.stop();
    }
  });

  it('refuses its tokens with UNAUTHENTICATED when nothing listens at JWT_JWKS_URL', async () => {
    const provider = await TestIdentityProvider.start();
    const key = await generateProviderKey('rsa-1', 'RS256');
    const env = provider.env();
    await provider.stop();
    const logs = captureLogs('warn');
    const t = await startTestApp(env, { logger: logs.logger });
    try {
      await unavailable(t, await provider.sign(key, 'u'));
      expect(authLogs(logs)).toEqual([[40, expect.stringMatching(/could not fetch the JWKS/)]]);
    } finally {
      await t.stop();
    }
  });
});
