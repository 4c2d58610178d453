import { createHmac, timingSafeEqual } from 'node:crypto';
import type { webhooks } from './schema.js';

/** The events Settle sends, one type per event type (a union discriminated by `type`). */
export type WebhookEvent = {
  [K in keyof webhooks]: NonNullable<webhooks[K]['post']['requestBody']>['content']['application/json'];
}[keyof webhooks];

export type WebhookEventType = WebhookEvent['type'];

export class WebhookSignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookSignatureError';
  }
}

export interface VerifyWebhookOptions {
  /** The raw request body, exactly as received. */
  payload: string | Buffer;
  /** The request's headers (`Settle-Signature` is read, case-insensitively). */
  headers: Record<string, string | string[] | undefined> | Headers;
  /** The endpoint's secret (whsec_…). */
  secret: string;
  /** Largest accepted |now − t| in seconds. Default 300. */
  toleranceSeconds?: number;
}

/**
 * Verifies a delivery's `Settle-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
 * and returns the typed event; throws WebhookSignatureError on a missing, wrong or old signature.
 */
export function verifyWebhook(opts: VerifyWebhookOptions): WebhookEvent {
  const header = headerValue(opts.headers, 'settle-signature');
  if (!header) throw new WebhookSignatureError('No Settle-Signature header.');
  const parts = header.split(',').map((p) => p.trim().split('=', 2) as [string, string]);
  const t = Number(parts.find(([k]) => k === 't')?.[1]);
  const signatures = parts.filter(([k]) => k === 'v1').map(([, v]) => v);
  if (!Number.isInteger(t) || signatures.length === 0) throw new WebhookSignatureError('Malformed Settle-Signature header.');
  if (Math.abs(Date.now() / 1000 - t) > (opts.toleranceSeconds ?? 300)) throw new WebhookSignatureError('The signature is too old (or from the future).');
  const payload = typeof opts.payload === 'string' ? opts.payload : opts.payload.toString('utf8');
  const expected = createHmac('sha256', opts.secret).update(`${t}.${payload}`).digest();
  const matches = signatures.some((s) => {
    const given = Buffer.from(s, 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!matches) throw new WebhookSignatureError('The signature does not match the payload and secret.');
  return JSON.parse(payload) as WebhookEvent;
}

function headerValue(headers: VerifyWebhookOptions['headers'], name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const entry = Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1];
  return Array.isArray(entry) ? entry[0] : entry;
}
