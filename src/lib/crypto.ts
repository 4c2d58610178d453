import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** SHA-256 of a high-entropy secret (API keys). Not a password hash: keys carry ≥ 143 bits. */
export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function hmacSha256Hex(secret: string, payload: string): string {
  return createHmac('sha256', secret).update(payload, 'utf8').digest('hex');
}

export function sha256Hex(data: string): string {
  return createHash('sha256').update(data, 'utf8').digest('hex');
}

/** What an encryption key's fingerprint is an HMAC of: a constant, so the key never leaves. */
const FINGERPRINT_INPUT = 'settle encryption key fingerprint v1';

/**
 * Identifies an encryption key without revealing it: HMAC-SHA256 of a constant under the key,
 * hex. Stored in the database so a process started with another key is refused.
 */
export function keyFingerprint(key: Buffer): string {
  return createHmac('sha256', key).update(FINGERPRINT_INPUT, 'utf8').digest('hex');
}

/**
 * AES-256-GCM envelope: `v1.<iv b64>.<tag b64>.<ciphertext b64>`. The associated data binds a
 * ciphertext to its row (e.g. the connector account id), so ciphertexts cannot be swapped.
 *
 * Seals with `key`; opens with `key` or, during a key rotation, with one of `previous` (a value
 * sealed under another key fails GCM's authentication, so trying the keys in turn is exact).
 */
export class SecretBox {
  private readonly keys: Buffer[];

  constructor(
    private readonly key: Buffer,
    previous: Buffer[] = [],
  ) {
    for (const k of [key, ...previous]) if (k.length !== 32) throw new Error('encryption key must be 32 bytes');
    this.keys = [key, ...previous];
  }

  /** The fingerprint of the key that seals. */
  get fingerprint(): string {
    return keyFingerprint(this.key);
  }

  /** Fingerprints of the keys accepted for opening, the sealing one first. */
  get fingerprints(): string[] {
    return this.keys.map(keyFingerprint);
  }

  seal(plaintext: string, aad: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return ['v1', iv.toString('base64'), cipher.getAuthTag().toString('base64'), ct.toString('base64')].join('.');
  }

  open(sealed: string, aad: string): string {
    return this.openWith(sealed, aad).plaintext;
  }

  /**
   * Opens `sealed` and says which key did it: 0 is the sealing key, 1… the previous ones.
   * Throws when no key opens it.
   */
  openWith(sealed: string, aad: string): { plaintext: string; keyIndex: number } {
    const [version, iv, tag, ct] = sealed.split('.');
    if (version !== 'v1' || !iv || !tag || ct === undefined) throw new Error('unrecognised ciphertext');
    for (let i = 0; i < this.keys.length; i++) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', this.keys[i], Buffer.from(iv, 'base64'));
        decipher.setAAD(Buffer.from(aad, 'utf8'));
        decipher.setAuthTag(Buffer.from(tag, 'base64'));
        return { plaintext: Buffer.concat([decipher.update(Buffer.from(ct, 'base64')), decipher.final()]).toString('utf8'), keyIndex: i };
      } catch {
        // not this key
      }
    }
    throw new Error('no configured encryption key opens this value');
  }

  /** `sealed` under the sealing key: unchanged if it already is, re-sealed otherwise. */
  reseal(sealed: string, aad: string): { sealed: string; changed: boolean } {
    const { plaintext, keyIndex } = this.openWith(sealed, aad);
    return keyIndex === 0 ? { sealed, changed: false } : { sealed: this.seal(plaintext, aad), changed: true };
  }
}
