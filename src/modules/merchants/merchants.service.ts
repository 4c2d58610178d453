import type { Db, Queryable } from '../../db/db.js';
import { AppError } from '../../http/errors.js';
import { decodeCursor, toPage } from '../../http/pagination.js';
import { constantTimeEqual, hashSecret } from '../../lib/crypto.js';
import { newId, randomString } from '../../lib/ids.js';
import { merchantsRepository as repo, type MerchantRow } from './merchants.repository.js';

export type Mode = 'test' | 'live';

export interface AuthContext {
  merchantId: string;
  testMode: boolean;
  keyPrefix: string;
  /** A restricted key's permissions; undefined for a secret key, which may do everything. */
  permissions?: readonly string[];
}

/** `sk_test_` / `sk_live_` (secret) or `rk_test_` / `rk_live_` (restricted) + 32 base62 characters (≈ 190 bits). */
const KEY_RE = /^(sk|rk)_(test|live)_([A-Za-z0-9]{24,128})$/;
const PREFIX_CHARS = 8;
/** A verified key is trusted for this long before the database is asked again; revocation
 *  therefore takes effect on every process within this window. */
const AUTH_CACHE_MS = 1000;

export function keyPrefixOf(secret: string): string | undefined {
  const m = KEY_RE.exec(secret);
  return m ? `${m[1]}_${m[2]}_${m[3].slice(0, PREFIX_CHARS)}` : undefined;
}

export function renderMerchant(m: MerchantRow, keys?: { test: string; live: string }) {
  return {
    id: m.id,
    object: 'merchant' as const,
    name: m.name,
    created_at: m.created_at.toISOString(),
    ...(keys ? { api_keys: keys } : {}),
  };
}

export class MerchantsService {
  private readonly cache = new Map<string, { hash: Buffer; ctx: AuthContext | null; at: number }>();

  constructor(private readonly db: Db) {}

  async create(name: string): Promise<{ merchant: MerchantRow; keys: { test: string; live: string } }> {
    return this.db.transaction(async (tx) => {
      const merchant = await repo.insert(tx, newId('mer'), name);
      const test = await this.insertKey(tx, merchant.id, 'test');
      const live = await this.insertKey(tx, merchant.id, 'live');
      return { merchant, keys: { test, live } };
    });
  }

  async createKey(merchantId: string, mode: Mode): Promise<{ secret: string; prefix: string }> {
    const merchant = await repo.find(this.db, merchantId);
    if (!merchant) throw new AppError('merchant_not_found', `No such merchant: ${merchantId}.`, { param: 'id' });
    const secret = await this.insertKey(this.db, merchantId, mode);
    return { secret, prefix: keyPrefixOf(secret)! };
  }

  async revokeKey(prefix: string) {
    const row = await repo.revokeKey(this.db, prefix);
    if (!row) throw new AppError('not_found', `No such API key: ${prefix}.`, { param: 'key_prefix' });
    this.cache.delete(prefix);
    return row;
  }

  find(id: string) {
    return repo.find(this.db, id);
  }

  async list(q: { limit: number; cursor?: string }) {
    return toPage(await repo.list(this.db, q.limit, decodeCursor(q.cursor)), q.limit, (m) => renderMerchant(m));
  }

  first() {
    return repo.first(this.db);
  }

  /** Resolves a bearer secret to its merchant and mode, or throws 401. */
  async authenticate(secret: string | undefined): Promise<AuthContext> {
    const fail = () => new AppError('invalid_api_key', 'Invalid API key provided.');
    if (!secret) throw new AppError('invalid_api_key', 'No API key provided: use "Authorization: Bearer sk_…".');
    const prefix = keyPrefixOf(secret);
    if (!prefix) throw fail();
    const presented = hashSecret(secret);
    const now = Date.now();
    let entry = this.cache.get(prefix);
    if (!entry || now - entry.at > AUTH_CACHE_MS) {
      const row = await repo.findKey(this.db, prefix);
      entry = row
        ? {
            hash: Buffer.from(row.key_hash),
            ctx: row.revoked_at
              ? null
              : { merchantId: row.merchant_id, testMode: row.test_mode, keyPrefix: prefix, ...(row.permissions ? { permissions: row.permissions } : {}) },
            at: now,
          }
        : { hash: Buffer.alloc(32), ctx: null, at: now };
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(prefix, entry);
    }
    // compared in constant time even when the prefix is unknown (against zeros)
    const match = constantTimeEqual(presented, entry.hash);
    if (!match || !entry.ctx) throw fail();
    return entry.ctx;
  }

  /** Forgets a key's cached verification, so that its revocation applies at once in this process. */
  forgetKey(prefix: string): void {
    this.cache.delete(prefix);
  }

  private async insertKey(db: Queryable, merchantId: string, mode: Mode, restricted?: { name: string; permissions: readonly string[] }): Promise<string> {
    const secret = `${restricted ? 'rk' : 'sk'}_${mode}_${randomString(32)}`;
    await repo.insertKey(db, keyPrefixOf(secret)!, merchantId, mode === 'test', hashSecret(secret), restricted);
    return secret;
  }

  /** A restricted key for the merchant and mode of `auth`; its secret is returned once. */
  async createRestrictedKey(merchantId: string, mode: Mode, name: string, permissions: readonly string[]): Promise<string> {
    return this.insertKey(this.db, merchantId, mode, { name, permissions });
  }
}
