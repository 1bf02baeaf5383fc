import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { unauthenticated } from '../errors.ts';

export interface Viewer {
  userId: string;
  /** When the bearer token stops being valid; long-lived subscriptions check it per event. */
  tokenExpiresAt: Date | null;
}

export interface TokenService {
  sign(userId: string, options?: { expiresIn?: string }): Promise<string>;
  /** Throws UNAUTHENTICATED for a token that is malformed, badly signed, expired or for another issuer. */
  verify(token: string): Promise<Viewer>;
}

const MAX_USER_ID_LENGTH = 200;

export function createTokenService(options: { secret: string; issuer: string }): TokenService {
  const key = new TextEncoder().encode(options.secret);
  return {
    async sign(userId, { expiresIn = '12h' } = {}) {
      return new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(userId)
        .setIssuer(options.issuer)
        .setIssuedAt()
        .setExpirationTime(expiresIn)
        .sign(key);
    },
    async verify(token) {
      try {
        const { payload } = await jwtVerify(token, key, { issuer: options.issuer, algorithms: ['HS256'] });
        if (!payload.sub || payload.sub.length > MAX_USER_ID_LENGTH) throw unauthenticated('The token has no valid subject');
        return { userId: payload.sub, tokenExpiresAt: payload.exp ? new Date(payload.exp * 1000) : null };
      } catch (error) {
        if (error instanceof joseErrors.JWTExpired) throw unauthenticated('The token has expired');
        if (error instanceof joseErrors.JOSEError) throw unauthenticated('The token is not valid');
        throw error;
      }
    },
  };
}

/** `Authorization: Bearer <token>` → token, or null when absent. */
export function bearerToken(header: string | null | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthenticated('The Authorization header must be "Bearer <token>"');
  return match[1] ?? null;
}
