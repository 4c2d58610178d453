import type { Queryable } from '../../db/db.js';
import { newId } from '../../lib/ids.js';

/** `capture_adjustment`: a payment's booked capture moved to what the PSP captured (a correction
 *  by reconciliation, or a capture the PSP reports failed); its direction says which way. */
export type LedgerTxnType = 'capture' | 'refund' | 'refund_reversal' | 'capture_adjustment';

export const MERCHANT_BALANCE = 'merchant_balance';
export const clearingAccount = (connectorAccountShortId: string) => `connector_clearing:${connectorAccountShortId}`;

export interface Booking {
  merchantId: string;
  testMode: boolean;
  type: LedgerTxnType;
  paymentId: string;
  refundId: string | null;
  currency: string;
  amount: number;
  debit: string;
  credit: string;
}

/** A capture or capture adjustment, naming the payment transaction it books: the database takes
 *  one booking of each type per payment transaction (migration 011). */
export interface PaymentTransactionBooking extends Booking {
  type: 'capture' | 'capture_adjustment';
  paymentTransactionId: string;
}

export interface LedgerTxnRow {
  id: string;
  type: LedgerTxnType;
  payment_id: string;
  refund_id: string | null;
  currency: string;
  created_at: Date;
  entries: { account: string; direction: 'debit' | 'credit'; amount: number; currency: string }[];
}

/**
 * A booking as CTEs for a larger statement: one ledger transaction and its two entries (one
 * debit, one credit of the same amount). Its ten parameters start at `$first` (see
 * `bookingParams`), eleven with `tracked` (the payment transaction booked, last). The unique
 * indexes allow one booking of each type per refund and per payment transaction (and one capture
 * per payment among bookings that name no payment transaction): a second attempt inserts nothing.
 */
export function bookingSql(first: number, tracked = false): string {
  const $ = (i: number) => `$${first + i}`;
  return `lt AS (
         INSERT INTO ledger_transactions (id, merchant_id, test_mode, type, payment_id, refund_id, currency${tracked ? ', payment_transaction_id' : ''})
         VALUES (${$(0)}, ${$(1)}, ${$(2)}, ${$(3)}, ${$(4)}, ${$(5)}, ${$(6)}${tracked ? `, ${$(10)}` : ''}) ON CONFLICT DO NOTHING RETURNING id),
       le AS (
         INSERT INTO ledger_entries (transaction_id, merchant_id, test_mode, account, direction, amount, currency)
         SELECT lt.id, ${$(1)}, ${$(2)}, e.account, e.direction, ${$(7)}, ${$(6)}
         FROM lt, (VALUES (${$(8)}::text, 'debit'), (${$(9)}::text, 'credit')) AS e(account, direction)
         RETURNING 1)`;
}

export function bookingParams(b: Booking): unknown[] {
  return [newId('txn'), b.merchantId, b.testMode, b.type, b.paymentId, b.refundId, b.currency, b.amount, b.debit, b.credit];
}

const BOOK_SQL = `WITH ${bookingSql(1)} SELECT count(*)::int AS entries FROM le`;
const BOOK_TRACKED_SQL = `WITH ${bookingSql(1, true)} SELECT count(*)::int AS entries FROM le`;

export const ledgerRepository = {
  /**
   * One balanced transaction in a single statement; false when the booking already existed
   * (see `bookingSql`).
   */
  async book(db: Queryable, b: Booking): Promise<boolean> {
    const r = await db.query<{ entries: number }>(BOOK_SQL, bookingParams(b));
    return r.rows[0].entries === 2;
  },

  /** A capture or capture adjustment of one payment transaction; false when it was already booked. */
  async bookPaymentTransaction(db: Queryable, b: PaymentTransactionBooking): Promise<boolean> {
    const r = await db.query<{ entries: number }>(BOOK_TRACKED_SQL, [...bookingParams(b), b.paymentTransactionId]);
    return r.rows[0].entries === 2;
  },

  async balances(db: Queryable, merchantId: string, testMode: boolean) {
    const r = await db.query<{ account: string; currency: string; debits: number; credits: number }>(
      `SELECT account, currency,
              COALESCE(sum(amount) FILTER (WHERE direction = 'debit'), 0)::bigint AS debits,
              COALESCE(sum(amount) FILTER (WHERE direction = 'credit'), 0)::bigint AS credits
       FROM ledger_entries WHERE merchant_id = $1 AND test_mode = $2
       GROUP BY account, currency ORDER BY account, currency`,
      [merchantId, testMode],
    );
    return r.rows;
  },

  async transactions(db: Queryable, merchantId: string, testMode: boolean, limit: number,
    filter: { paymentId?: string; after?: { createdAt: string; id: string } }): Promise<LedgerTxnRow[]> {
    const params: unknown[] = [merchantId, testMode, limit + 1];
    const where: string[] = [];
    if (filter.paymentId) {
      params.push(filter.paymentId);
      where.push(`t.payment_id = $${params.length}`);
    }
    if (filter.after) {
      params.push(filter.after.createdAt, filter.after.id);
      where.push(`(t.created_at, t.id) < ($${params.length - 1}::timestamptz, $${params.length})`);
    }
    const r = await db.query<LedgerTxnRow>(
      `SELECT t.id, t.type, t.payment_id, t.refund_id, t.currency, t.created_at,
              (SELECT json_agg(json_build_object('account', e.account, 'direction', e.direction,
                        'amount', e.amount, 'currency', e.currency) ORDER BY e.id)
               FROM ledger_entries e WHERE e.transaction_id = t.id) AS entries
       FROM ledger_transactions t
       WHERE t.merchant_id = $1 AND t.test_mode = $2 ${where.map((w) => `AND ${w}`).join(' ')}
       ORDER BY t.created_at DESC, t.id DESC LIMIT $3`,
      params,
    );
    return r.rows;
  },
};
