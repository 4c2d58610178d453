/** ElasticPay's objects, rendered from the native refund (shared by its routes and its webhook dialect). */
import type { PaymentView } from '../../../modules/payments/payments.service.js';
import type { RefundView } from '../../../modules/refunds/refunds.service.js';

/**
 * The answer to a refund request. "Full" when the refund leaves nothing to refund on the payment
 * (whether or not `amount_cents` was sent), "Partial" otherwise.
 */
export function renderElasticPayRefund(r: RefundView) {
  const money = `${r.amount} ${r.currency}`;
  const kind = r.payment.amount_refundable === 0 ? 'Full' : 'Partial';
  const message = r.status === 'succeeded'
    ? `${kind} refund of ${money} processed`
    : r.status === 'pending'
      ? `${kind} refund of ${money} submitted, awaiting confirmation`
      : `Refund of ${money} failed: ${r.failure_message ?? 'rejected by the PSP'}`;
  return {
    success: r.status !== 'failed',
    status: r.status,
    transaction_id: r.payment_id,
    refund_id: r.id,
    message,
    amount_cents: r.amount,
    currency: r.currency,
  };
}

/** A refund as listed under its payment intent. */
export function renderElasticPayRefundItem(r: RefundView) {
  return {
    refund_id: r.id,
    transaction_id: r.payment_id,
    status: r.status,
    amount_cents: r.amount,
    currency: r.currency,
    reason: r.reason,
    created_at: r.created_at,
  };
}

/**
 * A payment intent, as ElasticPay's `payment_intent.*` webhook events carry it. A partially
 * refunded payment stays `succeeded` (ElasticPay's rule); a fully refunded one is `refunded`.
 */
export function renderElasticPayPaymentIntent(p: PaymentView) {
  return {
    id: p.id,
    object: 'payment_intent' as const,
    status: p.status === 'partially_refunded' ? 'succeeded' : p.status,
    amount_cents: p.amount,
    amount_refunded_cents: p.amount_refunded,
    currency: p.currency,
    refunds: p.transactions
      .filter((t) => t.type === 'refund')
      .map((t) => ({ refund_id: t.refund_id, status: t.status, amount_cents: t.amount, currency: p.currency, created_at: t.created_at })),
  };
}
