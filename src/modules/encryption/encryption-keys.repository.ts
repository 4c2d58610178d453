import type { Queryable } from '../../db/db.js';
import { SEALED as SEALED_RESPONSE_PREFIX, sealContext } from '../idempotency/idempotency.service.js';

/**
 * Every value sealed with the encryption key, by kind: the column holding it, the row it is in,
 * and the associated data it was sealed with (see SecretBox).
 */
export interface SealedValue {
  kind: 'connector_credentials' | 'connector_webhook_secret' | 'webhook_endpoint_secret' | 'stored_response';
  /** Identifies the row for the compare-and-set update. */
  ref: Record<string, unknown>;
  sealed: string;
  aad: string;
}

export const encryptionKeysRepository = {
  async fingerprint(db: Queryable): Promise<string | undefined> {
    const r = await db.query<{ fingerprint: string }>('SELECT fingerprint FROM encryption_key_fingerprint');
    return r.rows[0]?.fingerprint;
  },

  /** Records the first fingerprint; a concurrent first start that recorded another wins. */
  async adopt(db: Queryable, fingerprint: string): Promise<string> {
    await db.query('INSERT INTO encryption_key_fingerprint (fingerprint) VALUES ($1) ON CONFLICT DO NOTHING', [fingerprint]);
    return (await encryptionKeysRepository.fingerprint(db))!;
  },

  async replace(db: Queryable, from: string, to: string): Promise<boolean> {
    const r = await db.query('UPDATE encryption_key_fingerprint SET fingerprint = $2, updated_at = now() WHERE fingerprint = $1', [from, to]);
    return r.rowCount === 1;
  },

  /** Every sealed value in the database (all rows, deleted ones too). */
  async sealedValues(db: Queryable): Promise<SealedValue[]> {
    const out: SealedValue[] = [];
    const accounts = await db.query<{ id: string; credentials_sealed: string | null; webhook_secret_sealed: string }>(
      'SELECT id, credentials_sealed, webhook_secret_sealed FROM connector_accounts ORDER BY id',
    );
    for (const a of accounts.rows) {
      if (a.credentials_sealed) out.push({ kind: 'connector_credentials', ref: { id: a.id }, sealed: a.credentials_sealed, aad: a.id });
      out.push({ kind: 'connector_webhook_secret', ref: { id: a.id }, sealed: a.webhook_secret_sealed, aad: a.id });
    }
    const endpoints = await db.query<{ id: string; secret_sealed: string }>('SELECT id, secret_sealed FROM webhook_endpoints ORDER BY id');
    for (const e of endpoints.rows) out.push({ kind: 'webhook_endpoint_secret', ref: { id: e.id }, sealed: e.secret_sealed, aad: e.id });
    const stored = await db.query<{ merchant_id: string; test_mode: boolean; key: string; response_body: string }>(
      `SELECT merchant_id, test_mode, key, response_body FROM idempotency_keys WHERE response_body LIKE 'sealed:%' ORDER BY merchant_id, test_mode, key`,
    );
    for (const s of stored.rows) {
      out.push({
        kind: 'stored_response',
        ref: { merchant_id: s.merchant_id, test_mode: s.test_mode, key: s.key },
        sealed: s.response_body.slice(SEALED_RESPONSE_PREFIX.length),
        aad: sealContext({ merchantId: s.merchant_id, testMode: s.test_mode, key: s.key }),
      });
    }
    return out;
  },

  /** Replaces one sealed value if it is still `from`; false when the row changed meanwhile. */
  async replaceSealed(db: Queryable, value: SealedValue, to: string): Promise<boolean> {
    let r;
    switch (value.kind) {
      case 'connector_credentials':
        r = await db.query('UPDATE connector_accounts SET credentials_sealed = $2 WHERE id = $1 AND credentials_sealed = $3', [value.ref.id, to, value.sealed]);
        break;
      case 'connector_webhook_secret':
        r = await db.query('UPDATE connector_accounts SET webhook_secret_sealed = $2 WHERE id = $1 AND webhook_secret_sealed = $3', [value.ref.id, to, value.sealed]);
        break;
      case 'webhook_endpoint_secret':
        r = await db.query('UPDATE webhook_endpoints SET secret_sealed = $2 WHERE id = $1 AND secret_sealed = $3', [value.ref.id, to, value.sealed]);
        break;
      case 'stored_response':
        r = await db.query(
          'UPDATE idempotency_keys SET response_body = $4 WHERE merchant_id = $1 AND test_mode = $2 AND key = $3 AND response_body = $5',
          [value.ref.merchant_id, value.ref.test_mode, value.ref.key, SEALED_RESPONSE_PREFIX + to, SEALED_RESPONSE_PREFIX + value.sealed],
        );
        break;
    }
    return r.rowCount === 1;
  },
};
