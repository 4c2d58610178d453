/**
 * Capture corrections (docs/reconciliation.md, "Capture corrections"): the gateway's captured
 * amount follows what the PSP captured, also after the gateway booked another amount (a PSP that
 * captured less, Adyen's CAPTURE_FAILED), and a payment whose capture failed can be captured again.
 *
 * - `capture_adjustment`: a ledger transaction that moves a payment's booked capture to the PSP's
 *   amount (down: debit the merchant balance, credit the clearing account; up: the reverse).
 * - `payment_transaction_id`: the payment transaction (a `capture` row of `payment_transactions`)
 *   a capture or capture adjustment books. One booking of each type per payment transaction: a
 *   capture is booked once, and a capture superseded by a correction is adjusted once, however
 *   often the correction runs.
 * - The old rule "one capture booking per payment" holds on for the bookings that name no payment
 *   transaction (written before this migration, or by a process of the previous release), so a
 *   payment captured again after a failed capture takes a second, tracked, capture booking.
 *
 * Expand only: the type check widens, a nullable column without a default (no rewrite), two
 * indexes; the replaced index goes last, once the one that takes over its rule exists.
 */
export const sql = /* sql */ `
ALTER TABLE ledger_transactions DROP CONSTRAINT IF EXISTS ledger_transactions_type_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_type_check
  CHECK (type IN ('capture', 'refund', 'refund_reversal', 'capture_adjustment'));
ALTER TABLE ledger_transactions ADD COLUMN IF NOT EXISTS payment_transaction_id text;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_one_booking_per_payment_transaction
  ON ledger_transactions (merchant_id, payment_transaction_id, type) WHERE payment_transaction_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_one_untracked_capture
  ON ledger_transactions (merchant_id, payment_id) WHERE type = 'capture' AND payment_transaction_id IS NULL;
DROP INDEX IF EXISTS ledger_one_capture;
`;
