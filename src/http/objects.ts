/**
 * Response object schemas, for the OpenAPI document. Responses are serialized with
 * JSON.stringify (see routes.ts), so these describe the objects without filtering them.
 */
import { errorResponseSchema } from './schemas.js';

const str = { type: 'string' } as const;
const nstr = { type: ['string', 'null'] } as const;
const int = { type: 'integer' } as const;
const bool = { type: 'boolean' } as const;
const time = { type: 'string', format: 'date-time' } as const;
const metadata = { type: 'object', additionalProperties: { type: 'string' } } as const;

const obj = (name: string, properties: Record<string, unknown>, description?: string) => ({
  type: 'object',
  title: name,
  ...(description ? { description } : {}),
  properties,
});

export const paymentObject = obj('Payment', {
  id: str, object: { type: 'string', enum: ['payment'] }, amount: int, currency: str,
  status: { type: 'string', enum: ['processing', 'requires_capture', 'succeeded', 'canceled', 'failed', 'partially_refunded', 'refunded'] },
  capture_method: { type: 'string', enum: ['automatic', 'manual'] },
  amount_capturable: int, amount_captured: int, amount_refunded: int,
  amount_refundable: { type: 'integer', description: 'captured − refunded − held by pending refunds' },
  connector: str, connector_account_id: str, connector_account_short_id: str, connector_ref: nstr,
  payment_method: str, order_id: nstr, customer_id: nstr, description: nstr, metadata,
  line_items: { type: 'array', items: obj('PaymentLineItem', { id: str, name: str, quantity: int, unit_amount: int, amount: int, quantity_refunded: int }) },
  transactions: {
    type: 'array',
    items: obj('PaymentTransaction', {
      id: str, type: { type: 'string', enum: ['authorization', 'capture', 'void', 'refund'] }, amount: int, status: str,
      connector_ref: nstr, refund_id: str, created_at: time,
    }),
  },
  failure_code: nstr, failure_message: nstr, test_mode: bool, created_at: time, updated_at: time,
});

export const refundObject = obj('Refund', {
  id: str, object: { type: 'string', enum: ['refund'] }, payment_id: str, amount: int, currency: str,
  status: { type: 'string', enum: ['pending', 'succeeded', 'failed'] },
  reason: nstr, description: nstr, reference: nstr, metadata,
  line_items: { type: 'array', items: obj('RefundLineItem', { id: str, quantity: int, amount: int }) },
  order_id: nstr, connector: str, connector_account_id: str, connector_account_short_id: str, connector_ref: nstr,
  failure_code: nstr, failure_message: nstr, source: { type: 'string', enum: ['api', 'connector'] },
  test_mode: bool, created_at: time, updated_at: time,
  payment: obj('RefundPayment', { id: str, status: str, amount_captured: int, amount_refunded: int, amount_refundable: int }),
});

export const connectorAccountObject = obj('ConnectorAccount', {
  object: { type: 'string', enum: ['connector_account'] }, id: { type: 'string', format: 'uuid' }, short_id: str,
  connector: str, name: nstr, status: { type: 'string', enum: ['active', 'inactive'] }, is_default: bool, test_mode: bool,
  settings: { type: 'object' }, webhook_path: str, created_at: time, deleted_at: { type: ['string', 'null'], format: 'date-time' },
  webhook_secret: { type: 'string', description: 'Only in the create response: the secret the PSP signs its webhooks with' },
});

export const ledgerTransactionObject = obj('LedgerTransaction', {
  id: str, object: { type: 'string', enum: ['ledger_transaction'] }, type: { type: 'string', enum: ['capture', 'refund', 'refund_reversal'] },
  payment_id: str, refund_id: nstr, currency: str, created_at: time,
  entries: { type: 'array', items: obj('LedgerEntry', { account: str, direction: { type: 'string', enum: ['debit', 'credit'] }, amount: int, currency: str }) },
});

export const ledgerAccountObject = obj('LedgerAccount', {
  object: { type: 'string', enum: ['ledger_account'] }, account: str, currency: str,
  normal_balance: { type: 'string', enum: ['debit', 'credit'] }, balance: int, debits: int, credits: int,
});

export const merchantObject = obj('Merchant', {
  id: str, object: { type: 'string', enum: ['merchant'] }, name: str, created_at: time,
  api_keys: obj('MerchantKeys', { test: str, live: str }, 'Only in the create response'),
});

export const reconciliationDifferenceObject = obj('ReconciliationDifference', {
  id: str, object: { type: 'string', enum: ['reconciliation_difference'] }, payment_id: str, connector_account_id: str,
  kind: { type: 'string', description: 'What differs: payment_not_found_at_psp, captured_amount, refunded_amount, refund_missing, refund_status, refund_amount, refund_not_at_psp, refund_unknown_reference, ledger_capture, ledger_refunds' },
  refund_id: nstr, connector_ref: nstr,
  gateway: { description: "The gateway's value (an amount, a status, or null)" },
  psp: { description: "The PSP's value (an amount, a status, a refund, or null)" },
  message: str, status: { type: 'string', enum: ['open', 'fixed', 'resolved'] }, test_mode: bool,
  detected_at: time, resolved_at: { type: ['string', 'null'], format: 'date-time' },
}, 'A difference between the gateway and its PSP found by reconciliation (docs/reconciliation.md)');

/** `{200: schema, 4xx/5xx: the error envelope}` for a route's `response`. */
export function responses(status: 200 | 201, schema: object) {
  return { [status]: schema, '4xx': errorResponseSchema, '5xx': errorResponseSchema };
}
