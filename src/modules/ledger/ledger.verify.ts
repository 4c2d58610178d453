import type { Queryable } from '../../db/db.js';
import { MERCHANT_BALANCE } from './ledger.repository.js';

export interface Violation {
  check: string;
  detail: string;
}

/**
 * Every invariant of the ledger and of the money fields it backs. Returns the violations found
 * (empty = healthy). `settle ledger verify` prints them and exits non-zero on any.
 */
export async function verifyLedger(db: Queryable): Promise<{ checked: Record<string, number>; violations: Violation[] }> {
  const violations: Violation[] = [];
  const add = (check: string, rows: Record<string, unknown>[]) => {
    for (const row of rows.slice(0, 50)) violations.push({ check, detail: JSON.stringify(row) });
    if (rows.length > 50) violations.push({ check, detail: `… and ${rows.length - 50} more` });
  };

  add('transaction_balanced', (await db.query(
    `SELECT t.id, e.currency,
            COALESCE(sum(e.amount) FILTER (WHERE e.direction = 'debit'), 0) AS debits,
            COALESCE(sum(e.amount) FILTER (WHERE e.direction = 'credit'), 0) AS credits,
            count(e.id) AS entries
     FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id
     GROUP BY t.id, e.currency
     HAVING count(e.id) < 2
        OR COALESCE(sum(e.amount) FILTER (WHERE e.direction = 'debit'), 0)
           <> COALESCE(sum(e.amount) FILTER (WHERE e.direction = 'credit'), 0)
        OR e.currency IS NULL`)).rows);

  add('entry_currency_matches_transaction', (await db.query(
    `SELECT e.id, e.currency, t.currency AS transaction_currency FROM ledger_entries e
     JOIN ledger_transactions t ON t.id = e.transaction_id WHERE e.currency <> t.currency`)).rows);

  add('refund_bookings_sum_to_amount_refunded', (await db.query(
    `SELECT p.id, p.amount_refunded, COALESCE(b.booked, 0) AS booked FROM payments p
     LEFT JOIN (SELECT t.payment_id,
                       sum(CASE WHEN t.type = 'refund' THEN e.amount ELSE -e.amount END) AS booked
                FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id AND e.direction = 'debit'
                WHERE t.type IN ('refund', 'refund_reversal') GROUP BY t.payment_id) b ON b.payment_id = p.id
     WHERE p.amount_refunded <> COALESCE(b.booked, 0)`)).rows);

  // captures credit the merchant balance; a capture adjustment credits it (up) or debits it (down)
  add('capture_booking_matches_amount_captured', (await db.query(
    `SELECT p.id, p.amount_captured, COALESCE(b.booked, 0) AS booked FROM payments p
     LEFT JOIN (SELECT t.payment_id, sum(CASE WHEN e.direction = 'credit' THEN e.amount ELSE -e.amount END) AS booked
                FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id AND e.account = $1
                WHERE t.type IN ('capture', 'capture_adjustment') GROUP BY t.payment_id) b ON b.payment_id = p.id
     WHERE p.amount_captured <> COALESCE(b.booked, 0)`, [MERCHANT_BALANCE])).rows);

  // a correction fails the capture it supersedes and records the PSP's amount as a capture
  add('capture_transactions_sum_to_amount_captured', (await db.query(
    `SELECT p.id, p.amount_captured, COALESCE(c.captured, 0) AS captured FROM payments p
     LEFT JOIN (SELECT payment_id, sum(amount) AS captured FROM payment_transactions
                WHERE type = 'capture' AND status = 'succeeded' GROUP BY payment_id) c ON c.payment_id = p.id
     WHERE p.amount_captured <> COALESCE(c.captured, 0)`)).rows);

  add('refunds_within_captured', (await db.query(
    `SELECT id, amount_captured, amount_refunded, amount_refund_pending FROM payments
     WHERE amount_refunded + amount_refund_pending > amount_captured`)).rows);

  add('payment_amounts_match_refunds', (await db.query(
    `SELECT p.id, p.amount_refunded, p.amount_refund_pending, COALESCE(r.succeeded, 0) AS succeeded, COALESCE(r.pending, 0) AS pending
     FROM payments p LEFT JOIN (
       SELECT payment_id, sum(amount) FILTER (WHERE status = 'succeeded') AS succeeded,
              sum(amount) FILTER (WHERE status = 'pending') AS pending
       FROM refunds GROUP BY payment_id) r ON r.payment_id = p.id
     WHERE p.amount_refunded <> COALESCE(r.succeeded, 0) OR p.amount_refund_pending <> COALESCE(r.pending, 0)`)).rows);

  add('one_booking_per_succeeded_refund', (await db.query(
    `SELECT r.id, r.status,
            count(t.id) FILTER (WHERE t.type = 'refund') AS bookings,
            count(t.id) FILTER (WHERE t.type = 'refund_reversal') AS reversals
     FROM refunds r LEFT JOIN ledger_transactions t ON t.refund_id = r.id
     GROUP BY r.id, r.status
     HAVING (r.status = 'succeeded' AND (count(t.id) FILTER (WHERE t.type = 'refund') <> 1
                                         OR count(t.id) FILTER (WHERE t.type = 'refund_reversal') <> 0))
         OR (r.status = 'pending' AND count(t.id) <> 0)
         OR (r.status = 'failed' AND count(t.id) FILTER (WHERE t.type = 'refund')
                                  <> count(t.id) FILTER (WHERE t.type = 'refund_reversal'))`)).rows);

  add('refunded_status_consistent', (await db.query(
    `SELECT id, status, amount_captured, amount_refunded FROM payments
     WHERE (status = 'refunded' AND amount_refunded <> amount_captured)
        OR (status = 'partially_refunded' AND (amount_refunded = 0 OR amount_refunded >= amount_captured))
        OR (status = 'succeeded' AND amount_refunded <> 0)`)).rows);

  add('ledger_is_append_only', (await db.query(
    `SELECT required.name FROM (VALUES ('ledger_entries_append_only'), ('ledger_transactions_append_only')) AS required(name)
     WHERE NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = required.name AND NOT tgisinternal)`)).rows);

  const counts = (await db.query<{ transactions: number; entries: number; payments: number; refunds: number }>(
    `SELECT (SELECT count(*) FROM ledger_transactions)::int AS transactions,
            (SELECT count(*) FROM ledger_entries)::int AS entries,
            (SELECT count(*) FROM payments)::int AS payments,
            (SELECT count(*) FROM refunds)::int AS refunds`)).rows[0];
  return { checked: counts, violations };
}
