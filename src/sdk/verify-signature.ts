/**
 * Verifying Settle webhooks in a merchant's receiver. Self-contained (node:crypto only), so it
 * can be shipped and copied on its own.
 *
 * Settle signs every delivery with
 *   Settle-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
 * Verify against the raw request body exactly as received: JSON that was parsed and serialized
 * again will not match. While a secret is being rotated the header may carry several `v1=`
 * values; any one matching is enough.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Default allowed distance between the signature's timestamp and now: 300 seconds. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export interface VerifySettleSignatureOptions {
  /** The raw request body, as received. */
  payload: string | Buffer;
  /** The `Settle-Signature` header value. */
  header: string | undefined;
  /** The endpoint's signing secret (`whsec_…`). */
  secret: string;
  /** Largest accepted |now − t| in seconds, against replays. Default 300. */
  toleranceSeconds?: number;
  /** The current time in unix seconds. Default `Date.now() / 1000`. */
  now?: number;
}

/** What a Settle event looks like (contract section 7.1). */
export interface SettleEvent {
  id: string;
  object: 'event';
  type: string;
  created_at: string;
  test_mode: boolean;
  data: { object: Record<string, unknown> };
}

export class SettleSignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettleSignatureError';
  }
}

/** True when `header` is a valid, fresh signature of `payload` under `secret`. Never throws. */
export function verifySettleSignature(opts: VerifySettleSignatureOptions): boolean {
  return check(opts) === undefined;
}

/**
 * Verifies the signature and returns the parsed event; throws `SettleSignatureError` saying
 * what is wrong otherwise. `tolerance` is in seconds (default 300).
 */
export function constructEvent(
  payload: string | Buffer,
  header: string | undefined,
  secret: string,
  tolerance: number = DEFAULT_TOLERANCE_SECONDS,
): SettleEvent {
  const problem = check({ payload, header, secret, toleranceSeconds: tolerance });
  if (problem !== undefined) throw new SettleSignatureError(problem);
  const text = typeof payload === 'string' ? payload : payload.toString('utf8');
  try {
    return JSON.parse(text) as SettleEvent;
  } catch {
    throw new SettleSignatureError('The payload is correctly signed but is not valid JSON.');
  }
}

/** Why verification fails, or undefined when it succeeds. */
function check(opts: VerifySettleSignatureOptions): string | undefined {
  const { payload, header, secret } = opts;
  const tolerance = opts.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = opts.now ?? Date.now() / 1000;
  if (typeof secret !== 'string' || secret === '') return 'No webhook signing secret was given.';
  if (typeof header !== 'string' || header.trim() === '') return 'No Settle-Signature header was found on the request.';

  let timestamp: number | undefined;
  const signatures: Buffer[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') {
      if (timestamp !== undefined || !/^\d{1,12}$/.test(value)) return 'The Settle-Signature header has a malformed timestamp.';
      timestamp = Number(value);
    } else if (key === 'v1' && /^[0-9a-fA-F]{64}$/.test(value)) {
      signatures.push(Buffer.from(value, 'hex'));
    }
    // other schemes (future versions) are ignored, as a receiver of a newer sender should
  }
  if (timestamp === undefined) return 'The Settle-Signature header has no timestamp (t=…).';
  if (signatures.length === 0) return 'The Settle-Signature header has no v1 signature.';
  if (!(Math.abs(now - timestamp) <= tolerance)) {
    return `The signature timestamp is outside the tolerance of ${tolerance} seconds (possible replay, or a wrong clock).`;
  }

  // the HMAC runs over the raw bytes, so a Buffer payload is never decoded and re-encoded
  const expected = createHmac('sha256', secret)
    .update(`${timestamp}.`, 'utf8')
    .update(typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload)
    .digest();
  let matched = false;
  // every candidate is compared, in constant time, so timing does not reveal which one matched
  for (const sig of signatures) matched = timingSafeEqual(sig, expected) || matched;
  return matched ? undefined : 'No v1 signature matches the payload: check the secret and that the body is the raw, unparsed request body.';
}
