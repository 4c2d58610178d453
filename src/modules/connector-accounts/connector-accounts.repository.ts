import type { Queryable } from '../../db/db.js';
import { SHORT_ID_RE, UUID_RE } from '../../lib/ids.js';

export interface ConnectorAccountRow {
  id: string;
  short_id: string;
  merchant_id: string;
  test_mode: boolean;
  connector: string;
  name: string | null;
  status: 'active' | 'inactive';
  is_default: boolean;
  settings: Record<string, unknown>;
  credentials_sealed: string | null;
  webhook_secret_sealed: string;
  created_at: Date;
  deleted_at: Date | null;
}

/** Which column an id form matches: a UUID `id` or a `ca_…` short id. */
export function idColumn(idOrShortId: string): 'id' | 'short_id' | undefined {
  if (UUID_RE.test(idOrShortId)) return 'id';
  if (SHORT_ID_RE.test(idOrShortId)) return 'short_id';
  return undefined;
}

export const connectorAccountsRepository = {
  async insert(db: Queryable, row: Omit<ConnectorAccountRow, 'created_at' | 'deleted_at'>): Promise<ConnectorAccountRow> {
    const r = await db.query<ConnectorAccountRow>(
      `INSERT INTO connector_accounts (id, short_id, merchant_id, test_mode, connector, name, status, is_default,
         settings, credentials_sealed, webhook_secret_sealed)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *`,
      [row.id, row.short_id, row.merchant_id, row.test_mode, row.connector, row.name, row.status, row.is_default,
        JSON.stringify(row.settings), row.credentials_sealed, row.webhook_secret_sealed],
    );
    return r.rows[0];
  },

  /** Either id form; scoped to merchant and mode. */
  async find(db: Queryable, merchantId: string, testMode: boolean, idOrShortId: string, lock = false): Promise<ConnectorAccountRow | undefined> {
    const col = idColumn(idOrShortId);
    if (!col) return undefined;
    const r = await db.query<ConnectorAccountRow>(
      `SELECT * FROM connector_accounts WHERE ${col} = $1 AND merchant_id = $2 AND test_mode = $3${lock ? ' FOR UPDATE' : ''}`,
      [idOrShortId, merchantId, testMode],
    );
    return r.rows[0];
  },

  /** Unscoped lookup by UUID (inbound webhooks name the account in their path). */
  async findById(db: Queryable, id: string): Promise<ConnectorAccountRow | undefined> {
    if (!UUID_RE.test(id)) return undefined;
    return (await db.query<ConnectorAccountRow>('SELECT * FROM connector_accounts WHERE id = $1', [id])).rows[0];
  },

  async findDefault(db: Queryable, merchantId: string, testMode: boolean): Promise<ConnectorAccountRow | undefined> {
    const r = await db.query<ConnectorAccountRow>(
      `SELECT * FROM connector_accounts WHERE merchant_id = $1 AND test_mode = $2 AND is_default AND status = 'active'`,
      [merchantId, testMode],
    );
    return r.rows[0];
  },

  async countActive(db: Queryable, merchantId: string, testMode: boolean): Promise<number> {
    const r = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM connector_accounts WHERE merchant_id = $1 AND test_mode = $2 AND status = 'active'`,
      [merchantId, testMode],
    );
    return r.rows[0].n;
  },

  async hasDefault(db: Queryable, merchantId: string, testMode: boolean): Promise<boolean> {
    return (await this.findDefault(db, merchantId, testMode)) !== undefined;
  },

  async clearDefault(db: Queryable, merchantId: string, testMode: boolean): Promise<void> {
    await db.query('UPDATE connector_accounts SET is_default = false WHERE merchant_id = $1 AND test_mode = $2 AND is_default', [merchantId, testMode]);
  },

  async setDefault(db: Queryable, id: string): Promise<ConnectorAccountRow> {
    return (await db.query<ConnectorAccountRow>('UPDATE connector_accounts SET is_default = true WHERE id = $1 RETURNING *', [id])).rows[0];
  },

  async softDelete(db: Queryable, id: string): Promise<ConnectorAccountRow> {
    const r = await db.query<ConnectorAccountRow>(
      `UPDATE connector_accounts SET status = 'inactive', is_default = false, deleted_at = COALESCE(deleted_at, now())
       WHERE id = $1 RETURNING *`,
      [id],
    );
    return r.rows[0];
  },

  /** What still needs the account's PSP: refunds waiting for an outcome, payments not captured yet. */
  async unfinishedWork(db: Queryable, id: string): Promise<{ pendingRefunds: number; uncapturedPayments: number }> {
    const r = await db.query<{ refunds: number; payments: number }>(
      `SELECT (SELECT count(*) FROM refunds WHERE connector_account_id = $1 AND status = 'pending')::int AS refunds,
              (SELECT count(*) FROM payments WHERE connector_account_id = $1 AND status IN ('processing', 'requires_capture'))::int AS payments`,
      [id],
    );
    return { pendingRefunds: r.rows[0].refunds, uncapturedPayments: r.rows[0].payments };
  },

  async hardDelete(db: Queryable, id: string): Promise<void> {
    await db.query('DELETE FROM connector_accounts WHERE id = $1', [id]);
  },

  async list(db: Queryable, merchantId: string, testMode: boolean, limit: number, after?: { createdAt: string; id: string }) {
    const params: unknown[] = [merchantId, testMode, limit + 1];
    let where = '';
    if (after) {
      params.push(after.createdAt, after.id);
      where = 'AND (created_at, id::text) < ($4::timestamptz, $5)';
    }
    const r = await db.query<ConnectorAccountRow>(
      `SELECT * FROM connector_accounts WHERE merchant_id = $1 AND test_mode = $2 ${where}
       ORDER BY created_at DESC, id::text DESC LIMIT $3`,
      params,
    );
    return r.rows;
  },
};
