import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Keys that may hold a message body, an event payload, GraphQL variables or a credential. Nothing
 * should ever pass them to the logger (log ids, types and counts); this is the safety net.
 */
const REDACTED_PATHS = [
  'authorization',
  'token',
  'body',
  'payload',
  'variables',
  'connectionParams',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
  '*.authorization',
  '*.token',
  '*.body',
  '*.payload',
  '*.variables',
  '*.connectionParams',
];

/**
 * Errors keep their class, message, code, GraphQL path and stack, and their cause chain, and lose
 * every other field: PostgreSQL errors carry `detail` and `where` (e.g. "Failing row contains
 * (…the message body…)"), which pino's default error serializer would print in full.
 */
export function serializeError(error: unknown, depth = 0): unknown {
  if (!(error instanceof Error)) return error;
  const withExtras = error as Error & { code?: unknown; path?: unknown; originalError?: unknown };
  const cause = error.cause ?? withExtras.originalError;
  return {
    type: error.name,
    message: error.message,
    ...(typeof withExtras.code === 'string' || typeof withExtras.code === 'number' ? { code: withExtras.code } : {}),
    ...(Array.isArray(withExtras.path) ? { path: withExtras.path.join('.') } : {}),
    stack: error.stack,
    ...(cause instanceof Error && depth < 3 ? { cause: serializeError(cause, depth + 1) } : {}),
  };
}

export interface LoggerOptions {
  level: string;
  /** Readable lines for a person at a terminal (pino-pretty); JSON otherwise. */
  pretty: boolean;
  /** Where JSON lines go instead of stdout (tests capture them here); `pretty` is then ignored. */
  destination?: DestinationStream;
}

/**
 * JSON logs in production and under CI; readable lines when a person watches a terminal. Message
 * bodies and tokens are never passed to the logger: log ids, types and counts.
 */
export function createLogger(options: LoggerOptions): Logger {
  const config = {
    level: options.level,
    base: { service: 'chat-outbox' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    serializers: { err: (error: unknown) => serializeError(error) },
  };
  if (options.destination) return pino(config, options.destination);
  return pino({
    ...config,
    ...(options.pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
  });
}
