/**
 * Stripe ↔ Settle, one table per concern, so a change of vocabulary is a change of one row.
 * docs/connectors.md shows the same tables to operators.
 */
import type { RefundReasonCode } from '../refund-reasons.js';
import { PSP_REASON_CODES } from '../refund-reasons.js';

/** A Stripe refund's `status` → the connector's refund status. Anything unlisted is not final
 *  knowledge, so it is read as `pending` (the sync worker keeps asking). */
export const STRIPE_REFUND_STATUS: Record<string, 'succeeded' | 'pending' | 'failed'> = {
  succeeded: 'succeeded',
  pending: 'pending',
  requires_action: 'pending',
  failed: 'failed',
  canceled: 'failed',
};

/** A PaymentIntent's `status` → what the PSP did for the payment (reconciliation). */
export const STRIPE_PAYMENT_STATUS: Record<string, 'authorized' | 'captured' | 'canceled' | 'declined'> = {
  requires_capture: 'authorized',
  succeeded: 'captured',
  canceled: 'canceled',
  requires_payment_method: 'declined',
};

/** Settle's canonical refund reason → Stripe's `reason` (null: Stripe has no code; omitted). */
export function stripeRefundReason(code: RefundReasonCode | null | undefined): 'requested_by_customer' | 'duplicate' | 'fraudulent' | undefined {
  if (!code) return undefined;
  const value = PSP_REASON_CODES[code].stripe;
  return (value ?? undefined) as 'requested_by_customer' | 'duplicate' | 'fraudulent' | undefined;
}

/**
 * Stripe's `decline_code` → the message a Settle client sees. Stripe's own text is never passed
 * on (it may change, be localised, or say more than a merchant's customer should read); the code
 * itself is kept as `decline_code`.
 */
export const STRIPE_DECLINE_MESSAGES: Record<string, string> = {
  generic_decline: 'The card was declined.',
  insufficient_funds: 'The card has insufficient funds.',
  expired_card: 'The card has expired.',
  incorrect_cvc: 'The card\'s security code is incorrect.',
  lost_card: 'The card was declined.',
  stolen_card: 'The card was declined.',
  fraudulent: 'The card was declined.',
  card_velocity_exceeded: 'The card was declined: too many attempts.',
  processing_error: 'The card could not be processed.',
};
export const DEFAULT_DECLINE_MESSAGE = 'The card was declined.';

/** Stripe's refund `failure_reason` → Settle's failure code and message. */
export const STRIPE_REFUND_FAILURES: Record<string, { code: string; message: string }> = {
  lost_or_stolen_card: { code: 'card_lost_or_stolen', message: 'The card was reported lost or stolen; the refund could not be sent.' },
  expired_or_canceled_card: { code: 'card_expired_or_canceled', message: 'The card has expired or was canceled; the refund could not be sent.' },
  charge_for_pending_refund_disputed: { code: 'payment_disputed', message: 'The payment was disputed while the refund was pending.' },
  insufficient_funds: { code: 'insufficient_funds', message: 'The account had insufficient funds for the refund.' },
  declined: { code: 'refund_declined', message: 'The card issuer declined the refund.' },
  merchant_request: { code: 'refund_canceled', message: 'The refund was canceled.' },
};
export const DEFAULT_REFUND_FAILURE = { code: 'refund_failed', message: 'The payment service provider reported the refund as failed.' };

/** A definite refusal by Stripe (`StripeInvalidRequestError` and friends), by Stripe's `code`,
 *  as Settle's code and message. Unlisted codes get the default of the operation. */
export const STRIPE_REFUSALS: Record<string, { code: string; message: string }> = {
  resource_missing: { code: 'payment_not_found', message: 'The payment service provider does not know this payment.' },
  payment_intent_unexpected_state: { code: 'payment_unexpected_state', message: 'The payment service provider refused: the payment is not in a state that allows it.' },
  charge_already_refunded: { code: 'amount_exceeds_refundable', message: 'The payment service provider refused: the payment is already fully refunded.' },
  amount_too_large: { code: 'amount_too_large', message: 'The payment service provider refused the amount as too large.' },
  amount_too_small: { code: 'amount_too_small', message: 'The payment service provider refused the amount as too small.' },
  charge_disputed: { code: 'payment_disputed', message: 'The payment service provider refused: the payment is disputed.' },
  idempotency_key_in_use: { code: 'idempotency_conflict', message: 'The payment service provider refused a request that differs from the first one under its key.' },
};
export const DEFAULT_REFUSAL = { code: 'psp_refused', message: 'The payment service provider refused the request.' };
