/**
 * The payments still in `processing`, found without reading the table. The payment-recovery pass
 * (every 10 s in every worker process) looked for them with a scan of every payment: on a table
 * of 100,000 payments a parallel scan of 150–250 ms on both cores, every 10 s, and the refunds
 * answered meanwhile waited for it; the scan grows with the table.
 *
 * - `processing_since`: when the payment started processing. Its default gives it to every new
 *   payment (payments are created in `processing`, also by a process of the previous release);
 *   the payment write-back clears it when the status leaves `processing`.
 * - `payments_processing`: a partial index of the payments that have it, a handful at any time.
 * - Why not an index on `status` or `updated_at`: a refund changes both on its payment, and a
 *   change to an indexed column (or to one an index's predicate reads) costs the update its
 *   heap-only (HOT) path, so every refund would write a new entry in every index of `payments`.
 *   A refund never changes `processing_since` (NULL stays NULL), so its payment updates stay HOT.
 *
 * Expand only: the column is added without a default first (no table rewrite), then given its
 * default for new rows; the payments already processing take their `updated_at`. A process of the
 * previous release does not clear the column when a payment leaves `processing`; the recovery
 * pass clears such leftovers. The backfill and the index each read the table once, in the
 * migration's transaction: writes to payments wait for them (on a large table, run
 * `settle migrate` ahead of the deploy at a quiet hour; docs/operations.md, "Upgrading").
 */
export const sql = /* sql */ `
ALTER TABLE payments ADD COLUMN IF NOT EXISTS processing_since timestamptz;
ALTER TABLE payments ALTER COLUMN processing_since SET DEFAULT date_trunc('milliseconds', now());
UPDATE payments SET processing_since = updated_at WHERE status = 'processing' AND processing_since IS NULL;
CREATE INDEX IF NOT EXISTS payments_processing ON payments (processing_since) WHERE processing_since IS NOT NULL;
`;
