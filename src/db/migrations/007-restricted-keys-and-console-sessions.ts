/**
 * Restricted keys and console sessions.
 *
 * `api_keys.permissions` NULL is a secret key (every merchant route); a restricted key (rk_…)
 * lists the permissions it was granted. Console sessions are stored by the SHA-256 of their
 * cookie token; they remember which key signed in (`key_prefix`) so that revoking that key ends
 * them, never the key itself. Written to be safe to run again over a schema that has it.
 */
export const sql = /* sql */ `
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS name text;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS permissions text[];

CREATE TABLE IF NOT EXISTS console_sessions (
  token_hash   bytea PRIMARY KEY,
  admin        boolean NOT NULL,
  merchant_id  text REFERENCES merchants(id),
  test_mode    boolean NOT NULL,
  key_prefix   text REFERENCES api_keys(prefix),
  created_at   timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
  expires_at   timestamptz NOT NULL,
  ended_at     timestamptz,
  CHECK (admin = (merchant_id IS NULL)),
  CHECK (admin = (key_prefix IS NULL))
);
CREATE INDEX IF NOT EXISTS console_sessions_expires ON console_sessions (expires_at);
`;
