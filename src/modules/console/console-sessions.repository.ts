import type { Queryable } from '../../db/db.js';

export interface ConsoleSessionRow {
  admin: boolean;
  merchant_id: string | null;
  merchant_name: string | null;
  test_mode: boolean;
  key_prefix: string | null;
  /** Of the key that signed in: NULL for a secret key and for the admin. */
  permissions: string[] | null;
  expires_at: Date;
}

export const consoleSessionsRepository = {
  async insert(db: Queryable, s: { tokenHash: Buffer; admin: boolean; merchantId: string | null; testMode: boolean; keyPrefix: string | null; minutes: number }): Promise<Date> {
    const r = await db.query<{ expires_at: Date }>(
      `INSERT INTO console_sessions (token_hash, admin, merchant_id, test_mode, key_prefix, expires_at)
       VALUES ($1, $2, $3, $4, $5, now() + ($6::int * interval '1 minute')) RETURNING expires_at`,
      [s.tokenHash, s.admin, s.merchantId, s.testMode, s.keyPrefix, s.minutes],
    );
    return r.rows[0].expires_at;
  },

  /** A live session: not signed out, not expired, and its key not revoked. */
  async findLive(db: Queryable, tokenHash: Buffer): Promise<ConsoleSessionRow | undefined> {
    const r = await db.query<ConsoleSessionRow>(
      `SELECT s.admin, s.merchant_id, m.name AS merchant_name, s.test_mode, s.key_prefix, k.permissions, s.expires_at
       FROM console_sessions s
       LEFT JOIN api_keys k ON k.prefix = s.key_prefix
       LEFT JOIN merchants m ON m.id = s.merchant_id
       WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > now()
         AND (s.admin OR k.revoked_at IS NULL)`,
      [tokenHash],
    );
    return r.rows[0];
  },

  async end(db: Queryable, tokenHash: Buffer): Promise<void> {
    await db.query('UPDATE console_sessions SET ended_at = COALESCE(ended_at, now()) WHERE token_hash = $1', [tokenHash]);
  },

  /** Sessions over a day past their end are of no use to anyone. */
  async prune(db: Queryable): Promise<void> {
    await db.query(`DELETE FROM console_sessions WHERE expires_at < now() - interval '1 day' OR ended_at < now() - interval '1 day'`);
  },
};
