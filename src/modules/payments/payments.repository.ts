import type { Queryable } from '../../db/db.js';
import { newId } from '../../lib/ids.js';

export interface StoredLineItem {
  id: string;
  name: string;
  quantity: number;
  unit_amount: number;
  amount: number;
  /** refunded by succeeded refunds plus held by pending ones */
  quantity_refunded: number;
}

export type PaymentStatus =
  | 'processing'
  | 'requires_capture'
  | 'succeeded'
  | 'canceled'
  | 'failed'
  | 'partially_refunded'
  | 'refunded';

export interface PaymentRow {
  id: string;
  merchant_id: string;
  test_mode: boolean;
  amount: number;
  currency: string;
  status: PaymentStatus;
  capture_method: 'automatic' | 'manual';
  amount_capturable: number;
  amount_captured: number;
  amount_refunded: number;
  amount_refund_pending: number;
  connector: string;
  connector_account_id: string;
  connector_account_short_id: string;
  connector_ref: string | null;
  payment_method: string;
  order_id: string | null;
  customer_id: string | null;
  description: string | null;
  metadata: Record<string, string>;
  line_items: StoredLineItem[];
  failure_code: string | null;
  failure_message: string | null;
  idempotency_key: string | null;
  created_at: Date;
  updated_at: Date;
}

export interface TransactionView {
  id: string;
  type: 'authorization' | 'capture' | 'void' | 'refund';
  amount: number;
  status: string;
  connector_ref: string | null;
  refund_id?: string;
  created_at: Date;
  payment_id: string;
}

export interface CaptureTransaction {
  id: string;
  amount: number;
  status: 'succeeded' | 'failed' | 'pending';
  /** The capture's own reference at the PSP where it has one (Adyen), else the payment's. */
  connector_ref: string | null;
}

export type NewPayment = Pick<PaymentRow,
  'id' | 'merchant_id' | 'test_mode' | 'amount' | 'currency' | 'capture_method' | 'connector' | 'connector_account_id'
  | 'connector_account_short_id' | 'payment_method' | 'order_id' | 'customer_id' | 'description' | 'metadata'
  | 'line_items' | 'idempotency_key'>;

/** Every column of `payments`, in table order (combined statements select them under a prefix). */
export const PAYMENT_COLUMNS = [
  'id', 'merchant_id', 'test_mode', 'amount', 'currency', 'status', 'capture_method', 'amount_capturable',
  'amount_captured', 'amount_refunded', 'amount_refund_pending', 'connector', 'connector_account_id',
  'connector_account_short_id', 'connector_ref', 'payment_method', 'order_id', 'customer_id', 'description',
  'metadata', 'line_items', 'failure_code', 'failure_message', 'idempotency_key', 'created_at', 'updated_at',
] as const satisfies readonly (keyof PaymentRow)[];

/**
 * The write-back of a payment's mutable columns (the caller holds the row lock), with its ten
 * parameters from `$first` (see `paymentUpdateParams`). A payment that leaves `processing` leaves
 * the `payments_processing` index (migration 012); one that was not in it stays out, so the
 * update of a refund changes no indexed column and stays heap-only (HOT).
 */
export function paymentUpdateSql(first: number, gate?: string): string {
  const $ = (i: number) => `$${first + i}`;
  return `UPDATE payments SET status = ${$(1)}, amount_capturable = ${$(2)}, amount_captured = ${$(3)}, amount_refunded = ${$(4)},
         amount_refund_pending = ${$(5)}, connector_ref = ${$(6)}, line_items = ${$(7)}, failure_code = ${$(8)}, failure_message = ${$(9)},
         processing_since = CASE WHEN ${$(1)} = 'processing' THEN payments.processing_since END,
         updated_at = now()${gate ? `
       FROM ${gate}` : ''}
       WHERE id = ${$(0)}`;
}

export function paymentUpdateParams(p: PaymentRow): unknown[] {
  return [p.id, p.status, p.amount_capturable, p.amount_captured, p.amount_refunded, p.amount_refund_pending,
    p.connector_ref, JSON.stringify(p.line_items), p.failure_code, p.failure_message];
}

const UPDATE_SQL = `${paymentUpdateSql(1)} RETURNING *`;

export interface PaymentFilter {
  status?: string;
  orderId?: string;
  customerId?: string;
  currency?: string;
  createdGte?: string;
  createdLte?: string;
  amountGte?: number;
  amountLte?: number;
  after?: { createdAt: string; id: string };
}

export const paymentsRepository = {
  /**
   * Inserts the payment if its connector account is still there and active, reading it FOR KEY
   * SHARE: a concurrent hard delete of the account (FOR UPDATE, then a count of its uncaptured
   * payments) either waits and sees this payment, or commits first and nothing is inserted
   * (undefined). An uncaptured payment can never be left on a deleted account.
   */
  async insert(db: Queryable, p: NewPayment): Promise<PaymentRow | undefined> {
    const r = await db.query<PaymentRow>(
      `WITH account AS (SELECT id FROM connector_accounts WHERE id = $8 AND merchant_id = $2 AND status = 'active' FOR KEY SHARE)
       INSERT INTO payments (id, merchant_id, test_mode, amount, currency, status, capture_method, connector,
         connector_account_id, connector_account_short_id, payment_method, order_id, customer_id, description,
         metadata, line_items, idempotency_key)
       SELECT $1, $2, $3, $4, $5, 'processing', $6, $7, account.id, $9, $10, $11, $12, $13, $14, $15, $16 FROM account
       RETURNING *`,
      [p.id, p.merchant_id, p.test_mode, p.amount, p.currency, p.capture_method, p.connector, p.connector_account_id,
        p.connector_account_short_id, p.payment_method, p.order_id, p.customer_id, p.description,
        JSON.stringify(p.metadata), JSON.stringify(p.line_items), p.idempotency_key],
    );
    return r.rows[0];
  },

  async find(db: Queryable, merchantId: string, testMode: boolean, id: string, lock = false): Promise<PaymentRow | undefined> {
    const r = await db.query<PaymentRow>(
      `SELECT * FROM payments WHERE id = $1 AND merchant_id = $2 AND test_mode = $3${lock ? ' FOR UPDATE' : ''}`,
      [id, merchantId, testMode],
    );
    return r.rows[0];
  },

  async findById(db: Queryable, id: string, lock = false): Promise<PaymentRow | undefined> {
    return (await db.query<PaymentRow>(`SELECT * FROM payments WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id])).rows[0];
  },

  async findByIdempotencyKey(db: Queryable, merchantId: string, testMode: boolean, key: string): Promise<PaymentRow | undefined> {
    const r = await db.query<PaymentRow>(
      'SELECT * FROM payments WHERE merchant_id = $1 AND test_mode = $2 AND idempotency_key = $3',
      [merchantId, testMode, key],
    );
    return r.rows[0];
  },

  async findByConnectorRef(db: Queryable, connectorAccountId: string, connectorRef: string, lock = false): Promise<PaymentRow | undefined> {
    const r = await db.query<PaymentRow>(
      `SELECT * FROM payments WHERE connector_account_id = $1 AND connector_ref = $2${lock ? ' FOR UPDATE' : ''}`,
      [connectorAccountId, connectorRef],
    );
    return r.rows[0];
  },

  /** Writes the mutable columns back (the caller holds the row lock). */
  async update(db: Queryable, p: PaymentRow): Promise<PaymentRow> {
    const r = await db.query<PaymentRow>(UPDATE_SQL, paymentUpdateParams(p));
    return r.rows[0];
  },

  /** Returns the new transaction's id. */
  async insertTransaction(db: Queryable, paymentId: string, type: 'authorization' | 'capture' | 'void', amount: number,
    status: 'succeeded' | 'failed', connectorRef: string | null): Promise<string> {
    const id = newId('txn');
    await db.query(
      'INSERT INTO payment_transactions (id, payment_id, type, amount, status, connector_ref) VALUES ($1, $2, $3, $4, $5, $6)',
      [id, paymentId, type, amount, status, connectorRef],
    );
    return id;
  },

  /** A payment's capture transactions, oldest first. */
  async captureTransactions(db: Queryable, paymentId: string): Promise<CaptureTransaction[]> {
    const r = await db.query<CaptureTransaction>(
      `SELECT id, amount, status, connector_ref FROM payment_transactions WHERE payment_id = $1 AND type = 'capture'
       ORDER BY created_at, id`,
      [paymentId],
    );
    return r.rows.map((t) => ({ ...t, amount: Number(t.amount) }));
  },

  /** What the PSP authorized for a payment (its succeeded authorization); undefined when none. */
  async authorizedAmount(db: Queryable, paymentId: string): Promise<number | undefined> {
    const r = await db.query<{ amount: string }>(
      `SELECT amount FROM payment_transactions WHERE payment_id = $1 AND type = 'authorization' AND status = 'succeeded'
       ORDER BY created_at DESC, id DESC LIMIT 1`,
      [paymentId],
    );
    return r.rows[0] ? Number(r.rows[0].amount) : undefined;
  },

  /** A capture that did not happen as booked becomes failed, with the PSP's reference for it. */
  async failCaptureTransaction(db: Queryable, id: string, connectorRef: string | null): Promise<void> {
    await db.query(`UPDATE payment_transactions SET status = 'failed', connector_ref = $2 WHERE id = $1 AND type = 'capture'`, [id, connectorRef]);
  },

  /**
   * Transactions of the given payments, refunds included, oldest first. With `latest`, only the
   * most recent N per payment (events carry a bounded list, so their size does not grow with the
   * number of refunds).
   */
  async transactions(db: Queryable, paymentIds: string[], latest?: number): Promise<TransactionView[]> {
    if (paymentIds.length === 0) return [];
    if (latest && paymentIds.length === 1) {
      // One payment (an event's snapshot): each side reads only its newest N rows from its index,
      // so the cost does not grow with the payment's number of refunds either. The refunds side
      // is ordered exactly as its index (payment_id, created_at DESC, id DESC): ordered by txn_id,
      // a generic plan read and sorted every refund of the payment. A refund's id and txn_id are
      // made together, so both orders pick the same newest refunds.
      const r = await db.query<TransactionView>(
        `SELECT * FROM (
           (SELECT id, payment_id, type, amount, status, connector_ref, NULL::text AS refund_id, created_at
            FROM payment_transactions WHERE payment_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)
           UNION ALL
           (SELECT txn_id, payment_id, 'refund', amount, status, connector_ref, id, created_at
            FROM refunds WHERE payment_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)
           ORDER BY created_at DESC, id DESC LIMIT $2
         ) x ORDER BY created_at, id`,
        [paymentIds[0], Math.floor(latest)],
      );
      return r.rows;
    }
    const cap = latest ? `WHERE rn <= ${Math.floor(latest)}` : '';
    const r = await db.query<TransactionView>(
      `SELECT id, payment_id, type, amount, status, connector_ref, refund_id, created_at FROM (
         SELECT *, row_number() OVER (PARTITION BY payment_id ORDER BY created_at DESC, id DESC) AS rn FROM (
           SELECT id, payment_id, type, amount, status, connector_ref, NULL::text AS refund_id, created_at
           FROM payment_transactions WHERE payment_id = ANY ($1::text[])
           UNION ALL
           SELECT txn_id, payment_id, 'refund', amount, status, connector_ref, id, created_at
           FROM refunds WHERE payment_id = ANY ($1::text[])
         ) u
       ) x ${cap}
       ORDER BY created_at, id`,
      [paymentIds],
    );
    return r.rows;
  },

  async list(db: Queryable, merchantId: string, testMode: boolean, limit: number, f: PaymentFilter): Promise<PaymentRow[]> {
    const params: unknown[] = [merchantId, testMode, limit + 1];
    const where: string[] = [];
    const add = (sql: string, ...values: unknown[]) => {
      for (const v of values) params.push(v);
      where.push(sql);
    };
    if (f.status) add(`status = $${params.length + 1}`, f.status);
    if (f.orderId) add(`order_id = $${params.length + 1}`, f.orderId);
    if (f.customerId) add(`customer_id = $${params.length + 1}`, f.customerId);
    if (f.currency) add(`currency = $${params.length + 1}`, f.currency);
    if (f.createdGte) add(`created_at >= $${params.length + 1}::timestamptz`, f.createdGte);
    if (f.createdLte) add(`created_at <= $${params.length + 1}::timestamptz`, f.createdLte);
    if (f.amountGte !== undefined) add(`amount >= $${params.length + 1}`, f.amountGte);
    if (f.amountLte !== undefined) add(`amount <= $${params.length + 1}`, f.amountLte);
    if (f.after) add(`(created_at, id) < ($${params.length + 1}::timestamptz, $${params.length + 2})`, f.after.createdAt, f.after.id);
    const r = await db.query<PaymentRow>(
      `SELECT * FROM payments WHERE merchant_id = $1 AND test_mode = $2 ${where.map((w) => `AND ${w}`).join(' ')}
       ORDER BY created_at DESC, id DESC LIMIT $3`,
      params,
    );
    return r.rows;
  },

  /**
   * Payments left in `processing` by a crash or an unknown PSP outcome, for recovery: read through
   * the `payments_processing` index (migration 012), never by a scan of every payment.
   */
  async staleProcessing(db: Queryable, olderThanMs: number, limit: number): Promise<PaymentRow[]> {
    const r = await db.query<PaymentRow>(
      `SELECT * FROM payments
        WHERE processing_since IS NOT NULL AND status = 'processing' AND updated_at < now() - ($1::int * interval '1 millisecond')
        ORDER BY updated_at LIMIT $2`,
      [olderThanMs, limit],
    );
    return r.rows;
  },

  /**
   * Clears `processing_since` of payments no longer processing: those a process of the previous
   * release moved on without clearing it. Skips locked rows (a refund may hold one) rather than wait.
   */
  async clearFinishedProcessing(db: Queryable, limit: number): Promise<number> {
    const r = await db.query(
      `UPDATE payments SET processing_since = NULL
        WHERE id IN (SELECT id FROM payments WHERE processing_since IS NOT NULL AND status <> 'processing'
                      LIMIT $1 FOR UPDATE SKIP LOCKED)`,
      [limit],
    );
    return r.rowCount ?? 0;
  },
};
