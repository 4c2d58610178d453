/**
 * A webhook endpoint's dialect: `settle` (the native events) or the name of a compatibility
 * surface whose own event names and shapes the endpoint receives (docs/compat.md). Existing
 * endpoints keep the native events. Safe to run again over a schema that has it.
 */
export const sql = /* sql */ `
ALTER TABLE webhook_endpoints ADD COLUMN IF NOT EXISTS dialect text NOT NULL DEFAULT 'settle'
  CHECK (dialect IN ('settle', 'elasticpay'));
`;
