import {
  SignJWT,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';
import { unauthenticated } from '../errors.ts';
import type { Logger } from '../logger.ts';

export interface Viewer {
  userId: string;
  /** When the bearer token stops being valid; long-lived subscriptions check it per event. */
  tokenExpiresAt: Date | null;
}

export interface TokenService {
  /** True when a secret is configured, so `sign` works (development tokens, `npm run token`). */
  readonly canSign: boolean;
  /** An HS256 token for `userId`; throws when no secret is configured (JWKS-only setups). */
  sign(userId: string, options?: { expiresIn?: string }): Promise<string>;
  /**
   * Throws UNAUTHENTICATED for a token that is malformed, badly signed, expired or not yet valid,
   * for another issuer or audience, signed by an unknown key or with an algorithm not accepted.
   */
  verify(token: string): Promise<Viewer>;
}

export interface TokenServiceOptions {
  /** HS256 shared secret; null or absent: HS256 tokens are refused and `sign` is unavailable. */
  secret?: string | null;
  /** An OpenID Connect provider's key set; its keys verify only `algorithms`, never HS*. */
  jwks?: { url: URL; algorithms: readonly string[]; cooldownMs: number; cacheMaxAgeMs: number } | null;
  issuer: string;
  audience?: readonly string[] | null;
  clockToleranceS?: number;
  /** Where failures to fetch the key set are reported (they are the operator's problem, not the client's). */
  logger?: Logger;
}

const MAX_USER_ID_LENGTH = 200;
/** How long one fetch of the key set may take before the token is refused (jose's default). */
const JWKS_FETCH_TIMEOUT_MS = 5_000;

/** Thrown inside key lookup when the provider's key set cannot be fetched or read. */
class KeySetUnavailable extends Error {
  override name = 'KeySetUnavailable';
}

export function createTokenService(options: TokenServiceOptions): TokenService {
  const secretKey = options.secret ? new TextEncoder().encode(options.secret) : null;
  const claims: JWTVerifyOptions = {
    issuer: options.issuer,
    ...(options.audience?.length ? { audience: [...options.audience] } : {}),
    clockTolerance: options.clockToleranceS ?? 0,
    requiredClaims: ['sub'],
  };
  const jwks = options.jwks ? createKeySet(options.jwks, options.logger) : null;

  const verifiedHs256 = new VerifiedTokens();

  async function verifyPayload(token: string): Promise<JWTPayload> {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw unauthenticated('The token is not valid');
    }
    // The header's alg chooses the key, and each key is then held to its own algorithms: an HS256
    // token never meets a provider's public key (the RS/HS confusion), and `none` meets nothing.
    if (alg === 'HS256' && secretKey) {
      const known = verifiedHs256.get(token, claims.clockTolerance as number);
      if (known) return known;
      const { payload } = await jwtVerify(token, secretKey, { ...claims, algorithms: ['HS256'] });
      verifiedHs256.add(token, payload);
      return payload;
    }
    if (jwks && typeof alg === 'string' && jwks.algorithms.includes(alg)) {
      return (await jwtVerify(token, jwks.getKey, { ...claims, algorithms: [...jwks.algorithms] })).payload;
    }
    throw unauthenticated('The token is signed with an algorithm this server does not accept');
  }

  return {
    canSign: secretKey !== null,
    async sign(userId, { expiresIn = '12h' } = {}) {
      if (!secretKey) throw new Error('Signing tokens needs JWT_SECRET; with JWT_JWKS_URL alone, tokens come from the identity provider');
      const jwt = new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(userId)
        .setIssuer(options.issuer)
        .setIssuedAt()
        .setExpirationTime(expiresIn);
      if (options.audience?.length) jwt.setAudience(options.audience[0]!);
      return jwt.sign(secretKey);
    },
    async verify(token) {
      try {
        const payload = await verifyPayload(token);
        if (typeof payload.sub !== 'string' || !payload.sub || payload.sub.length > MAX_USER_ID_LENGTH) {
          throw unauthenticated('The token has no valid subject');
        }
        return { userId: payload.sub, tokenExpiresAt: payload.exp ? new Date(payload.exp * 1000) : null };
      } catch (error) {
        if (error instanceof KeySetUnavailable) throw unauthenticated('The token cannot be checked right now: the signing keys are unavailable');
        if (error instanceof joseErrors.JWTExpired) throw unauthenticated('The token has expired');
        if (error instanceof joseErrors.JWTClaimValidationFailed) throw unauthenticated(`The token's "${error.claim}" claim is not valid`);
        if (error instanceof joseErrors.JWKSNoMatchingKey) throw unauthenticated('The token is signed by a key this server does not know');
        if (error instanceof joseErrors.JOSEError) throw unauthenticated('The token is not valid');
        throw error;
      }
    },
  };
}

/**
 * HS256 tokens that passed verification, so a client sending the same token on every request
 * (all of them do) pays for the signature check once: WebCrypto's HMAC runs as a thread-pool job,
 * about a twentieth of the server's CPU under a `sendMessage` load (docs/design-notes.md#the-write-path).
 * Safe for HS256 only: its outcome depends on nothing but the token, the secret (fixed for the
 * process) and the time, and the time is checked again on every hit. A key set's tokens are not
 * kept: a key the provider withdraws must stop verifying at once. Bounded; the oldest go first.
 */
class VerifiedTokens {
  static readonly MAX = 10_000;
  readonly #tokens = new Map<string, JWTPayload>();

  get(token: string, clockToleranceS: number): JWTPayload | null {
    const payload = this.#tokens.get(token);
    if (!payload) return null;
    // Expired since: verify again, which refuses it with the reason.
    if (payload.exp !== undefined && !(Date.now() / 1000 < payload.exp + clockToleranceS)) {
      this.#tokens.delete(token);
      return null;
    }
    return payload;
  }

  add(token: string, payload: JWTPayload): void {
    if (this.#tokens.size >= VerifiedTokens.MAX) this.#tokens.delete(this.#tokens.keys().next().value!);
    this.#tokens.set(token, payload);
  }
}

/**
 * The provider's keys, fetched on first use and cached; jose refetches when the cache is older than
 * `cacheMaxAgeMs`, or for an unknown `kid` once `cooldownMs` has passed since the last fetch (key
 * rotation). A failed fetch is logged and refuses the token; the next request tries again.
 */
function createKeySet(config: NonNullable<TokenServiceOptions['jwks']>, logger: Logger | undefined) {
  const remote = createRemoteJWKSet(config.url, {
    cooldownDuration: config.cooldownMs,
    cacheMaxAge: config.cacheMaxAgeMs,
    timeoutDuration: JWKS_FETCH_TIMEOUT_MS,
  });
  // Logged once when fetching starts failing and once when it works again, not per request.
  let failing = false;
  const getKey: JWTVerifyGetKey = async (header, token) => {
    try {
      const key = await remote(header, token);
      if (failing) {
        failing = false;
        logger?.info({ jwksUrl: config.url.href }, 'the JWKS can be fetched again');
      }
      return key;
    } catch (error) {
      // These describe the token (a kid or key type the set does not have), not the provider.
      if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys || error instanceof joseErrors.JOSENotSupported) {
        throw error;
      }
      if (!failing) {
        failing = true;
        logger?.warn({ err: String(error), jwksUrl: config.url.href }, 'could not fetch the JWKS; tokens signed by the identity provider are refused until it answers');
      }
      throw new KeySetUnavailable(String(error));
    }
  };
  return { algorithms: config.algorithms, getKey };
}

/** `Authorization: Bearer <token>` → token, or null when absent. */
export function bearerToken(header: string | null | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthenticated('The Authorization header must be "Bearer <token>"');
  return match[1] ?? null;
}
