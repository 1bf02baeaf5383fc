import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON logs in production and under CI; readable lines when a person watches a terminal. Message
 * bodies and tokens are never passed to the logger: log ids, types and counts.
 */
export function createLogger(options: { level: string; pretty: boolean }): Logger {
  return pino({
    level: options.level,
    base: { service: 'chat-outbox' },
    redact: { paths: ['req.headers.authorization', '*.authorization', '*.token', '*.body'], censor: '[redacted]' },
    ...(options.pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
  });
}
