import type { Queryable } from '../../db/db.js';
import type { PaymentRow } from '../payments/payments.repository.js';
import type { RefundRow } from '../refunds/refunds.repository.js';

export type DifferenceStatus = 'open' | 'fixed' | 'resolved';

export interface DifferenceRow {
  id: string;
  merchant_id: string;
  test_mode: boolean;
  payment_id: string;
  connector_account_id: string;
  kind: string;
  refund_id: string | null;
  connector_ref: string | null;
  gateway_value: unknown;
  psp_value: unknown;
  message: string;
  status: DifferenceStatus;
  detected_at: Date;
  resolved_at: Date | null;
  /** For keyset pagination (the list's order). */
  created_at: Date;
}

export type NewDifference = Omit<DifferenceRow, 'detected_at' | 'resolved_at' | 'created_at'>;

export interface PaymentLedger {
  captured: number;
  /** Refund bookings minus reversals. */
  refunded: number;
}

const SELECT = `SELECT *, detected_at AS created_at FROM reconciliation_differences`;

export const reconciliationRepository = {
  /** Payments whose gateway record changed since `since`, and those holding pending refunds or
   *  a capture failure the gateway could not undo yet whenever they changed (unfinished work,
   *  checked on every run), by id after `afterId`. */
  async paymentsWithActivity(db: Queryable, since: Date, afterId: string, limit: number): Promise<PaymentRow[]> {
    const r = await db.query<PaymentRow>(
      `SELECT * FROM payments p WHERE (p.updated_at >= $1 OR p.amount_refund_pending > 0
           OR EXISTS (SELECT 1 FROM reconciliation_differences d WHERE d.merchant_id = p.merchant_id AND d.payment_id = p.id
                        AND d.kind = 'capture_failed' AND d.status = 'open'))
         AND p.id > $2
         AND p.connector_ref IS NOT NULL AND p.status <> 'processing'
       ORDER BY p.id LIMIT $3`,
      [since, afterId, limit],
    );
    return r.rows;
  },

  /** First statement of a transaction whose reads must all see one snapshot. */
  async readInOneSnapshot(tx: Queryable): Promise<void> {
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
  },

  async refundsOf(db: Queryable, paymentId: string): Promise<RefundRow[]> {
    const r = await db.query<RefundRow>('SELECT * FROM refunds WHERE payment_id = $1 ORDER BY created_at, id', [paymentId]);
    return r.rows;
  },

  async ledgerOf(db: Queryable, paymentId: string): Promise<PaymentLedger> {
    // every ledger transaction has one credit entry of its amount; a capture adjustment down
    // credits the clearing account instead of the merchant balance
    const r = await db.query<{ captured: string; refunded: string }>(
      `SELECT (coalesce(sum(e.amount) FILTER (WHERE t.type = 'capture' OR (t.type = 'capture_adjustment' AND e.account = 'merchant_balance')), 0)
               - coalesce(sum(e.amount) FILTER (WHERE t.type = 'capture_adjustment' AND e.account <> 'merchant_balance'), 0))::bigint AS captured,
              (coalesce(sum(e.amount) FILTER (WHERE t.type = 'refund'), 0)
               - coalesce(sum(e.amount) FILTER (WHERE t.type = 'refund_reversal'), 0))::bigint AS refunded
       FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id AND e.direction = 'credit'
       WHERE t.payment_id = $1`,
      [paymentId],
    );
    return { captured: Number(r.rows[0].captured), refunded: Number(r.rows[0].refunded) };
  },

  /** A payment's open `capture_failed` differences: capture failures the PSP reported that the
   *  gateway could not undo yet. */
  async openReportedCaptureFailures(db: Queryable, merchantId: string, paymentId: string): Promise<DifferenceRow[]> {
    const r = await db.query<DifferenceRow>(
      `${SELECT} WHERE merchant_id = $1 AND payment_id = $2 AND kind = 'capture_failed' AND status = 'open' ORDER BY detected_at, id`,
      [merchantId, paymentId],
    );
    return r.rows;
  },

  /** Stores an open difference unless the same one is already open; returns it when new. */
  async insertOpen(db: Queryable, d: NewDifference): Promise<DifferenceRow | undefined> {
    const r = await db.query<DifferenceRow>(
      `INSERT INTO reconciliation_differences (id, merchant_id, test_mode, payment_id, connector_account_id, kind, refund_id,
         connector_ref, gateway_value, psp_value, message, status, resolved_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, CASE WHEN $12 = 'open' THEN NULL ELSE now() END)
       ON CONFLICT (payment_id, kind, (coalesce(connector_ref, ''))) WHERE status = 'open' DO NOTHING
       RETURNING *, detected_at AS created_at`,
      [d.id, d.merchant_id, d.test_mode, d.payment_id, d.connector_account_id, d.kind, d.refund_id, d.connector_ref,
        JSON.stringify(d.gateway_value), JSON.stringify(d.psp_value), d.message, d.status],
    );
    return r.rows[0];
  },

  /** Marks `fixed` the open difference a fix just resolved; returns it, or undefined when none was open. */
  async markFixed(db: Queryable, paymentId: string, kind: string, connectorRef: string | null): Promise<DifferenceRow | undefined> {
    const r = await db.query<DifferenceRow>(
      `UPDATE reconciliation_differences SET status = 'fixed', resolved_at = now()
       WHERE payment_id = $1 AND kind = $2 AND coalesce(connector_ref, '') = coalesce($3, '') AND status = 'open'
       RETURNING *, detected_at AS created_at`,
      [paymentId, kind, connectorRef],
    );
    return r.rows[0];
  },

  /** Open differences of a payment that a run no longer finds become `resolved`. */
  async resolveOthers(db: Queryable, paymentId: string, stillOpen: { kind: string; connector_ref: string | null }[]): Promise<void> {
    await db.query(
      `UPDATE reconciliation_differences SET status = 'resolved', resolved_at = now()
       WHERE payment_id = $1 AND status = 'open'
         AND (kind || ':' || coalesce(connector_ref, '')) <> ALL ($2::text[])`,
      [paymentId, stillOpen.map((d) => `${d.kind}:${d.connector_ref ?? ''}`)],
    );
  },

  async list(db: Queryable, limit: number,
    f: { merchantId?: string; testMode?: boolean; status?: string; paymentId?: string; after?: { createdAt: string; id: string } }): Promise<DifferenceRow[]> {
    const params: unknown[] = [limit + 1];
    const where: string[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (f.merchantId !== undefined) add('merchant_id = ?', f.merchantId);
    if (f.testMode !== undefined) add('test_mode = ?', f.testMode);
    if (f.status !== undefined) add('status = ?', f.status);
    if (f.paymentId !== undefined) add('payment_id = ?', f.paymentId);
    if (f.after) {
      params.push(f.after.createdAt, f.after.id);
      where.push(`(detected_at, id) < ($${params.length - 1}::timestamptz, $${params.length})`);
    }
    const r = await db.query<DifferenceRow>(
      `${SELECT} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY detected_at DESC, id DESC LIMIT $1`,
      params,
    );
    return r.rows;
  },

  async countOpen(db: Queryable): Promise<number> {
    const r = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM reconciliation_differences WHERE status = 'open'`);
    return r.rows[0].n;
  },

  /**
   * Claims the background run for `leaseMs` when no process holds it and the last one started at
   * least `everyMs` ago (so N processes run it once per interval between them), returning the
   * previous start (null on the first). Undefined when it is not this process's turn.
   */
  async claimRun(db: Queryable, everyMs: number, leaseMs: number): Promise<{ previousStart: Date | null; start: Date } | undefined> {
    const r = await db.query<{ previous: Date | null; start: Date }>(
      `UPDATE reconciliation_runs x SET lease_until = now() + ($2::int * interval '1 millisecond'), last_started_at = now()
       FROM (SELECT last_started_at AS previous FROM reconciliation_runs WHERE id = 'background' FOR UPDATE) old
       WHERE x.id = 'background' AND x.lease_until < now()
         AND (old.previous IS NULL OR old.previous <= now() - ($1::int * interval '1 millisecond'))
       RETURNING old.previous, now() AS start`,
      [everyMs, leaseMs],
    );
    return r.rows[0] ? { previousStart: r.rows[0].previous, start: r.rows[0].start } : undefined;
  },

  async releaseRun(db: Queryable): Promise<void> {
    await db.query(`UPDATE reconciliation_runs SET lease_until = '-infinity' WHERE id = 'background'`);
  },
};
