/**
 * The simulated PSP itself: its payments, refunds, idempotency records and the events it emits,
 * all in memory. It is the PSP's "database": the in-process connector calls it directly and the
 * psp-sim HTTP server wraps it. Every method is synchronous, so a call is atomic with respect to
 * any other (one JavaScript thread), which is what lets the idempotency rules below hold under
 * concurrent HTTP retries without locks.
 *
 * Idempotency: the first call with a key fixes the answer for that key (per account and per
 * operation). A repeat returns the current state of what the first call did — never a second
 * effect, even when the repeat carries different parameters (as real PSPs do for retries).
 */
import type { ActionResult, AuthorizeRequest, AuthorizeResult, CaptureResult, RefundResult } from '../connectors/connector.js';
import { randomString } from '../lib/ids.js';
import {
  newSandboxEventId,
  type SandboxRefundStatus,
  type SandboxWebhookEvent,
  type SandboxWireRefund,
} from '../connectors/sandbox/sandbox-webhook.js';

export const SANDBOX_TEST_TOKENS = [
  'pm_card_visa',
  'pm_card_mastercard',
  'pm_card_declined',
  'pm_card_refund_fails',
  'pm_card_refund_pending',
  'pm_card_refund_reverses',
  'pm_card_declined_insufficient_funds',
  'pm_card_declined_expired_card',
  'pm_card_declined_fraudulent',
] as const;
export type SandboxTestToken = (typeof SANDBOX_TEST_TOKENS)[number];

/**
 * The declining cards and the decline code each answers with (Stripe's `decline_code` names; the
 * plain `pm_card_declined` keeps its historical `card_declined`), and the PSP's message for it. A
 * fraud decline does not tell the customer why, as issuers do not.
 */
export const SANDBOX_DECLINES: Readonly<Record<string, { code: string; message: string }>> = {
  pm_card_declined: { code: 'card_declined', message: 'Your card was declined.' },
  pm_card_declined_insufficient_funds: { code: 'insufficient_funds', message: 'Your card has insufficient funds.' },
  pm_card_declined_expired_card: { code: 'expired_card', message: 'Your card has expired.' },
  pm_card_declined_fraudulent: { code: 'fraudulent', message: 'Your card was declined.' },
};

/** How long a `pm_card_refund_pending` (or forced-pending) refund stays pending by default. */
export const DEFAULT_PENDING_DELAY_MS = 2000;

const TOKEN_PREFIX = 'pm_card_';
const PAYMENT_REF_RE = /^sbx_pay_(\d{1,15})_([A-Z]{3})_([a-z_]+)_([0-9A-Za-z]+)$/;

/** A definite refusal of an operator action (unknown refund, over-refund from the dashboard, …). */
export class SandboxPspError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SandboxPspError';
  }
}

export interface SandboxPspOptions {
  /** Clock in epoch milliseconds. Default `Date.now`. */
  now?: () => number;
  /** Pending delay when a call does not give one. Default `DEFAULT_PENDING_DELAY_MS` (2000). */
  defaultPendingDelayMs?: number;
  /**
   * How many payments it remembers (default: all). Past that, the payment used least recently
   * is forgotten with its refunds and idempotency keys, as after a restart (see `ensurePayment`),
   * unless a refund of it is still pending or due to be reversed. Bounds the memory of a PSP that
   * lives in a long-running process.
   */
  maxPayments?: number;
}

export interface SandboxAuthorizeInput extends Omit<AuthorizeRequest, 'reference'> {
  /** The gateway's payment id. Default null. */
  reference?: string | null;
  /** The connector account acting; scopes idempotency keys and owns the payment. Default `''`. */
  accountId?: string;
}

export interface SandboxCaptureInput {
  connectorRef: string;
  amount: number;
  /** Checked against the payment's currency when given. */
  currency?: string;
  idempotencyKey: string;
  accountId?: string;
}

export interface SandboxCancelInput {
  connectorRef: string;
  idempotencyKey: string;
  accountId?: string;
}

export interface SandboxRefundInput {
  paymentRef: string;
  amount: number;
  /** Checked against the payment's currency when given. */
  currency?: string;
  reason?: string | null;
  idempotencyKey: string;
  /** The gateway's refund id, echoed in webhooks. Default null. */
  reference?: string | null;
  accountId?: string;
  /** How long a pending refund stays pending. Default: the PSP's `defaultPendingDelayMs`. */
  pendingDelayMs?: number;
  /** Accept the refund as pending whatever the card (the sim's `force_pending` fault). Default false. */
  forcePending?: boolean;
}

export interface SandboxRefundStatusInput {
  connectorRef?: string | null;
  paymentRef: string;
  idempotencyKey: string;
  accountId?: string;
}

export type SandboxPaymentStatus = 'authorized' | 'captured' | 'canceled' | 'declined';

/** A payment as the PSP shows it (also the psp-sim's JSON payment object). */
export interface SandboxPaymentView {
  object: 'payment';
  id: string;
  amount: number;
  currency: string;
  status: SandboxPaymentStatus;
  amount_captured: number;
  payment_method: SandboxTestToken;
  reference: string | null;
  /** True when rebuilt from its self-describing ref after the PSP lost its memory. */
  reconstructed: boolean;
  /** Unix seconds. */
  created: number;
}

/** A refund as the PSP shows it (also the psp-sim's JSON refund object). */
export interface SandboxRefundView {
  object: 'refund';
  id: string;
  payment_ref: string;
  amount: number;
  currency: string;
  status: SandboxRefundStatus;
  reason: string | null;
  reference: string | null;
  idempotency_key: string | null;
  failure_code: string | null;
  failure_message: string | null;
  created: number;
}

/** `GET /v1/payments/:ref` of the psp-sim: what the PSP did for one payment. */
export interface SandboxPaymentStateView {
  object: 'payment_state';
  payment_ref: string;
  /** `unknown`: the PSP lost (or never had) this payment's history; `not_found`: not its ref. */
  status: SandboxPaymentStatus | 'unknown' | 'not_found';
  amount_captured: number | null;
  /** Sum of succeeded refunds. */
  amount_refunded: number | null;
  /** Every refund in creation order, failed ones included. */
  refunds: SandboxWireRefund[] | null;
}

export interface SandboxPaymentTotals {
  payment_ref: string;
  amount: number;
  currency: string;
  status: SandboxPaymentStatus;
  amount_captured: number;
  /** Sum of succeeded refunds (what the PSP reports as refunded). */
  amount_refunded: number;
  refunds: Array<{
    refund_ref: string;
    amount: number;
    status: SandboxRefundStatus;
    reference: string | null;
    idempotency_key: string | null;
  }>;
}

export interface SandboxPspStats {
  /** Refund API calls, replays included. */
  refund_calls: number;
  /** Refund objects created (API and dashboard). */
  refunds_created: number;
  /** Extra refunds created under an idempotency key that already had one: 0 unless the PSP has a bug. */
  duplicate_applications: number;
}

/** Called synchronously for every event; `accountId` is the owner of the payment ('' if unknown). */
export type SandboxEventListener = (event: SandboxWebhookEvent, accountId: string) => void;

interface PaymentRecord {
  ref: string;
  accountId: string;
  reference: string | null;
  token: SandboxTestToken;
  amount: number;
  currency: string;
  status: SandboxPaymentStatus;
  amountCaptured: number;
  reconstructed: boolean;
  createdMs: number;
  refunds: RefundRecord[];
  /** Its entries in the idempotency maps (authorizations, captures, actions, refundKeys,
   *  applications), forgotten with it. */
  keys: string[];
}

interface RefundRecord {
  ref: string;
  paymentRef: string;
  amount: number;
  currency: string;
  reason: string | null;
  reference: string | null;
  idempotencyKey: string | null;
  status: SandboxRefundStatus;
  failureCode: string | null;
  failureMessage: string | null;
  createdMs: number;
  /** When a pending refund becomes succeeded (epoch ms); null when not pending. */
  settleAtMs: number | null;
  /** When a succeeded refund of `pm_card_refund_reverses` is rejected by the bank (epoch ms). */
  reverseAtMs: number | null;
}

interface Rejection {
  code: string;
  message: string;
}

/** What the first refund call under a key did: created a refund, or was refused outright. */
type KeyedRefund = { paymentRef: string } & ({ refundRef: string } | { rejection: Rejection });

export class SandboxPsp {
  private readonly now: () => number;
  private readonly defaultPendingDelayMs: number;
  private readonly payments = new Map<string, PaymentRecord>();
  private readonly refunds = new Map<string, RefundRecord>();
  private readonly authorizations = new Map<string, AuthorizeResult>();
  private readonly actions = new Map<string, ActionResult>();
  private readonly captures = new Map<string, CaptureResult>();
  private readonly refundKeys = new Map<string, KeyedRefund>();
  /** Refunds created per scoped key; a value above 1 would be a double refund. */
  private readonly applications = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly listeners = new Set<SandboxEventListener>();
  private refundCalls = 0;
  private refundsCreated = 0;

  private readonly maxPayments: number;
  private forgotten = 0;
  /** Idempotency entries of calls for payments it did not know, oldest first. */
  private readonly orphanKeys: string[] = [];

  constructor(opts: SandboxPspOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.defaultPendingDelayMs = opts.defaultPendingDelayMs ?? DEFAULT_PENDING_DELAY_MS;
    this.maxPayments = opts.maxPayments ?? Infinity;
    if (!(this.maxPayments >= 1)) throw new Error('SandboxPsp maxPayments must be at least 1');
  }

  /** Payments remembered now, and forgotten to stay within `maxPayments`. */
  memory(): { payments: number; refunds: number; forgotten: number } {
    return { payments: this.payments.size, refunds: this.refunds.size, forgotten: this.forgotten };
  }

  // ---------------------------------------------------------------- PSP API (what the gateway calls)

  authorize(input: SandboxAuthorizeInput): AuthorizeResult {
    const accountId = input.accountId ?? '';
    const key = scopedKey('authorize', accountId, input.idempotencyKey);
    let result = this.authorizations.get(key);
    if (!result) {
      result = this.doAuthorize(input, accountId);
      this.authorizations.set(key, result);
      this.keyOf(result.connectorRef ?? '', key);
    }
    return { ...result };
  }

  /** A repeat under the same key answers with what the first call captured, whatever its amount. */
  capture(input: SandboxCaptureInput): CaptureResult {
    const accountId = input.accountId ?? '';
    const key = scopedKey('capture', accountId, input.idempotencyKey);
    let result = this.captures.get(key);
    if (!result) {
      result = this.doCapture(input, accountId);
      this.captures.set(key, result);
      this.keyOf(input.connectorRef, key);
    }
    return { ...result };
  }

  cancel(input: SandboxCancelInput): ActionResult {
    const accountId = input.accountId ?? '';
    return this.once(scopedKey('cancel', accountId, input.idempotencyKey), input.connectorRef, () => this.doCancel(input, accountId));
  }

  refund(input: SandboxRefundInput): RefundResult {
    this.refundCalls += 1;
    if (typeof input.idempotencyKey !== 'string' || input.idempotencyKey.length === 0) {
      // Not stored: without a key there is nothing to replay.
      return { status: 'failed', code: 'invalid_request', message: 'An idempotency key is required.' };
    }
    const accountId = input.accountId ?? '';
    const key = scopedKey('refund', accountId, input.idempotencyKey);
    let keyed = this.refundKeys.get(key);
    if (!keyed) {
      const created = this.createRefund({
        paymentRef: input.paymentRef,
        accountId,
        amount: input.amount,
        currency: input.currency,
        reason: input.reason ?? null,
        reference: input.reference ?? null,
        idempotencyKey: input.idempotencyKey,
        pendingDelayMs: input.pendingDelayMs,
        forcePending: input.forcePending ?? false,
      });
      if ('refund' in created) {
        keyed = { paymentRef: input.paymentRef, refundRef: created.refund.ref };
        this.applications.set(key, (this.applications.get(key) ?? 0) + 1);
      } else {
        keyed = { paymentRef: input.paymentRef, rejection: created.rejection };
      }
      this.refundKeys.set(key, keyed);
      this.keyOf(input.paymentRef, key);
    }
    return this.keyedResult(keyed);
  }

  /**
   * Where a refund stands: by the PSP's refund ref when the caller has it, else by idempotency
   * key. Either way it must belong to `paymentRef`. Unknown → failed `refund_not_found` (the PSP
   * has no refund under that key, so the gateway may conclude nothing was refunded).
   */
  refundStatus(input: SandboxRefundStatusInput): RefundResult {
    if (input.connectorRef) {
      const refund = this.refunds.get(input.connectorRef);
      if (refund && refund.paymentRef === input.paymentRef) return this.resultOf(this.settleIfDue(refund));
    }
    const keyed = this.refundKeys.get(scopedKey('refund', input.accountId ?? '', input.idempotencyKey));
    if (keyed && keyed.paymentRef === input.paymentRef) return this.keyedResult(keyed);
    return {
      status: 'failed',
      code: 'refund_not_found',
      message: `No refund under idempotency key ${input.idempotencyKey} for payment ${input.paymentRef}.`,
    };
  }

  /**
   * The payment behind `ref`, rebuilding it from the ref when this PSP does not know it.
   *
   * Why: the in-process sandbox lives in the gateway's memory while the gateway's database
   * survives restarts. Without this, every refund of a payment made before a restart would fail
   * with `payment_not_found`, which no real PSP would do. The ref encodes amount, currency and card
   * (`sbx_pay_<amount>_<currency>_<token suffix>_<random>`), so an unknown payment is rebuilt as
   * captured in full with no refunds.
   *
   * Trade-off: what happened before the restart is lost. A partially captured payment comes back
   * fully captured, an uncaptured one comes back captured (so a capture or cancel of a rebuilt
   * payment with no refunds is accepted), a canceled one comes back captured, and refunds made
   * before the restart are forgotten — the PSP would then accept refunds beyond what is really
   * left. The gateway's own ledger still caps refunds at the captured amount, and no real PSP
   * behaves like this, so it is acceptable for a sandbox only.
   */
  ensurePayment(ref: string, accountId?: string): SandboxPaymentView | undefined {
    const payment = this.paymentRecord(ref, accountId ?? '');
    return payment && paymentView(payment);
  }

  /** The payment as stored, without rebuilding an unknown ref. */
  paymentView(ref: string): SandboxPaymentView | undefined {
    const payment = this.payments.get(ref);
    return payment && paymentView(payment);
  }

  /**
   * What this PSP knows of one payment, for reconciliation. A payment it does not remember, or
   * one rebuilt from its ref after the PSP lost its memory, is `unknown` (its history is gone),
   * never guessed; a ref that is not one of this PSP's is `not_found`.
   */
  paymentState(ref: string, accountId?: string): SandboxPaymentStateView {
    const payment = this.payments.get(ref);
    const foreign = payment !== undefined && !!accountId && !!payment.accountId && payment.accountId !== accountId;
    if (!payment || foreign || payment.reconstructed) {
      const knowable = !foreign && (payment !== undefined || PAYMENT_REF_RE.test(ref));
      return {
        object: 'payment_state',
        payment_ref: ref,
        status: knowable ? 'unknown' : 'not_found',
        amount_captured: null,
        amount_refunded: null,
        refunds: null,
      };
    }
    payment.refunds.forEach((r) => this.settleIfDue(r));
    return {
      object: 'payment_state',
      payment_ref: payment.ref,
      status: payment.status,
      amount_captured: payment.amountCaptured,
      amount_refunded: refundedTotal(payment),
      refunds: payment.refunds.map(wireRefund),
    };
  }

  refundView(ref: string): SandboxRefundView | undefined {
    const refund = this.refunds.get(ref);
    return refund && refundView(this.settleIfDue(refund));
  }

  // ------------------------------------------------ operator actions (dashboard, bank, test helpers)

  /** A refund made in the PSP's own dashboard: no idempotency key, no gateway `reference`. The
   *  default amount is everything still refundable. Throws `SandboxPspError` when refused. */
  dashboardRefund(
    paymentRef: string,
    amount?: number,
    opts: { pendingDelayMs?: number; forcePending?: boolean } = {},
  ): SandboxRefundView {
    const payment = this.paymentRecord(paymentRef, '');
    if (!payment) throw new SandboxPspError('payment_not_found', `No such payment: ${paymentRef}.`);
    const created = this.createRefund({
      paymentRef,
      accountId: payment.accountId,
      amount: amount ?? refundable(payment),
      currency: undefined,
      reason: null,
      reference: null,
      idempotencyKey: null,
      pendingDelayMs: opts.pendingDelayMs,
      forcePending: opts.forcePending ?? false,
    });
    if ('rejection' in created) throw new SandboxPspError(created.rejection.code, created.rejection.message);
    return refundView(created.refund);
  }

  /** A capture made in the PSP's own dashboard, which the gateway never hears of (the sandbox
   *  sends no capture webhook): the whole authorization by default. Throws `SandboxPspError` when
   *  refused. */
  dashboardCapture(paymentRef: string, amount?: number): SandboxPaymentView {
    const payment = this.payments.get(paymentRef);
    if (!payment) throw new SandboxPspError('payment_not_found', `No such payment: ${paymentRef}.`);
    const result = this.doCapture({ connectorRef: paymentRef, amount: amount ?? payment.amount, idempotencyKey: '' }, payment.accountId);
    if (result.outcome === 'rejected') throw new SandboxPspError(result.code, result.message);
    return paymentView(payment);
  }

  /** The card scheme rejects a capture the PSP had accepted (Adyen's CAPTURE_FAILED): the payment
   *  is authorized again with nothing captured, so it can be captured anew. Refused (throws
   *  `SandboxPspError`) for a payment that is not captured or whose money a refund holds. */
  failCapture(paymentRef: string): SandboxPaymentView {
    const payment = this.payments.get(paymentRef);
    if (!payment) throw new SandboxPspError('payment_not_found', `No such payment: ${paymentRef}.`);
    payment.refunds.forEach((r) => this.settleIfDue(r));
    if (payment.status !== 'captured') throw new SandboxPspError('payment_not_captured', `Payment ${paymentRef} is ${payment.status}, not captured.`);
    if (payment.refunds.some((r) => r.status !== 'failed')) {
      throw new SandboxPspError('payment_has_refunds', `Payment ${paymentRef} has refunds; its capture cannot fail now.`);
    }
    payment.status = 'authorized';
    payment.amountCaptured = 0;
    return paymentView(payment);
  }

  /** The bank rejects a refund after the fact: succeeded or pending → failed, which makes its
   *  amount refundable again at the PSP. A refund that already failed is returned unchanged. */
  failRefund(refundRef: string, code = 'bank_rejected', message?: string): SandboxRefundView {
    const refund = this.settleIfDue(this.refundRecord(refundRef));
    if (refund.status !== 'failed') {
      this.transition(refund, 'failed', { code, message: message ?? 'The bank rejected the refund after accepting it.' });
    }
    return refundView(refund);
  }

  /** Forces a pending refund to succeed now. Succeeded → unchanged; failed → `refund_failed` error. */
  completeRefund(refundRef: string): SandboxRefundView {
    const refund = this.refundRecord(refundRef);
    if (refund.status === 'failed') throw new SandboxPspError('refund_failed', `Refund ${refundRef} has failed and cannot complete.`);
    if (refund.status === 'pending') this.transition(refund, 'succeeded');
    return refundView(refund);
  }

  /** Completes every pending refund now (of one payment, or all). Returns how many changed. */
  settlePending(paymentRef?: string): number {
    let count = 0;
    for (const refund of this.refunds.values()) {
      if (refund.status === 'pending' && (paymentRef === undefined || refund.paymentRef === paymentRef)) {
        this.transition(refund, 'succeeded');
        count += 1;
      }
    }
    return count;
  }

  totals(paymentRef: string): SandboxPaymentTotals {
    const payment = this.paymentRecord(paymentRef, '');
    if (!payment) throw new SandboxPspError('payment_not_found', `No such payment: ${paymentRef}.`);
    payment.refunds.forEach((r) => this.settleIfDue(r));
    return {
      payment_ref: payment.ref,
      amount: payment.amount,
      currency: payment.currency,
      status: payment.status,
      amount_captured: payment.amountCaptured,
      amount_refunded: refundedTotal(payment),
      refunds: payment.refunds.map((r) => ({
        refund_ref: r.ref,
        amount: r.amount,
        status: r.status,
        reference: r.reference,
        idempotency_key: r.idempotencyKey,
      })),
    };
  }

  stats(): SandboxPspStats {
    let duplicates = 0;
    for (const n of this.applications.values()) duplicates += Math.max(0, n - 1);
    return { refund_calls: this.refundCalls, refunds_created: this.refundsCreated, duplicate_applications: duplicates };
  }

  /** Subscribes to PSP events; returns the unsubscribe function. */
  onEvent(listener: SandboxEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops the pending-refund timers (they are unref'd, so this is only needed for tidy tests). */
  dispose(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  // ------------------------------------------------------------------------------------ internals

  private doAuthorize(input: SandboxAuthorizeInput, accountId: string): AuthorizeResult {
    if (!isPositiveAmount(input.amount)) {
      return { outcome: 'declined', code: 'invalid_amount', message: 'amount must be a positive integer in minor units.' };
    }
    const currency = normalizeCurrency(input.currency);
    if (!currency) return { outcome: 'declined', code: 'invalid_currency', message: `Unsupported currency: ${input.currency}.` };
    if (!isTestToken(input.paymentMethod)) {
      return {
        outcome: 'declined',
        code: 'invalid_payment_method',
        message: `No such payment method: ${input.paymentMethod}. Use one of ${SANDBOX_TEST_TOKENS.join(', ')}.`,
      };
    }
    const token = input.paymentMethod;
    const ref = `sbx_pay_${input.amount}_${currency}_${token.slice(TOKEN_PREFIX.length)}_${randomString(12)}`;
    const decline = SANDBOX_DECLINES[token];
    const declined = decline !== undefined;
    const payment: PaymentRecord = {
      ref,
      accountId,
      reference: input.reference ?? null,
      token,
      amount: input.amount,
      currency,
      status: declined ? 'declined' : input.capture ? 'captured' : 'authorized',
      amountCaptured: !declined && input.capture ? input.amount : 0,
      reconstructed: false,
      createdMs: this.now(),
      refunds: [],
      keys: [],
    };
    this.remember(payment);
    if (decline) return { outcome: 'declined', connectorRef: ref, code: decline.code, message: decline.message };
    return { outcome: input.capture ? 'captured' : 'authorized', connectorRef: ref, amount: payment.amount };
  }

  private doCapture(input: SandboxCaptureInput, accountId: string): CaptureResult {
    const payment = this.paymentRecord(input.connectorRef, accountId);
    if (!payment) return rejected('payment_not_found', `No such payment: ${input.connectorRef}.`);
    this.reopenIfRebuilt(payment);
    if (payment.status !== 'authorized') {
      const code = payment.status === 'captured' ? 'payment_already_captured' : `payment_${payment.status}`;
      return rejected(code, `Payment ${payment.ref} is ${payment.status} and cannot be captured.`);
    }
    if (!isPositiveAmount(input.amount)) return rejected('invalid_amount', 'amount must be a positive integer in minor units.');
    if (input.amount > payment.amount) {
      return rejected('amount_too_large', `Capture amount ${input.amount} exceeds the authorized amount ${payment.amount}.`);
    }
    if (input.currency !== undefined && normalizeCurrency(input.currency) !== payment.currency) {
      return rejected('currency_mismatch', `Payment ${payment.ref} is in ${payment.currency}.`);
    }
    // A partial capture releases the rest of the authorization: nothing more can be captured.
    payment.status = 'captured';
    payment.amountCaptured = input.amount;
    return { outcome: 'succeeded', connectorRef: payment.ref, amountCaptured: payment.amountCaptured };
  }

  private doCancel(input: SandboxCancelInput, accountId: string): ActionResult {
    const payment = this.paymentRecord(input.connectorRef, accountId);
    if (!payment) return rejected('payment_not_found', `No such payment: ${input.connectorRef}.`);
    this.reopenIfRebuilt(payment);
    if (payment.status === 'authorized') payment.status = 'canceled';
    if (payment.status === 'canceled') return { outcome: 'succeeded', connectorRef: payment.ref };
    return rejected(
      payment.status === 'captured' ? 'payment_already_captured' : 'payment_declined',
      `Payment ${payment.ref} is ${payment.status} and cannot be canceled.`,
    );
  }

  /** See `ensurePayment`: a rebuilt payment we know nothing about may really be uncaptured. */
  private reopenIfRebuilt(payment: PaymentRecord): void {
    if (payment.reconstructed && payment.status === 'captured' && payment.refunds.length === 0) {
      payment.status = 'authorized';
      payment.amountCaptured = 0;
      payment.reconstructed = false;
    }
  }

  private createRefund(p: {
    paymentRef: string;
    accountId: string;
    amount: number;
    currency: string | undefined;
    reason: string | null;
    reference: string | null;
    idempotencyKey: string | null;
    pendingDelayMs: number | undefined;
    forcePending: boolean;
  }): { refund: RefundRecord } | { rejection: Rejection } {
    const payment = this.paymentRecord(p.paymentRef, p.accountId);
    if (!payment) return { rejection: { code: 'payment_not_found', message: `No such payment: ${p.paymentRef}.` } };
    payment.refunds.forEach((r) => this.settleIfDue(r));
    if (!isPositiveAmount(p.amount)) {
      return { rejection: { code: 'invalid_amount', message: 'amount must be a positive integer in minor units.' } };
    }
    if (p.currency !== undefined && normalizeCurrency(p.currency) !== payment.currency) {
      return { rejection: { code: 'currency_mismatch', message: `Payment ${payment.ref} is in ${payment.currency}.` } };
    }
    if (payment.status !== 'captured') {
      return {
        rejection: {
          code: 'payment_not_refundable',
          message: `Payment ${payment.ref} is ${payment.status}; only captured payments can be refunded.`,
        },
      };
    }
    const available = refundable(payment);
    if (p.amount > available) {
      return {
        rejection: {
          code: 'amount_exceeds_refundable',
          message: `Refund amount ${p.amount} exceeds the amount still refundable at the PSP (${available}).`,
        },
      };
    }

    const now = this.now();
    const pending = payment.token === 'pm_card_refund_pending' || p.forcePending;
    const fails = payment.token === 'pm_card_refund_fails';
    // succeeds at once, then the bank rejects it after the pending delay
    const reverses = !fails && !pending && payment.token === 'pm_card_refund_reverses';
    const refund: RefundRecord = {
      ref: `sbx_re_${randomString(16)}`,
      paymentRef: payment.ref,
      amount: p.amount,
      currency: payment.currency,
      reason: p.reason,
      reference: p.reference,
      idempotencyKey: p.idempotencyKey,
      status: fails ? 'failed' : pending ? 'pending' : 'succeeded',
      failureCode: fails ? 'refund_rejected' : null,
      failureMessage: fails ? 'The card issuer rejected the refund.' : null,
      createdMs: now,
      settleAtMs: !fails && pending ? now + pendingDelay(p.pendingDelayMs, this.defaultPendingDelayMs) : null,
      reverseAtMs: reverses ? now + pendingDelay(p.pendingDelayMs, this.defaultPendingDelayMs) : null,
    };
    payment.refunds.push(refund);
    this.refunds.set(refund.ref, refund);
    this.refundsCreated += 1;
    if (refund.status === 'pending') this.scheduleSettle(refund);
    if (refund.reverseAtMs !== null) this.scheduleSettle(refund);
    // A refund that succeeds at once changes the payment's cumulative total; a pending or failed
    // one is reported on its own so the gateway learns about it (dashboard refunds included).
    // Built only for a listener: payment.refunded lists every refund of the payment, so building it
    // for nobody made each refund of a much-refunded payment cost more than the one before.
    if (this.listeners.size > 0) this.emit(payment, refund.status === 'succeeded' ? this.paymentRefundedEvent(payment) : this.refundUpdatedEvent(refund));
    return { refund };
  }

  private transition(refund: RefundRecord, to: 'succeeded' | 'failed', failure?: Rejection): void {
    refund.status = to;
    refund.settleAtMs = null;
    refund.reverseAtMs = null;
    refund.failureCode = failure?.code ?? null;
    refund.failureMessage = failure?.message ?? null;
    const timer = this.timers.get(refund.ref);
    if (timer) clearTimeout(timer);
    this.timers.delete(refund.ref);
    const payment = this.payments.get(refund.paymentRef);
    if (!payment) return;
    if (this.listeners.size === 0) return;
    this.emit(payment, this.refundUpdatedEvent(refund));
    if (to === 'succeeded') this.emit(payment, this.paymentRefundedEvent(payment));
  }

  /**
   * Pending refunds settle by timer (so webhooks go out on time) and also lazily here, from the
   * timestamps, so a status read after the delay sees `succeeded` whether or not a timer ran.
   */
  private settleIfDue(refund: RefundRecord): RefundRecord {
    if (refund.status === 'pending' && refund.settleAtMs !== null && this.now() >= refund.settleAtMs) {
      this.transition(refund, 'succeeded');
    }
    if (refund.status === 'succeeded' && refund.reverseAtMs !== null && this.now() >= refund.reverseAtMs) this.reverse(refund);
    return refund;
  }

  private reverse(refund: RefundRecord): void {
    this.transition(refund, 'failed', { code: 'bank_rejected', message: 'The bank rejected the refund after accepting it.' });
  }

  /** Arms the timer of a pending refund's success, or of a reversing refund's rejection. */
  private scheduleSettle(refund: RefundRecord): void {
    const dueAt = refund.status === 'pending' ? refund.settleAtMs : refund.status === 'succeeded' ? refund.reverseAtMs : null;
    if (dueAt === null) return;
    // Timers may fire a millisecond early against the wall clock: re-arm until really due.
    const timer = setTimeout(() => {
      this.timers.delete(refund.ref);
      if (refund.status === 'pending' && refund.settleAtMs !== null) {
        if (this.now() >= refund.settleAtMs) this.transition(refund, 'succeeded');
        else this.scheduleSettle(refund);
      } else if (refund.status === 'succeeded' && refund.reverseAtMs !== null) {
        if (this.now() >= refund.reverseAtMs) this.reverse(refund);
        else this.scheduleSettle(refund);
      }
    }, Math.max(1, dueAt - this.now()));
    timer.unref();
    this.timers.set(refund.ref, timer);
  }

  private paymentRecord(ref: string, accountId: string): PaymentRecord | undefined {
    let payment = this.payments.get(ref);
    if (!payment) {
      payment = rebuildPayment(ref, accountId, this.now());
      if (!payment) return undefined;
      this.remember(payment);
    } else if (this.maxPayments !== Infinity) {
      // used now: last to be forgotten (a Map iterates in insertion order)
      this.payments.delete(ref);
      this.payments.set(ref, payment);
    }
    if (!payment.accountId) payment.accountId = accountId;
    // Another account's payment does not exist for this caller, as at any real PSP.
    if (accountId && payment.accountId !== accountId) return undefined;
    return payment;
  }

  private refundRecord(ref: string): RefundRecord {
    const refund = this.refunds.get(ref);
    if (!refund) throw new SandboxPspError('refund_not_found', `No such refund: ${ref}.`);
    return refund;
  }

  private once(key: string, paymentRef: string, act: () => ActionResult): ActionResult {
    let result = this.actions.get(key);
    if (!result) {
      result = act();
      this.actions.set(key, result);
      this.keyOf(paymentRef, key);
    }
    return { ...result };
  }

  /** Files an idempotency entry under its payment, to be forgotten with it. */
  private keyOf(paymentRef: string, key: string): void {
    if (this.maxPayments === Infinity) return;
    const payment = this.payments.get(paymentRef);
    if (payment) payment.keys.push(key);
    // an entry of a payment this PSP never knew (a rejected call): it goes with the oldest ones
    else this.orphanKeys.push(key);
  }

  /** Adds a payment, then forgets the least recently used ones past `maxPayments`. */
  private remember(payment: PaymentRecord): void {
    this.payments.set(payment.ref, payment);
    if (this.payments.size <= this.maxPayments) return;
    // A payment with a refund still to settle or to be reversed has a timer and a gateway waiting
    // for its outcome: it is kept, and the next one forgotten instead. The look-ahead is bounded;
    // a PSP full of such payments stays over its bound until they settle.
    let looked = 0;
    for (const [ref, old] of this.payments) {
      if (this.payments.size <= this.maxPayments || looked++ >= 64) break;
      if (old === payment || old.refunds.some((r) => r.settleAtMs !== null || r.reverseAtMs !== null || this.timers.has(r.ref))) continue;
      this.forget(ref, old);
    }
    while (this.orphanKeys.length > this.maxPayments) this.forgetKey(this.orphanKeys.shift()!);
  }

  private forget(ref: string, payment: PaymentRecord): void {
    this.payments.delete(ref);
    for (const r of payment.refunds) this.refunds.delete(r.ref);
    for (const key of payment.keys) this.forgetKey(key);
    this.forgotten += 1;
  }

  private forgetKey(key: string): void {
    this.authorizations.delete(key);
    this.captures.delete(key);
    this.actions.delete(key);
    this.refundKeys.delete(key);
    this.applications.delete(key);
  }

  private keyedResult(keyed: KeyedRefund): RefundResult {
    if ('rejection' in keyed) return { status: 'failed', ...keyed.rejection };
    return this.resultOf(this.settleIfDue(this.refundRecord(keyed.refundRef)));
  }

  private resultOf(refund: RefundRecord): RefundResult {
    if (refund.status === 'failed') {
      return {
        status: 'failed',
        connectorRef: refund.ref,
        code: refund.failureCode ?? 'refund_failed',
        message: refund.failureMessage ?? 'The refund failed.',
      };
    }
    return { status: refund.status, connectorRef: refund.ref };
  }

  private paymentRefundedEvent(payment: PaymentRecord): SandboxWebhookEvent {
    return {
      id: newSandboxEventId(),
      type: 'payment.refunded',
      created: Math.floor(this.now() / 1000),
      data: { payment_ref: payment.ref, amount_refunded: refundedTotal(payment), refunds: payment.refunds.map(wireRefund) },
    };
  }

  private refundUpdatedEvent(refund: RefundRecord): SandboxWebhookEvent {
    return {
      id: newSandboxEventId(),
      type: 'refund.updated',
      created: Math.floor(this.now() / 1000),
      data: { ...wireRefund(refund), payment_ref: refund.paymentRef },
    };
  }

  private emit(payment: PaymentRecord, event: SandboxWebhookEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event, payment.accountId);
      } catch (err) {
        // The PSP's state has already changed; a listener bug must not turn into a failed call.
        process.emitWarning(`sandbox PSP event listener threw: ${String(err)}`);
      }
    }
  }
}

function rebuildPayment(ref: string, accountId: string, nowMs: number): PaymentRecord | undefined {
  const m = PAYMENT_REF_RE.exec(ref);
  if (!m) return undefined;
  const amount = Number(m[1]);
  const token = `${TOKEN_PREFIX}${m[3]}`;
  if (!isPositiveAmount(amount) || !isTestToken(token)) return undefined;
  const declined = SANDBOX_DECLINES[token] !== undefined;
  return {
    ref,
    accountId,
    reference: null,
    token,
    amount,
    currency: m[2],
    status: declined ? 'declined' : 'captured',
    amountCaptured: declined ? 0 : amount,
    reconstructed: true,
    createdMs: nowMs,
    refunds: [],
    keys: [],
  };
}

function scopedKey(op: string, accountId: string, key: string): string {
  return `${op}\u0000${accountId}\u0000${key}`;
}

function rejected(code: string, message: string): { outcome: 'rejected'; code: string; message: string } {
  return { outcome: 'rejected', code, message };
}

/** Captured minus every refund that has not failed (pending ones hold their amount). */
function refundable(payment: PaymentRecord): number {
  return payment.refunds.reduce((left, r) => (r.status === 'failed' ? left : left - r.amount), payment.amountCaptured);
}

function refundedTotal(payment: PaymentRecord): number {
  return payment.refunds.reduce((sum, r) => (r.status === 'succeeded' ? sum + r.amount : sum), 0);
}

function pendingDelay(requested: number | undefined, fallback: number): number {
  return typeof requested === 'number' && Number.isFinite(requested) && requested >= 0 ? requested : fallback;
}

function isPositiveAmount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function normalizeCurrency(value: unknown): string | undefined {
  return typeof value === 'string' && /^[A-Za-z]{3}$/.test(value) ? value.toUpperCase() : undefined;
}

function isTestToken(value: unknown): value is SandboxTestToken {
  return (SANDBOX_TEST_TOKENS as readonly unknown[]).includes(value);
}

function wireRefund(r: RefundRecord): SandboxWireRefund {
  return {
    refund_ref: r.ref,
    amount: r.amount,
    status: r.status,
    reference: r.reference,
    failure_code: r.failureCode,
    failure_message: r.failureMessage,
  };
}

function paymentView(p: PaymentRecord): SandboxPaymentView {
  return {
    object: 'payment',
    id: p.ref,
    amount: p.amount,
    currency: p.currency,
    status: p.status,
    amount_captured: p.amountCaptured,
    payment_method: p.token,
    reference: p.reference,
    reconstructed: p.reconstructed,
    created: Math.floor(p.createdMs / 1000),
  };
}

function refundView(r: RefundRecord): SandboxRefundView {
  return {
    object: 'refund',
    id: r.ref,
    payment_ref: r.paymentRef,
    amount: r.amount,
    currency: r.currency,
    status: r.status,
    reason: r.reason,
    reference: r.reference,
    idempotency_key: r.idempotencyKey,
    failure_code: r.failureCode,
    failure_message: r.failureMessage,
    created: Math.floor(r.createdMs / 1000),
  };
}
