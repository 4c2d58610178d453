/**
 * Outbound webhook hardening (docs/webhooks.md):
 * - every delivery attempt records the category of its outcome (`timeout`, `connection_refused`,
 *   `connection_failed`, `dns`, `tls`, `http_status`, `blocked_address`); attempts made before
 *   this migration have none;
 * - the per-merchant concurrency cap counts the deliveries being sent (leased) at claim time, and
 *   the claim picks each endpoint's oldest due deliveries: both by index.
 * Only adds; safe to run again over a schema that has it.
 */
export const sql = /* sql */ `
ALTER TABLE webhook_attempts ADD COLUMN IF NOT EXISTS category text;

CREATE INDEX IF NOT EXISTS webhook_deliveries_leased ON webhook_deliveries (locked_until)
  WHERE status = 'pending' AND locked_until IS NOT NULL;

CREATE INDEX IF NOT EXISTS webhook_deliveries_endpoint_due ON webhook_deliveries (endpoint_id, next_attempt_at)
  WHERE status = 'pending';
`;
