/**
 * The whole schema of v1. Runs unchanged on PostgreSQL and PGlite.
 * Money columns are bigint in minor units; every amount has a CHECK that it is positive.
 * created_at defaults are cut to milliseconds: list cursors carry JavaScript (millisecond)
 * timestamps, and rows differing below that would be skipped between pages.
 */
export const sql = /* sql */ `
CREATE TABLE merchants (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now())
);

-- Secret keys are stored as SHA-256 digests; the prefix (mode + first 8 random characters) is
-- the public handle used to find the row and to revoke the key.
CREATE TABLE api_keys (
  prefix      text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants(id),
  test_mode   boolean NOT NULL,
  key_hash    bytea NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
  revoked_at  timestamptz
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id);

CREATE TABLE connector_accounts (
  id                  uuid PRIMARY KEY,
  short_id            text NOT NULL UNIQUE,
  merchant_id         text NOT NULL REFERENCES merchants(id),
  test_mode           boolean NOT NULL,
  connector           text NOT NULL,
  name                text,
  status              text NOT NULL CHECK (status IN ('active', 'inactive')),
  is_default          boolean NOT NULL DEFAULT false,
  settings            jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- AES-256-GCM sealed JSON, bound to the row id; never returned by the API.
  credentials_sealed  text,
  webhook_secret_sealed text NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
  deleted_at          timestamptz
);
CREATE UNIQUE INDEX connector_accounts_one_default
  ON connector_accounts (merchant_id, test_mode) WHERE is_default;
CREATE INDEX connector_accounts_list ON connector_accounts (merchant_id, test_mode, created_at DESC, id);

-- connector_account_id has no foreign key on purpose: a hard-deleted account leaves its ids on
-- the payments that settled through it.
CREATE TABLE payments (
  id                          text PRIMARY KEY,
  merchant_id                 text NOT NULL REFERENCES merchants(id),
  test_mode                   boolean NOT NULL,
  amount                      bigint NOT NULL CHECK (amount > 0),
  currency                    text NOT NULL,
  status                      text NOT NULL CHECK (status IN ('processing', 'requires_capture', 'succeeded',
                                'canceled', 'failed', 'partially_refunded', 'refunded')),
  capture_method              text NOT NULL CHECK (capture_method IN ('automatic', 'manual')),
  amount_capturable           bigint NOT NULL DEFAULT 0 CHECK (amount_capturable >= 0),
  amount_captured             bigint NOT NULL DEFAULT 0 CHECK (amount_captured >= 0),
  amount_refunded             bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
  -- held by pending refunds; released when they fail, moved to amount_refunded when they succeed
  amount_refund_pending       bigint NOT NULL DEFAULT 0 CHECK (amount_refund_pending >= 0),
  connector                   text NOT NULL,
  connector_account_id        uuid NOT NULL,
  connector_account_short_id  text NOT NULL,
  connector_ref               text,
  payment_method              text NOT NULL,
  order_id                    text,
  customer_id                 text,
  description                 text,
  metadata                    jsonb NOT NULL DEFAULT '{}'::jsonb,
  line_items                  jsonb NOT NULL DEFAULT '[]'::jsonb,
  failure_code                text,
  failure_message             text,
  idempotency_key             text,
  created_at                  timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
  updated_at                  timestamptz NOT NULL DEFAULT now(),
  -- the invariant of the whole gateway: never refund (or hold) more than was captured
  CONSTRAINT payments_refund_bound CHECK (amount_refunded + amount_refund_pending <= amount_captured),
  CONSTRAINT payments_capture_bound CHECK (amount_captured <= amount)
);
CREATE INDEX payments_list ON payments (merchant_id, test_mode, created_at DESC, id DESC);
CREATE INDEX payments_order ON payments (merchant_id, test_mode, order_id) WHERE order_id IS NOT NULL;
CREATE INDEX payments_customer ON payments (merchant_id, test_mode, customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX payments_connector_ref ON payments (connector_account_id, connector_ref);
CREATE UNIQUE INDEX payments_idempotency ON payments (merchant_id, test_mode, idempotency_key)
  WHERE idempotency_key IS NOT NULL;

-- authorization / capture / void; refunds appear in a payment's transactions from the refunds table
CREATE TABLE payment_transactions (
  id             text PRIMARY KEY,
  payment_id     text NOT NULL REFERENCES payments(id),
  type           text NOT NULL CHECK (type IN ('authorization', 'capture', 'void')),
  amount         bigint NOT NULL CHECK (amount >= 0),
  status         text NOT NULL CHECK (status IN ('succeeded', 'failed', 'pending')),
  connector_ref  text,
  created_at     timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now())
);
CREATE INDEX payment_transactions_payment ON payment_transactions (payment_id, created_at);

CREATE TABLE refunds (
  id                          text PRIMARY KEY,
  txn_id                      text NOT NULL UNIQUE,
  merchant_id                 text NOT NULL REFERENCES merchants(id),
  test_mode                   boolean NOT NULL,
  payment_id                  text NOT NULL REFERENCES payments(id),
  amount                      bigint NOT NULL CHECK (amount > 0),
  currency                    text NOT NULL,
  status                      text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  reason                      text,
  description                 text,
  reference                   text,
  metadata                    jsonb NOT NULL DEFAULT '{}'::jsonb,
  line_items                  jsonb NOT NULL DEFAULT '[]'::jsonb,
  order_id                    text,
  connector                   text NOT NULL,
  connector_account_id        uuid NOT NULL,
  connector_account_short_id  text NOT NULL,
  connector_ref               text,
  failure_code                text,
  failure_message             text,
  source                      text NOT NULL CHECK (source IN ('api', 'connector')),
  idempotency_key             text,
  -- the key sent to the PSP: derived from the refund id, the same on every retry
  psp_idempotency_key         text NOT NULL,
  -- refund sync: when the worker should next ask the PSP, and how often it already has
  next_sync_at                timestamptz,
  sync_attempts               integer NOT NULL DEFAULT 0,
  created_at                  timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
  updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_payment ON refunds (payment_id, created_at DESC, id DESC);
CREATE INDEX refunds_list ON refunds (merchant_id, test_mode, created_at DESC, id DESC);
CREATE INDEX refunds_sync ON refunds (next_sync_at) WHERE status = 'pending';
CREATE UNIQUE INDEX refunds_connector_ref ON refunds (connector_account_id, connector_ref)
  WHERE connector_ref IS NOT NULL;
CREATE UNIQUE INDEX refunds_idempotency ON refunds (merchant_id, test_mode, idempotency_key)
  WHERE idempotency_key IS NOT NULL;

-- Double-entry ledger. Append-only: triggers below refuse UPDATE and DELETE.
CREATE TABLE ledger_transactions (
  id           text PRIMARY KEY,
  merchant_id  text NOT NULL,
  test_mode    boolean NOT NULL,
  type         text NOT NULL CHECK (type IN ('capture', 'refund', 'refund_reversal')),
  payment_id   text NOT NULL,
  refund_id    text,
  currency     text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now())
);
-- one booking per refund, one reversal per refund, one capture per payment
CREATE UNIQUE INDEX ledger_one_booking ON ledger_transactions (refund_id, type) WHERE refund_id IS NOT NULL;
CREATE UNIQUE INDEX ledger_one_capture ON ledger_transactions (payment_id) WHERE type = 'capture';
CREATE INDEX ledger_transactions_payment ON ledger_transactions (payment_id, created_at);
CREATE INDEX ledger_transactions_list ON ledger_transactions (merchant_id, test_mode, created_at DESC, id DESC);

CREATE TABLE ledger_entries (
  id              bigserial PRIMARY KEY,
  transaction_id  text NOT NULL REFERENCES ledger_transactions(id),
  merchant_id     text NOT NULL,
  test_mode       boolean NOT NULL,
  account         text NOT NULL,
  direction       text NOT NULL CHECK (direction IN ('debit', 'credit')),
  amount          bigint NOT NULL CHECK (amount > 0),
  currency        text NOT NULL
);
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);
CREATE INDEX ledger_entries_account ON ledger_entries (merchant_id, test_mode, currency, account);

CREATE FUNCTION settle_refuse_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION settle_refuse_ledger_change();
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
  FOR EACH ROW EXECUTE FUNCTION settle_refuse_ledger_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
  FOR EACH STATEMENT EXECUTE FUNCTION settle_refuse_ledger_change();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
  FOR EACH STATEMENT EXECUTE FUNCTION settle_refuse_ledger_change();

-- Idempotency keys, scoped to merchant + mode.
CREATE TABLE idempotency_keys (
  merchant_id      text NOT NULL,
  test_mode        boolean NOT NULL,
  key              text NOT NULL,
  method           text NOT NULL,
  path             text NOT NULL,
  request_hash     text NOT NULL,
  state            text NOT NULL CHECK (state IN ('in_flight', 'done')),
  locked_until     timestamptz,
  response_status  integer,
  response_body    text,
  response_headers jsonb,
  created_at       timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
  PRIMARY KEY (merchant_id, test_mode, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Feature switches (the refund kill switch). merchant_id '' is the platform-wide row.
CREATE TABLE feature_flags (
  name         text NOT NULL,
  merchant_id  text NOT NULL DEFAULT '',
  enabled      boolean NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, merchant_id)
);

-- Outbound webhooks: events are the outbox, written in the transaction of the change.
CREATE TABLE events (
  id           text PRIMARY KEY,
  merchant_id  text NOT NULL,
  test_mode    boolean NOT NULL,
  type         text NOT NULL,
  -- the exact JSON delivered, serialized once when the event is written
  body         text NOT NULL,
  object_id    text,
  created_at   timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now())
);
CREATE INDEX events_list ON events (merchant_id, test_mode, created_at DESC, id DESC);
CREATE INDEX events_object ON events (object_id);

CREATE TABLE webhook_endpoints (
  id              text PRIMARY KEY,
  merchant_id     text NOT NULL REFERENCES merchants(id),
  test_mode       boolean NOT NULL,
  url             text NOT NULL,
  enabled_events  text[] NOT NULL,
  description     text,
  status          text NOT NULL CHECK (status IN ('enabled', 'disabled')),
  secret_sealed   text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
  deleted_at      timestamptz
);
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, test_mode) WHERE deleted_at IS NULL;

-- One delivery per (event, endpoint); the worker claims due rows with SKIP LOCKED and a lease.
CREATE TABLE webhook_deliveries (
  id               text PRIMARY KEY,
  event_id         text NOT NULL REFERENCES events(id),
  endpoint_id      text NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
  status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  locked_until     timestamptz,
  last_http_status integer,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
  id            bigserial PRIMARY KEY,
  delivery_id   text NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
  event_id      text NOT NULL,
  endpoint_id   text NOT NULL,
  attempt       integer NOT NULL,
  http_status   integer,
  error         text,
  duration_ms   integer NOT NULL,
  attempted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, attempted_at);

-- Inbound PSP webhooks: stored (deduplicated by the PSP's event id) before they are acknowledged.
CREATE TABLE inbound_webhooks (
  id                    text PRIMARY KEY,
  connector             text NOT NULL,
  connector_account_id  uuid NOT NULL,
  merchant_id           text NOT NULL,
  test_mode             boolean NOT NULL,
  psp_event_id          text NOT NULL,
  type                  text NOT NULL,
  payload               jsonb NOT NULL,
  status                text NOT NULL CHECK (status IN ('received', 'processed', 'failed')),
  attempts              integer NOT NULL DEFAULT 0,
  next_attempt_at       timestamptz NOT NULL DEFAULT now(),
  last_error            text,
  received_at           timestamptz NOT NULL DEFAULT now(),
  processed_at          timestamptz,
  UNIQUE (connector_account_id, psp_event_id)
);
CREATE INDEX inbound_webhooks_due ON inbound_webhooks (next_attempt_at) WHERE status = 'received';
`;
