import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export type SigningAlg = 'RS256' | 'ES256' | 'EdDSA' | 'PS256';

export interface ProviderKey {
  kid: string;
  alg: SigningAlg;
  privateKey: CryptoKey;
  publicJwk: JWK;
  /** The public key as PEM (SPKI), the string an HS/RS confusion attack uses as the HMAC secret. */
  publicPem: string;
}

export async function generateProviderKey(kid: string, alg: SigningAlg): Promise<ProviderKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }, publicPem: await exportSPKI(publicKey) };
}

/**
 * A stand-in OpenID Connect provider: serves `published` keys as a JWKS over HTTP on 127.0.0.1 (a
 * free port) and signs tokens with any key, published or not. `fetches` counts the JWKS requests.
 */
export class TestIdentityProvider {
  readonly issuer = 'https://id.test.example/';
  readonly audience = 'chat-outbox-api';
  published: ProviderKey[] = [];
  /** false: the JWKS endpoint answers 503, as a provider in trouble does. */
  available = true;
  fetches = 0;
  readonly #server: Server;

  private constructor() {
    this.#server = createServer((request, response) => {
      if (request.url !== '/jwks.json') return void response.writeHead(404).end();
      this.fetches++;
      if (!this.available) return void response.writeHead(503).end();
      response.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: this.published.map((key) => key.publicJwk) }));
    });
  }

  static async start(): Promise<TestIdentityProvider> {
    const provider = new TestIdentityProvider();
    await new Promise<void>((resolve) => provider.#server.listen(0, '127.0.0.1', resolve));
    return provider;
  }

  get jwksUrl(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/jwks.json`;
  }

  /** The settings that point the app at this provider, with no HS256 secret. */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return { JWT_SECRET: '', JWT_JWKS_URL: this.jwksUrl, JWT_ISSUER: this.issuer, JWT_AUDIENCE: this.audience, ...extra };
  }

  /** A token as the provider would issue it; `claims` override or remove (undefined) the defaults. */
  async sign(key: ProviderKey, subject: string, claims: Partial<Record<keyof JWTPayload, unknown>> = {}, expiresIn = '10m'): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const payload: Record<string, unknown> = { sub: subject, iss: this.issuer, aud: this.audience, iat: now, exp: now + seconds(expiresIn), ...claims };
    for (const name of Object.keys(payload)) if (payload[name] === undefined) delete payload[name];
    return new SignJWT(payload as JWTPayload).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' }).sign(key.privateKey);
  }

  stop(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

function seconds(duration: string): number {
  const match = /^(\d+)([smhd])$/.exec(duration);
  if (!match) throw new Error(`not a duration: ${duration}`);
  return Number(match[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[match[2] as 's' | 'm' | 'h' | 'd'];
}
