/**
 * The model's payments and refunds drawn as Stripe objects. Each builder returns the `stripe`
 * SDK's own type, so the compiler checks every field against Stripe's published definitions; the
 * tests compare the shapes with Stripe's fixtures as well.
 *
 * Ids: a model payment `sbx_pay_<x>` is PaymentIntent `pi_<x>` and Charge `ch_<x>`; a model refund
 * `sbx_re_<y>` is Refund `re_<y>`. The mapping is reversible, so the wire keeps no id table.
 */
import type Stripe from 'stripe';
import type { SandboxPaymentView, SandboxRefundView } from '../../psp-model.js';

const MODEL_PAYMENT = 'sbx_pay_';
const MODEL_REFUND = 'sbx_re_';

export const paymentIntentId = (modelRef: string): string => `pi_${modelRef.slice(MODEL_PAYMENT.length)}`;
export const chargeId = (modelRef: string): string => `ch_${modelRef.slice(MODEL_PAYMENT.length)}`;
export const refundId = (modelRef: string): string => `re_${modelRef.slice(MODEL_REFUND.length)}`;

/** `pi_…` or `ch_…` → the model's payment ref; undefined when it is neither. */
export function modelPaymentRef(id: string): string | undefined {
  const m = /^(pi|ch)_(.+)$/.exec(id);
  return m ? `${MODEL_PAYMENT}${m[2]}` : undefined;
}
export function modelRefundRef(id: string): string | undefined {
  const m = /^re_(.+)$/.exec(id);
  return m ? `${MODEL_REFUND}${m[1]}` : undefined;
}

/** What the wire remembers beside the model: what Stripe keeps that the model has no field for. */
export interface PaymentExtras {
  metadata: Record<string, string>;
  paymentMethod: string;
  captureMethod: 'automatic' | 'manual';
  declineCode: string | null;
  canceledAt: number | null;
}

const STATUS: Record<SandboxPaymentView['status'], Stripe.PaymentIntent.Status> = {
  authorized: 'requires_capture',
  captured: 'succeeded',
  canceled: 'canceled',
  declined: 'requires_payment_method',
};

export function paymentIntentObject(p: SandboxPaymentView, extras: PaymentExtras, livemode: boolean): Stripe.PaymentIntent {
  const id = paymentIntentId(p.id);
  const declined = p.status === 'declined';
  return {
    id,
    object: 'payment_intent',
    allowed_payment_method_types: null,
    amount: p.amount,
    amount_capturable: p.status === 'authorized' ? p.amount : 0,
    amount_details: { tip: {} },
    amount_received: p.amount_captured,
    application: null,
    application_fee_amount: null,
    automatic_payment_methods: { allow_redirects: 'never', enabled: true },
    canceled_at: extras.canceledAt,
    cancellation_reason: p.status === 'canceled' ? 'requested_by_customer' : null,
    capture_method: extras.captureMethod,
    client_secret: `${id}_secret_sim`,
    confirmation_method: 'automatic',
    created: p.created,
    currency: p.currency.toLowerCase(),
    customer: null,
    customer_account: null,
    description: null,
    excluded_payment_method_types: null,
    last_payment_error: declined
      ? {
          type: 'card_error',
          code: 'card_declined',
          decline_code: extras.declineCode ?? 'generic_decline',
          message: 'Your card was declined.',
          doc_url: 'https://stripe.com/docs/error-codes/card-declined',
        }
      : null,
    latest_charge: declined || p.status === 'authorized' || p.status === 'captured' ? chargeId(p.id) : null,
    livemode,
    managed_payments: null,
    metadata: { ...extras.metadata },
    next_action: null,
    on_behalf_of: null,
    payment_method: extras.paymentMethod,
    payment_method_configuration_details: null,
    payment_method_options: {},
    payment_method_types: ['card'],
    payment_record: null,
    processing: null,
    receipt_email: null,
    review: null,
    setup_future_usage: null,
    shipping: null,
    source: null,
    statement_descriptor: null,
    statement_descriptor_suffix: null,
    status: STATUS[p.status],
    transfer_data: null,
    transfer_group: null,
  };
}

/** Stripe's refund `failure_reason` values; a model failure code outside them is `unknown`. */
const FAILURE_REASONS = new Set([
  'charge_for_pending_refund_disputed',
  'declined',
  'expired_or_canceled_card',
  'insufficient_funds',
  'lost_or_stolen_card',
  'merchant_request',
  'unknown',
]);

export function refundObject(r: SandboxRefundView, metadata: Record<string, string>, paymentMethod: string | null): Stripe.Refund {
  return {
    id: refundId(r.id),
    object: 'refund',
    amount: r.amount,
    balance_transaction: null,
    charge: chargeId(r.payment_ref),
    created: r.created,
    currency: r.currency.toLowerCase(),
    customer: null,
    customer_account: null,
    destination_details: { card: { reference_status: r.status === 'succeeded' ? 'available' : 'pending', reference_type: 'acquirer_reference_number', type: 'refund' }, type: 'card' },
    ...(r.status === 'failed' ? { failure_reason: FAILURE_REASONS.has(r.failure_code ?? '') ? r.failure_code! : 'unknown' } : {}),
    metadata: { ...metadata },
    payment_intent: paymentIntentId(r.payment_ref),
    payment_method: paymentMethod,
    reason: (r.reason as Stripe.Refund.Reason | null) ?? null,
    receipt_number: null,
    source_transfer_reversal: null,
    status: r.status,
    transfer_reversal: null,
  };
}

export function chargeObject(
  p: SandboxPaymentView,
  extras: PaymentExtras,
  refunds: Stripe.Refund[],
  livemode: boolean,
): Stripe.Charge {
  const refunded = refunds.filter((r) => r.status === 'succeeded').reduce((sum, r) => sum + r.amount, 0);
  const declined = p.status === 'declined';
  return {
    id: chargeId(p.id),
    object: 'charge',
    amount: p.amount,
    amount_captured: p.amount_captured,
    amount_refunded: refunded,
    application: null,
    application_fee: null,
    application_fee_amount: null,
    balance_transaction: null,
    billing_details: { address: { city: null, country: null, line1: null, line2: null, postal_code: null, state: null }, email: null, name: null, phone: null, tax_id: null },
    calculated_statement_descriptor: 'SETTLE PSP-SIM',
    captured: p.status === 'captured',
    created: p.created,
    currency: p.currency.toLowerCase(),
    customer: null,
    description: null,
    disputed: false,
    failure_balance_transaction: null,
    failure_code: declined ? 'card_declined' : null,
    failure_message: declined ? 'Your card was declined.' : null,
    fraud_details: {},
    livemode,
    metadata: { ...extras.metadata },
    on_behalf_of: null,
    outcome: {
      advice_code: null,
      network_advice_code: null,
      network_decline_code: null,
      network_status: declined ? 'declined_by_network' : 'approved_by_network',
      reason: declined ? extras.declineCode ?? 'generic_decline' : null,
      risk_level: 'normal',
      seller_message: declined ? 'The bank did not return any further details with this decline.' : 'Payment complete.',
      type: declined ? 'issuer_declined' : 'authorized',
    },
    paid: !declined,
    payment_intent: paymentIntentId(p.id),
    payment_method: extras.paymentMethod,
    payment_method_details: null,
    receipt_email: null,
    receipt_number: null,
    receipt_url: null,
    refunded: p.amount_captured > 0 && refunded === p.amount_captured,
    // newest first, as Stripe lists them
    refunds: { object: 'list', data: [...refunds].reverse(), has_more: false, url: `/v1/charges/${chargeId(p.id)}/refunds` },
    review: null,
    shipping: null,
    source: null,
    source_transfer: null,
    statement_descriptor: null,
    statement_descriptor_suffix: null,
    status: declined ? 'failed' : 'succeeded',
    transfer_data: null,
    transfer_group: null,
  };
}

/** The events the wire sends; each is the SDK's own event type, checked by the compiler. */
export type StripeWireEvent = Stripe.ChargeRefundedEvent | Stripe.RefundCreatedEvent | Stripe.RefundUpdatedEvent | Stripe.RefundFailedEvent;

const eventBase = (id: string, created: number, livemode: boolean) => ({
  id,
  object: 'event' as const,
  api_version: '2026-10-28.endive',
  created,
  livemode,
  pending_webhooks: 1,
  request: { id: null, idempotency_key: null },
});

export function chargeRefundedEvent(id: string, charge: Stripe.Charge, created: number, livemode: boolean): Stripe.ChargeRefundedEvent {
  return { ...eventBase(id, created, livemode), type: 'charge.refunded', data: { object: charge } };
}

export function refundEvent(
  id: string,
  type: 'refund.created' | 'refund.updated' | 'refund.failed',
  refund: Stripe.Refund,
  created: number,
  livemode: boolean,
): StripeWireEvent {
  const base = eventBase(id, created, livemode);
  if (type === 'refund.created') return { ...base, type, data: { object: refund } };
  if (type === 'refund.failed') return { ...base, type, data: { object: refund } };
  return { ...base, type, data: { object: refund } };
}
