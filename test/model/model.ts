/**
 * A reference model of payments and refunds: what the gateway must answer and what state it must
 * be in, written as plainly as possible so it can be trusted without tests of its own. The sandbox
 * answers refunds at once, except for `pm_card_refund_pending`: with the connector account's
 * `pending_delay_ms` set far beyond a test run, those refunds stay pending (holding their amount)
 * for the whole run, since no sync worker or webhook runs in the test.
 */

/** Contract section 1: amounts are 1 … 999,999,999,999 minor units. */
export const MAX_AMOUNT = 999_999_999_999;

export const PAYMENT_METHODS = ['pm_card_visa', 'pm_card_refund_fails', 'pm_card_declined', 'pm_card_refund_pending'] as const;
export type PaymentMethod = (typeof PAYMENT_METHODS)[number];
export type CaptureMethod = 'automatic' | 'manual';
export type PaymentStatus = 'requires_capture' | 'succeeded' | 'partially_refunded' | 'refunded' | 'canceled' | 'failed';
export type RefundStatus = 'pending' | 'succeeded' | 'failed';

export interface ModelRefund {
  id: string;
  amount: number;
  status: RefundStatus;
}

export interface ModelPayment {
  id: string;
  amount: number;
  currency: string;
  paymentMethod: PaymentMethod;
  captureMethod: CaptureMethod;
  status: PaymentStatus;
  capturable: number;
  captured: number;
  refunded: number;
  /** Held by pending refunds. */
  pending: number;
  refunds: ModelRefund[];
}

/** The HTTP answer the gateway must give: a status and, for an error, its code. */
export interface Expected {
  status: number;
  code?: string;
}

/** A request sent with an Idempotency-Key, and the first answer it got (what every replay must repeat). */
export interface KeyedRequest {
  key: string;
  paymentId: string;
  url: string;
  /** Exactly what was sent: a JSON body, a raw payload (with its headers), or neither. */
  body?: Record<string, unknown>;
  payload?: string;
  headers?: Record<string, string>;
  first: { status: number; raw: string };
}

/** Contract section 3: which answers are stored for replay (not 400, 401, 429, 5xx). */
export function isStoredStatus(status: number): boolean {
  return status < 400 || [402, 403, 404, 409, 422].includes(status);
}

export function refundable(p: ModelPayment): number {
  return Math.max(0, p.captured - p.refunded - p.pending);
}

export function isRefundable(p: ModelPayment): boolean {
  return p.status === 'succeeded' || p.status === 'partially_refunded';
}

export function expectedCreatePayment(method: PaymentMethod): Expected {
  return method === 'pm_card_declined' ? { status: 402, code: 'card_declined' } : { status: 201 };
}

/** The payment as the gateway must have stored it after `POST /v1/payments`. */
export function createdPayment(
  id: string,
  input: { amount: number; currency: string; paymentMethod: PaymentMethod; captureMethod: CaptureMethod },
): ModelPayment {
  const base = { id, ...input, capturable: 0, captured: 0, refunded: 0, pending: 0, refunds: [] };
  if (input.paymentMethod === 'pm_card_declined') return { ...base, status: 'failed' };
  if (input.captureMethod === 'manual') return { ...base, status: 'requires_capture', capturable: input.amount };
  return { ...base, status: 'succeeded', captured: input.amount };
}

export interface Transition {
  expected: Expected;
  /** The payment after the call (unchanged on an error). */
  next: ModelPayment;
}

/** `POST /v1/payments/{id}/capture` with `amount` (undefined = all that is capturable). */
export function capture(p: ModelPayment, amount: number | undefined): Transition {
  if (amount !== undefined && amount > MAX_AMOUNT) return { expected: { status: 400, code: 'invalid_param' }, next: p };
  if (p.status !== 'requires_capture') return { expected: { status: 409, code: 'not_capturable' }, next: p };
  const toCapture = amount ?? p.capturable;
  if (toCapture > p.capturable) return { expected: { status: 422, code: 'amount_too_large' }, next: p };
  // a partial capture releases the rest
  return { expected: { status: 200 }, next: { ...p, status: 'succeeded', captured: toCapture, capturable: 0 } };
}

export function cancel(p: ModelPayment): Transition {
  if (p.status !== 'requires_capture') return { expected: { status: 409, code: 'not_cancelable' }, next: p };
  return { expected: { status: 200 }, next: { ...p, status: 'canceled', capturable: 0 } };
}

export type RefundPrediction =
  | {
      expected: Expected & { status: 201 };
      amount: number;
      refundStatus: RefundStatus;
      apply(refundId: string): ModelPayment;
    }
  | { expected: Expected; amount?: undefined };

/**
 * A refund of `requested` (undefined or 0 = the whole refundable balance). `pm_card_refund_fails`
 * payments get a failed refund that changes nothing on the payment; `pm_card_refund_pending` ones
 * a pending refund that holds its amount (the payment's status does not move); every other refund
 * succeeds. A balance entirely held by pending refunds leaves nothing to refund: 422, not 409.
 */
export function refund(p: ModelPayment, requested: number | undefined): RefundPrediction {
  // schema validation comes before anything else
  if (requested !== undefined && requested > MAX_AMOUNT) return { expected: { status: 400, code: 'invalid_param' } };
  if (p.status === 'refunded') return { expected: { status: 409, code: 'already_refunded' } };
  if (!isRefundable(p)) return { expected: { status: 409, code: 'not_refundable' } };
  const balance = refundable(p);
  const amount = requested || balance;
  if (amount > balance || amount === 0) return { expected: { status: 422, code: 'amount_too_large' } };
  const refundStatus: RefundStatus =
    p.paymentMethod === 'pm_card_refund_fails' ? 'failed' : p.paymentMethod === 'pm_card_refund_pending' ? 'pending' : 'succeeded';
  return {
    expected: { status: 201 },
    amount,
    refundStatus,
    apply(refundId: string): ModelPayment {
      const refunds = [...p.refunds, { id: refundId, amount, status: refundStatus }];
      if (refundStatus === 'failed') return { ...p, refunds };
      if (refundStatus === 'pending') return { ...p, refunds, pending: p.pending + amount };
      const refunded = p.refunded + amount;
      return { ...p, refunds, refunded, status: refunded >= p.captured ? 'refunded' : 'partially_refunded' };
    },
  };
}

/** The whole system under test, as the model sees it: one merchant's payments and its used keys. */
export class RefundsModel {
  payments: ModelPayment[] = [];
  keyed: KeyedRequest[] = [];
  private keys = 0;

  constructor(private readonly keyPrefix: string) {}

  freshKey(): string {
    this.keys += 1;
    return `${this.keyPrefix}-${this.keys}`;
  }

  replace(next: ModelPayment): void {
    this.payments = this.payments.map((p) => (p.id === next.id ? next : p));
  }
}
