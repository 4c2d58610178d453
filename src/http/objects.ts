/**
 * The objects of the contract as JSON schemas, for the OpenAPI document. Each has a `title`: the
 * document lists it once under `components.schemas` and every use becomes a `$ref` to it (see
 * openapi.ts). Responses are serialized with JSON.stringify (see routes.ts), so these describe the
 * objects without filtering them; the contract test checks every response of the test suites
 * against them, both ways (a missing required field or an undocumented one fails).
 */
import { ATTEMPT_CATEGORIES } from '../modules/webhooks/webhooks.repository.js';
import { errorCodesByStatus, errorTypesByStatus } from './errors.js';
import { EVENT_TYPES } from '../modules/webhooks/events.repository.js';

const str = { type: 'string' } as const;
const nstr = { type: ['string', 'null'] } as const;
const int = { type: 'integer' } as const;
const bool = { type: 'boolean' } as const;
const time = { type: 'string', format: 'date-time' } as const;
const ntime = { type: ['string', 'null'], format: 'date-time' } as const;
const metadata = { type: 'object', additionalProperties: { type: 'string' }, description: 'Your key–value pairs, as given.' } as const;
const constant = (value: string) => ({ type: 'string', enum: [value] }) as const;
const id = (prefix: string) => ({ type: 'string', description: `Prefixed \`${prefix}\`` }) as const;

/**
 * An object schema named `name`: every property is required unless listed in `optional`
 * (fields that only some responses carry, such as a secret shown once).
 */
function obj(name: string, description: string, properties: Record<string, object>, optional: string[] = []) {
  return {
    type: 'object',
    title: name,
    description,
    required: Object.keys(properties).filter((p) => !optional.includes(p)),
    properties,
  } as const;
}

export const PAYMENT_STATUSES = ['processing', 'requires_capture', 'succeeded', 'canceled', 'failed', 'partially_refunded', 'refunded'] as const;
const paymentStatus = { type: 'string', enum: [...PAYMENT_STATUSES] } as const;

export const paymentObject = obj('Payment', 'A payment: an authorization at a PSP, its captures, and its refunds.', {
  id: id('pay_'), object: constant('payment'), amount: { type: 'integer', description: 'Minor units of `currency`' },
  currency: { type: 'string', description: 'ISO 4217, upper case' },
  status: paymentStatus,
  capture_method: { type: 'string', enum: ['automatic', 'manual'] },
  amount_capturable: int, amount_captured: int, amount_refunded: int,
  amount_refundable: { type: 'integer', description: 'captured − refunded − held by pending refunds' },
  connector: str, connector_account_id: { type: 'string', format: 'uuid' }, connector_account_short_id: str, connector_ref: nstr,
  payment_method: str, order_id: nstr, customer_id: nstr, description: nstr, metadata,
  line_items: {
    type: 'array',
    items: obj('PaymentLineItem', 'A line item of a payment, with how much of it was refunded.', {
      id: id('li_'), name: str, quantity: int, unit_amount: int, amount: int, quantity_refunded: int,
    }),
  },
  transactions: {
    type: 'array',
    items: obj('PaymentTransaction', 'One step of the payment at its PSP.', {
      id: id('txn_'), type: { type: 'string', enum: ['authorization', 'capture', 'void', 'refund'] }, amount: int,
      status: { type: 'string', description: '`succeeded`, `pending` or `failed`; a capture the PSP did not make as the gateway booked it (reported failed, or corrected by reconciliation) becomes `failed`' },
      connector_ref: nstr, refund_id: { type: 'string', description: 'On `refund` transactions' }, created_at: time,
    }, ['refund_id']),
  },
  failure_code: { ...nstr, description: 'Why the PSP declined it (the decline code)' }, failure_message: nstr,
  test_mode: bool, created_at: time, updated_at: time,
});

export const REFUND_STATUSES = ['pending', 'succeeded', 'failed'] as const;

export const refundObject = obj('Refund', 'A refund of (part of) a payment. Final once `succeeded` or `failed`.', {
  id: id('re_'), object: constant('refund'), payment_id: id('pay_'), amount: int, currency: str,
  status: { type: 'string', enum: [...REFUND_STATUSES] },
  reason: nstr, description: nstr, reference: nstr, metadata,
  line_items: { type: 'array', items: obj('RefundLineItem', 'A refunded quantity of one of the payment\'s line items.', { id: id('li_'), quantity: int, amount: int }) },
  order_id: nstr, connector: str, connector_account_id: { type: 'string', format: 'uuid' }, connector_account_short_id: str, connector_ref: nstr,
  failure_code: nstr, failure_message: nstr,
  source: { type: 'string', enum: ['api', 'connector'], description: '`connector`: made at the PSP (e.g. in its dashboard) and learnt from it' },
  test_mode: bool, created_at: time, updated_at: time,
  payment: obj('RefundPayment', 'The refunded payment\'s totals after this refund.', {
    id: id('pay_'), status: paymentStatus, amount_captured: int, amount_refunded: int, amount_refundable: int,
  }),
});

const connectorAccountFields = {
  object: constant('connector_account'), id: { type: 'string', format: 'uuid' }, short_id: { type: 'string', description: '`ca_` + 10 characters' },
  connector: str, name: nstr, status: { type: 'string', enum: ['active', 'inactive'] }, is_default: bool, test_mode: bool,
  settings: { type: 'object' }, webhook_path: { type: 'string', description: 'Where the PSP posts its webhooks, on this gateway' },
  created_at: time, deleted_at: ntime,
} as const;

export const connectorAccountObject = obj('ConnectorAccount', 'A merchant\'s credentials at one PSP (credentials are write-only).', connectorAccountFields);

export const createdConnectorAccountObject = obj('CreatedConnectorAccount', 'A connector account as created: with the secret its PSP signs webhooks with, shown once.', {
  ...connectorAccountFields,
  webhook_secret: { type: 'string', description: 'The secret the PSP signs its webhooks with' },
});

export const ledgerTransactionObject = obj('LedgerTransaction', 'A balanced ledger transaction (Σ debits = Σ credits).', {
  id: str, object: constant('ledger_transaction'), type: { type: 'string', enum: ['capture', 'refund', 'refund_reversal', 'capture_adjustment'], description: '`capture_adjustment`: moves the payment\'s booked capture to what the PSP captured (a reconciliation correction, or a capture the PSP reported failed)' },
  payment_id: id('pay_'), refund_id: nstr, currency: str, created_at: time,
  entries: {
    type: 'array',
    items: obj('LedgerEntry', 'One side of a ledger transaction.', { account: str, direction: { type: 'string', enum: ['debit', 'credit'] }, amount: int, currency: str }),
  },
});

export const ledgerAccountObject = obj('LedgerAccount', 'A ledger account\'s balance in one currency.', {
  object: constant('ledger_account'), account: str, currency: str,
  normal_balance: { type: 'string', enum: ['debit', 'credit'] }, balance: int, debits: int, credits: int,
});

const merchantFields = { id: id('mer_'), object: constant('merchant'), name: str, created_at: time } as const;

export const merchantObject = obj('Merchant', 'A merchant of the platform.', merchantFields);

export const createdMerchantObject = obj('CreatedMerchant', 'A merchant as created: with its first test and live secret keys, shown once.', {
  ...merchantFields,
  api_keys: obj('MerchantKeys', 'The first secret keys of a merchant.', { test: { type: 'string', description: 'sk_test_…' }, live: { type: 'string', description: 'sk_live_…' } }),
});

export const reconciliationDifferenceObject = obj('ReconciliationDifference', 'A difference between the gateway and its PSP found by reconciliation (docs/reconciliation.md).', {
  id: str, object: constant('reconciliation_difference'), payment_id: id('pay_'), connector_account_id: str,
  kind: { type: 'string', description: 'What differs: payment_not_found_at_psp, captured_amount, refunded_amount, refund_missing, refund_status, refund_amount, refund_not_at_psp, refund_unknown_reference, ledger_capture, ledger_refunds, refund_pending_too_long' },
  refund_id: nstr, connector_ref: nstr,
  gateway: { description: 'The gateway\'s value (an amount, a status, or null)' },
  psp: { description: 'The PSP\'s value (an amount, a status, a refund, or null)' },
  message: str, status: { type: 'string', enum: ['open', 'fixed', 'resolved'] }, test_mode: bool,
  detected_at: time, resolved_at: ntime,
});

export const apiKeyObject = obj('ApiKey', 'A secret key as created (the secret is shown once).', {
  object: constant('api_key'), merchant_id: id('mer_'), mode: { type: 'string', enum: ['test', 'live'] },
  key_prefix: { type: 'string', description: 'sk_test_XXXXXXXX: names the key (to revoke it)' }, secret: str,
});

const apiKeyListingFields = {
  id: { type: 'string', description: 'The key prefix' }, object: constant('api_key'),
  type: { type: 'string', enum: ['secret', 'restricted'] },
  key_prefix: { type: 'string', description: 'rk_test_XXXXXXXX or sk_test_XXXXXXXX: names the key' },
  name: nstr, permissions: { type: ['array', 'null'], items: { type: 'string' }, description: 'A restricted key\'s permissions; null for a secret key (all of them)' },
  test_mode: bool, created_at: time, revoked: bool, revoked_at: ntime,
} as const;

export const apiKeyListingObject = obj('ApiKeyListing', 'An API key of the merchant (never its secret).', apiKeyListingFields);

export const createdRestrictedKeyObject = obj('CreatedRestrictedKey', 'A restricted key as created, with its secret (shown once).', {
  ...apiKeyListingFields,
  secret: { type: 'string', description: 'rk_test_… or rk_live_…' },
});

export const merchantSummaryObject = obj('MerchantSummary', 'A merchant, with the refund kill switch as it applies to it.', {
  ...merchantFields,
  refunds_enabled: { type: 'boolean', description: 'The merchant\'s own switch' },
  refunds_effective: { type: 'boolean', description: 'Whether refunds are on for it once the platform switch applies' },
});

export const consoleSessionObject = obj('ConsoleSession', 'A console session (its token is the HttpOnly cookie, never in the body).', {
  object: constant('console_session'), role: { type: 'string', enum: ['admin', 'merchant', 'restricted'] },
  merchant: { type: ['object', 'null'], title: 'ConsoleSessionMerchant', description: 'The signed-in merchant; null for the admin.', required: ['id', 'name'], properties: { id: id('mer_'), name: str } },
  test_mode: { type: ['boolean', 'null'] }, key_prefix: nstr, permissions: { type: ['array', 'null'], items: { type: 'string' } },
  csrf_token: { type: 'string', description: 'Send as X-CSRF-Token on every write made with the session cookie' }, expires_at: time,
});

export const signedOutObject = obj('ConsoleSignOut', 'The console session is ended.', {
  object: constant('console_session'), signed_out: { type: 'boolean', enum: [true] },
});

export const revokedApiKeyObject = obj('RevokedApiKey', 'A revoked secret key.', {
  object: constant('api_key'), key_prefix: str, merchant_id: id('mer_'), mode: { type: 'string', enum: ['test', 'live'] },
  revoked: { type: 'boolean', enum: [true] }, revoked_at: time,
});

export const featureObject = obj('Feature', 'A feature switch (the refund kill switch).', {
  object: constant('feature'), name: str,
  platform: { type: 'boolean', description: 'On for the whole platform' },
  merchants: { type: 'object', additionalProperties: { type: 'boolean' }, description: 'Per-merchant overrides, by merchant id' },
});

const endpointFields = {
  id: id('we_'), object: constant('webhook_endpoint'), url: str,
  enabled_events: { type: 'array', items: { type: 'string' }, description: '`*`, or event types in the endpoint\'s dialect' },
  dialect: { type: 'string', enum: ['settle', 'elasticpay'], description: 'The events\' names and shapes: `settle` (native) or a compatibility surface\'s' },
  description: nstr, status: { type: 'string', enum: ['enabled', 'disabled'] }, test_mode: bool, created_at: time,
} as const;

export const webhookEndpointObject = obj('WebhookEndpoint', 'Where events are sent. The signing secret is only in the create response.', endpointFields);

export const createdWebhookEndpointObject = obj('CreatedWebhookEndpoint', 'A webhook endpoint as created, with its signing secret (shown once).', {
  ...endpointFields,
  secret: { type: 'string', description: 'whsec_…: the Settle-Signature and Standard Webhooks signing secret' },
});

export const deletedWebhookEndpointObject = obj('DeletedWebhookEndpoint', 'A deleted webhook endpoint.', {
  id: id('we_'), object: constant('webhook_endpoint'), deleted: { type: 'boolean', enum: [true] },
});

export const deletedConnectorAccountObject = obj('DeletedConnectorAccount', 'A hard-deleted connector account.', {
  id: { type: 'string', format: 'uuid' }, short_id: str, object: constant('connector_account'), deleted: { type: 'boolean', enum: [true] },
});


const eventFields = (type: object, object: object) => ({
  id: id('evt_'), object: constant('event'), type, created_at: time, test_mode: bool,
  data: { type: 'object', required: ['object'], properties: { object } },
});

/** The event envelope with either object: what `GET /v1/events` lists. */
export const eventObject = obj('Event', 'Something that happened, exactly as delivered to webhook endpoints. `payment.*` events carry the payment, `refund.*` events the refund, `reconciliation.*` events the difference found.',
  eventFields({ type: 'string', enum: [...EVENT_TYPES] }, { oneOf: [paymentObject, refundObject, reconciliationDifferenceObject] }));

/** The schema of one event type, as delivered (the `webhooks` section). */
export function eventOf(type: (typeof EVENT_TYPES)[number]) {
  const name = type.split(/[._]/).map((w) => w[0].toUpperCase() + w.slice(1)).join('') + 'Event';
  const object = type.startsWith('payment.') ? paymentObject : type.startsWith('refund.') ? refundObject : reconciliationDifferenceObject;
  return obj(name, `The \`${type}\` event.`, eventFields(constant(type), object));
}

export const eventWithDeliveriesObject = obj('EventWithDeliveries', 'An event with every delivery attempt made and its delivery state per endpoint.', {
  ...eventFields({ type: 'string', enum: [...EVENT_TYPES] }, { oneOf: [paymentObject, refundObject, reconciliationDifferenceObject] }),
  delivery_attempts: {
    type: 'array',
    items: obj('DeliveryAttempt', 'One POST of the event to an endpoint.', {
      endpoint_id: id('we_'), attempt: int, http_status: { type: ['integer', 'null'] },
      category: {
        type: ['string', 'null'], enum: [...ATTEMPT_CATEGORIES, null],
        description: 'What became of the attempt: `http_status` (the receiver answered; `http_status` says what, 2xx is success, 3xx is not followed), or why it got no answer: `timeout`, `connection_refused`, `connection_failed` (reset, closed or not HTTP), `dns`, `tls`, `blocked_address` (the host is or resolves to an address webhooks may not reach). Null for attempts made before categories were recorded.',
      },
      error: { type: ['string', 'null'], description: 'A fixed text for the category (never the receiver\'s body or a socket error text); null for an answered attempt other than a redirect.' },
      duration_ms: int, attempted_at: time,
    }),
  },
  deliveries: {
    type: 'array',
    items: obj('Delivery', 'The delivery of the event to one endpoint.', {
      endpoint_id: id('we_'), status: { type: 'string', enum: ['pending', 'succeeded', 'failed'] }, attempts: int, next_attempt_at: ntime,
    }),
  },
});

export const inboundReceiptObject = obj('InboundWebhookReceipt', 'The acknowledgement of a PSP webhook.', {
  received: { type: 'boolean', enum: [true] },
  duplicate: { type: 'boolean', description: 'The PSP event was already stored' },
});

/** A list page of `item` (contract section 1), named `<Item>List`. */
export const listOf = (item: { title: string }) =>
  ({
    type: 'object',
    title: `${item.title}List`,
    description: `A page of ${item.title} objects, newest first.`,
    required: ['object', 'data', 'has_more', 'next_cursor'],
    properties: {
      object: constant('list'),
      data: { type: 'array', items: item },
      has_more: bool,
      next_cursor: { type: ['string', 'null'], description: 'Pass as `cursor` for the next page; null on the last' },
    },
  }) as const;

// ---- errors: one envelope, one schema per status with that status's codes and types

const STATUS_NAMES: Record<number, string> = {
  400: 'BadRequest', 401: 'Unauthorized', 402: 'PaymentDeclined', 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict',
  413: 'PayloadTooLarge', 422: 'Unprocessable', 429: 'RateLimited', 500: 'InternalError', 502: 'ConnectorUnavailable', 503: 'ServiceUnavailable',
};

function errorEnvelope(status: number) {
  const extras: Record<string, object> = {};
  if (status === 402 || status === 502) extras.payment_id = { ...id('pay_'), description: 'The payment the PSP declined (402) or did not answer for (502)' };
  if (status === 403) extras.permission = { type: 'string', description: 'The permission a restricted key lacks (`insufficient_permissions`), e.g. `refunds:write`' };
  if (status === 409) {
    extras.payment_id = { ...id('pay_'), description: 'With `not_capturable` after a capture of another amount: the payment, already captured at the PSP' };
    extras.amount_captured = { type: 'integer', description: 'With that `not_capturable`: what the PSP captured, and the gateway booked' };
  }
  if (status === 422) {
    extras.payment_id = { ...id('pay_'), description: 'With `idempotency_key_reused` on a payment create retried with another amount, currency or method: the payment the key made, as the PSP processed it' };
    extras.amount = { type: 'integer', description: 'With that `idempotency_key_reused`: the amount of the payment the key made' };
  }
  if (status === 402) extras.decline_code = { ...nstr, description: 'Why the PSP declined the payment (e.g. `card_declined`, `insufficient_funds`)' };
  return obj(`${STATUS_NAMES[status]}Error`, `The error envelope of a ${status} response.`, {
    error: obj(`${STATUS_NAMES[status]}ErrorDetail`, `What went wrong (${status}).`, {
      type: { type: 'string', enum: errorTypesByStatus(status) },
      code: { type: 'string', enum: errorCodesByStatus(status) },
      message: { type: 'string', description: 'For people; never parse it' },
      param: { type: 'string', description: 'The parameter at fault (`amount`, `line_items[1].quantity`, …)' },
      ...extras,
      request_id: { ...id('req_'), description: 'The same as the Request-Id header' },
    }, ['param', ...Object.keys(extras).filter((k) => status !== 402 || k !== 'payment_id')]),
  });
}

export const ERROR_STATUSES = Object.keys(STATUS_NAMES).map(Number);
export const errorSchemas = new Map(ERROR_STATUSES.map((s) => [s, errorEnvelope(s)]));

/** The error responses every merchant API operation can give (403: a restricted key without the permission). */
const COMMON_ERRORS = [400, 401, 403, 429, 500, 503];
/** The same for the admin key's operations (403: a console write without its CSRF token). */
const ADMIN_ERRORS = [400, 401, 403, 429, 500, 503];

export interface ResponsesOptions {
  /** Error statuses of this operation beyond the common ones. */
  errors?: number[];
  /** Without the common errors (e.g. a route without authentication). */
  only?: boolean;
  /** An admin-key operation. */
  admin?: boolean;
}

/** A route's `response`: the success schema under `status`, and its error envelopes. */
export function responses(status: 200 | 201, schema: object, opts: ResponsesOptions = {}) {
  const out: Record<string, object> = { [status]: schema };
  const statuses = new Set([...(opts.only ? [] : opts.admin ? ADMIN_ERRORS : COMMON_ERRORS), ...(opts.errors ?? [])]);
  for (const s of [...statuses].sort()) out[s] = errorSchemas.get(s)!;
  return out;
}
