import { pino, type Logger } from 'pino';

/**
 * Paths whose values never reach a log line. Secrets also never enter log calls in the first
 * place; this list is the second line of defence (request headers are the usual leak).
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["settle-signature"]',
  'req.headers["sandbox-signature"]',
  'headers.authorization',
  'authorization',
  'secret',
  'credentials',
  'api_keys',
  'webhook_secret',
  '*.secret',
  '*.credentials',
  '*.webhook_secret',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { service: 'settle' } },
    destination as never,
  );
}

export type { Logger };
