/**
 * The fingerprint of the key that seals this database's secrets (connector credentials, webhook
 * secrets, stored responses that show a secret): HMAC-SHA256 of a constant under the key, never
 * the key. One row. A process whose key does not match refuses to start (src/modules/encryption).
 */
export const sql = /* sql */ `
CREATE TABLE IF NOT EXISTS encryption_key_fingerprint (
  singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  fingerprint text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
`;
