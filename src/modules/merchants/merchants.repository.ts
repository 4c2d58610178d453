import type { Queryable } from '../../db/db.js';

export interface MerchantRow {
  id: string;
  name: string;
  created_at: Date;
}

export interface ApiKeyRow {
  prefix: string;
  merchant_id: string;
  test_mode: boolean;
  key_hash: Buffer | Uint8Array;
  revoked_at: Date | null;
  /** NULL for a secret key. */
  permissions: string[] | null;
}

/** A key as listed: never its hash. */
export interface ApiKeyListRow {
  prefix: string;
  merchant_id: string;
  test_mode: boolean;
  name: string | null;
  permissions: string[] | null;
  created_at: Date;
  revoked_at: Date | null;
}

export const merchantsRepository = {
  async insert(db: Queryable, id: string, name: string): Promise<MerchantRow> {
    const r = await db.query<MerchantRow>('INSERT INTO merchants (id, name) VALUES ($1, $2) RETURNING *', [id, name]);
    return r.rows[0];
  },
  async find(db: Queryable, id: string): Promise<MerchantRow | undefined> {
    return (await db.query<MerchantRow>('SELECT * FROM merchants WHERE id = $1', [id])).rows[0];
  },
  async first(db: Queryable): Promise<MerchantRow | undefined> {
    return (await db.query<MerchantRow>('SELECT * FROM merchants ORDER BY created_at LIMIT 1')).rows[0];
  },
  async insertKey(db: Queryable, prefix: string, merchantId: string, testMode: boolean, hash: Buffer, restricted?: { name: string; permissions: readonly string[] }): Promise<void> {
    await db.query('INSERT INTO api_keys (prefix, merchant_id, test_mode, key_hash, name, permissions) VALUES ($1, $2, $3, $4, $5, $6)', [
      prefix,
      merchantId,
      testMode,
      hash,
      restricted?.name ?? null,
      restricted ? [...restricted.permissions] : null,
    ]);
  },
  async listKeys(db: Queryable, merchantId: string, testMode: boolean, limit: number, after?: { createdAt: string; id: string }): Promise<ApiKeyListRow[]> {
    const params: unknown[] = [merchantId, testMode, limit + 1];
    if (after) params.push(after.createdAt, after.id);
    const r = await db.query<ApiKeyListRow>(
      `SELECT prefix, merchant_id, test_mode, name, permissions, created_at, revoked_at FROM api_keys
       WHERE merchant_id = $1 AND test_mode = $2 ${after ? 'AND (created_at, prefix) < ($4::timestamptz, $5)' : ''}
       ORDER BY created_at DESC, prefix DESC LIMIT $3`,
      params,
    );
    return r.rows;
  },
  async keyListing(db: Queryable, prefix: string): Promise<ApiKeyListRow | undefined> {
    const r = await db.query<ApiKeyListRow>('SELECT prefix, merchant_id, test_mode, name, permissions, created_at, revoked_at FROM api_keys WHERE prefix = $1', [prefix]);
    return r.rows[0];
  },
  async list(db: Queryable, limit: number, after?: { createdAt: string; id: string }): Promise<MerchantRow[]> {
    const params: unknown[] = [limit + 1];
    if (after) params.push(after.createdAt, after.id);
    const r = await db.query<MerchantRow>(
      `SELECT * FROM merchants ${after ? 'WHERE (created_at, id) < ($2::timestamptz, $3)' : ''} ORDER BY created_at DESC, id DESC LIMIT $1`,
      params,
    );
    return r.rows;
  },
  async findKey(db: Queryable, prefix: string): Promise<ApiKeyRow | undefined> {
    return (await db.query<ApiKeyRow>('SELECT prefix, merchant_id, test_mode, key_hash, revoked_at, permissions FROM api_keys WHERE prefix = $1', [prefix])).rows[0];
  },
  async revokeKey(db: Queryable, prefix: string): Promise<{ prefix: string; merchant_id: string; test_mode: boolean; revoked_at: Date } | undefined> {
    const r = await db.query<{ prefix: string; merchant_id: string; test_mode: boolean; revoked_at: Date }>(
      `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE prefix = $1
       RETURNING prefix, merchant_id, test_mode, revoked_at`,
      [prefix],
    );
    return r.rows[0];
  },
};
