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
 * (…the message body…)"), which pino's default error serializer would print in full. MikroORM also
 * appends the detail and hint to the message itself (" - detail: …"), so those texts are cut out of
 * every message and stack in the chain, wherever in the chain they came from.
 */
export function serializeError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const chain: Error[] = [];
  for (let link: unknown = error; link instanceof Error && chain.length < 4 && !chain.includes(link); link = causeOf(link)) chain.push(link);
  const secrets = chain.flatMap((link) => {
    const { detail, hint } = link as { detail?: unknown; hint?: unknown };
    return [detail, hint].filter((text): text is string => typeof text === 'string' && text.trim() !== '');
  });
  const scrub = (text: string | undefined) => (text === undefined ? undefined : secrets.reduce((out, secret) => out.split(secret).join('[redacted]'), text));
  const serialize = (index: number): unknown => {
    const link = chain[index];
    if (!link) return undefined;
    const extras = link as Error & { code?: unknown; path?: unknown };
    const cause = serialize(index + 1);
    return {
      type: link.name,
      message: scrub(link.message),
      ...(typeof extras.code === 'string' || typeof extras.code === 'number' ? { code: extras.code } : {}),
      ...(Array.isArray(extras.path) ? { path: extras.path.join('.') } : {}),
      stack: scrub(link.stack),
      ...(cause ? { cause } : {}),
    };
  };
  return serialize(0);
}

const causeOf = (error: Error): unknown => error.cause ?? (error as { originalError?: unknown }).originalError;

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
