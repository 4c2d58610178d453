/**
 * Reconciliation: the differences found between the gateway and its PSPs, and the one row that
 * lets one process at a time run the background reconciliation and remember where it stopped.
 */
export const sql = /* sql */ `
CREATE TABLE reconciliation_differences (
  id                    text PRIMARY KEY,
  merchant_id           text NOT NULL,
  test_mode             boolean NOT NULL,
  payment_id            text NOT NULL,
  connector_account_id  text NOT NULL,
  kind                  text NOT NULL,
  refund_id             text,
  connector_ref         text,
  gateway_value         jsonb,
  psp_value             jsonb,
  message               text NOT NULL,
  status                text NOT NULL CHECK (status IN ('open', 'fixed', 'resolved')),
  detected_at           timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
  resolved_at           timestamptz
);
-- one open difference per payment, kind and PSP object: a difference seen by every run is stored once
CREATE UNIQUE INDEX reconciliation_differences_open ON reconciliation_differences (payment_id, kind, (coalesce(connector_ref, '')))
  WHERE status = 'open';
CREATE INDEX reconciliation_differences_list ON reconciliation_differences (merchant_id, test_mode, detected_at DESC, id DESC);
CREATE INDEX reconciliation_differences_admin ON reconciliation_differences (detected_at DESC, id DESC);

CREATE TABLE reconciliation_runs (
  id                text PRIMARY KEY,
  lease_until       timestamptz NOT NULL,
  last_started_at   timestamptz
);
INSERT INTO reconciliation_runs (id, lease_until, last_started_at) VALUES ('background', '-infinity', NULL);
`;
