import { randomBytes, randomFillSync, randomUUID } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const LOWER = '0123456789abcdefghijklmnopqrstuvwxyz';

/**
 * Uniform random string over `alphabet` (rejection sampling, no modulo bias), from bytes drawn
 * for it alone: for secrets (API keys, signing secrets).
 */
export function randomString(length: number, alphabet = ALPHABET): string {
  const out: string[] = [];
  const limit = 256 - (256 % alphabet.length);
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < limit) out.push(alphabet[byte % alphabet.length]);
      if (out.length === length) break;
    }
  }
  return out.join('');
}

/**
 * The random part of ids, from a pool of CSPRNG bytes refilled 4 KiB at a time (as the uuid
 * package does): one call into OpenSSL per ~400 ids instead of one per id. Ids are not secrets;
 * secrets come from `randomString`.
 */
const idBytes = Buffer.alloc(4096);
let idAt = idBytes.length;
function idRandom(length: number): string {
  let out = '';
  while (out.length < length) {
    if (idAt === idBytes.length) {
      randomFillSync(idBytes);
      idAt = 0;
    }
    const byte = idBytes[idAt++];
    if (byte < ID_LIMIT) out += ALPHABET[byte % ALPHABET.length];
  }
  return out;
}
const ID_LIMIT = 256 - (256 % ALPHABET.length);

export type IdPrefix = 'mer' | 'pay' | 're' | 'evt' | 'we' | 'req' | 'li' | 'txn' | 'whd' | 'iwh' | 'rcd';

/**
 * Prefixed, time-ordered ids: 10 chars of base-36 milliseconds, a 4-char base-36 sequence that
 * orders ids made by this process within the same millisecond, then 10 random chars. Ids sort by
 * creation time (cursors, index locality on insert), and an authorization and its automatic
 * capture, written in the same millisecond, still list in the order they happened.
 */
let lastMs = 0;
let seq = 0;
export function newId(prefix: IdPrefix): string {
  let now = Date.now();
  if (now <= lastMs) {
    now = lastMs; // same millisecond, or the clock stepped back: keep the order
    seq += 1;
    if (seq >= SEQ_SPAN) { now = lastMs = lastMs + 1; seq = 0; }
  } else {
    lastMs = now;
    seq = 0;
  }
  const time = now.toString(36).padStart(10, '0');
  return `${prefix}_${time}${seq.toString(36).padStart(4, '0')}${idRandom(10)}`;
}
const SEQ_SPAN = 36 ** 4;

export const newUuid = (): string => randomUUID();

/** `ca_` + 10 lowercase letters/digits (section 4 of the contract). */
export const newConnectorShortId = (): string => `ca_${randomString(10, LOWER)}`;

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const SHORT_ID_RE = /^ca_[0-9a-z]{10}$/;
