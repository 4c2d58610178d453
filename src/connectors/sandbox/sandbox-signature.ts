/**
 * The sandbox PSP's webhook signature: `Sandbox-Signature: t=<unix seconds>,v1=<hex HMAC>` where
 * the HMAC-SHA256 (keyed with the account's webhook secret) covers `"<t>.<raw body>"`. Signing the
 * timestamp with the body lets the receiver reject replays older than the tolerance; several `v1`
 * values are accepted so a sender can sign with an old and a new secret during a rotation.
 */
import { constantTimeEqual, hmacSha256Hex } from '../../lib/crypto.js';

/** Header name as Node presents it (lower case). */
export const SANDBOX_SIGNATURE_HEADER = 'sandbox-signature';
/** Default accepted clock difference between signer and verifier, in seconds. */
export const SANDBOX_SIGNATURE_TOLERANCE_SECONDS = 300;

const nowUnix = (): number => Math.floor(Date.now() / 1000);

export function signSandboxWebhook(secret: string, rawBody: string, nowSeconds: number = nowUnix()): string {
  const t = Math.floor(nowSeconds);
  return `t=${t},v1=${hmacSha256Hex(secret, `${t}.${rawBody}`)}`;
}

/**
 * True when one of the header's `v1` signatures matches and `t` is within `toleranceSeconds` of
 * now (either direction: a timestamp from the future is as suspicious as an old one). A missing,
 * repeated or malformed header, or an empty secret, never verifies.
 */
export function verifySandboxSignature(
  secret: string,
  rawBody: string,
  header: string | string[] | undefined,
  nowSeconds: number = nowUnix(),
  toleranceSeconds: number = SANDBOX_SIGNATURE_TOLERANCE_SECONDS,
): boolean {
  if (!secret) return false;
  const value = Array.isArray(header) ? (header.length === 1 ? header[0] : undefined) : header;
  if (typeof value !== 'string') return false;

  let timestamp: string | undefined;
  const signatures: Buffer[] = [];
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return false;
    const key = part.slice(0, eq).trim();
    const val = part.slice(eq + 1).trim();
    if (key === 't') {
      if (timestamp !== undefined || !/^\d{1,12}$/.test(val)) return false;
      timestamp = val;
    } else if (key === 'v1') {
      if (!/^[0-9a-fA-F]{64}$/.test(val)) return false;
      signatures.push(Buffer.from(val, 'hex'));
    }
    // Other schemes (v0, future v2) are ignored, as receivers of versioned signatures should.
  }
  if (timestamp === undefined || signatures.length === 0) return false;
  if (Math.abs(Math.floor(nowSeconds) - Number(timestamp)) > toleranceSeconds) return false;

  const expected = Buffer.from(hmacSha256Hex(secret, `${timestamp}.${rawBody}`), 'hex');
  // Compare against every candidate without stopping early, so timing says nothing about which matched.
  let ok = false;
  for (const candidate of signatures) ok = constantTimeEqual(candidate, expected) || ok;
  return ok;
}
