import { ConnectorUnknownOutcomeError, type ActionResult, type AuthorizeResult, type CaptureResult, type Connector, type ConnectorContext, type ConnectorPaymentState } from '../../connectors/connector.js';
import { SANDBOX_TEST_TOKENS } from '../../psp-sim/psp-model.js';
import type { Db, Tx } from '../../db/db.js';
import { AppError, invalidParam } from '../../http/errors.js';
import { decodeCursor, toPage } from '../../http/pagination.js';
import { newId } from '../../lib/ids.js';
import { normalizeCurrency } from '../../lib/money.js';
import type { Logger } from '../../lib/logger.js';
import type { ConnectorAccountRow } from '../connector-accounts/connector-accounts.repository.js';
import { connectorAccountsRepository } from '../connector-accounts/connector-accounts.repository.js';
import type { ConnectorAccountsService } from '../connector-accounts/connector-accounts.service.js';
import { clearingAccount, ledgerRepository, MERCHANT_BALANCE } from '../ledger/ledger.repository.js';
import type { AuthContext } from '../merchants/merchants.service.js';
import { emitEvents, type NewEvent } from '../webhooks/events.repository.js';
import { paymentsRepository as repo, type CaptureTransaction, type PaymentRow, type StoredLineItem, type TransactionView } from './payments.repository.js';

export interface CreatePaymentInput {
  amount: number;
  currency: string;
  payment_method: string;
  capture_method?: 'automatic' | 'manual';
  connector_account?: string;
  order_id?: string;
  customer_id?: string;
  description?: string;
  metadata?: Record<string, string>;
  line_items?: { id?: string; name: string; quantity: number; unit_amount: number }[];
}

/** How many transactions a payment embedded in an event carries (the newest). */
export const EVENT_TRANSACTIONS_LIMIT = 20;

export function amountRefundable(p: PaymentRow): number {
  return Math.max(0, p.amount_captured - p.amount_refunded - p.amount_refund_pending);
}

/** The status of a captured payment that follows from its refunded total. */
export function refundedStatus(p: PaymentRow): PaymentRow['status'] {
  if (p.amount_refunded === 0) return 'succeeded';
  return p.amount_refunded >= p.amount_captured ? 'refunded' : 'partially_refunded';
}

/** The statuses of a payment the gateway holds captured money for. */
export const CAPTURED_STATUSES: readonly PaymentRow['status'][] = ['succeeded', 'partially_refunded', 'refunded'];

/**
 * What the PSP says about a payment's capture that contradicts what the gateway booked
 * (docs/reconciliation.md, "Capture corrections").
 */
export type CaptureCorrection =
  /** Reconciliation read what the PSP captured for the payment, and the PSP's status for it. */
  | { kind: 'psp_amount'; captured: number; pspStatus: ConnectorPaymentState['status'] }
  /** The PSP reports a capture failed after accepting it (Adyen's CAPTURE_FAILED). `captureRef`:
   *  the capture's own reference at the PSP, when the report names one. */
  | { kind: 'capture_failed'; captureRef: string | null };

export type CaptureCorrectionResult =
  | { outcome: 'corrected'; payment: PaymentRow }
  /** Already as the PSP says: a repeated report, or a concurrent correction got there first. */
  | { outcome: 'unchanged'; payment: PaymentRow }
  /** Nothing written; `reason` completes "The capture cannot be corrected: …". */
  | { outcome: 'refused'; payment: PaymentRow; reason: string }
  /** A failure reported for a capture of a payment still waiting for one: the gateway has not
   *  booked that capture yet (its answer may still be on its way). */
  | { outcome: 'not_booked'; payment: PaymentRow };

/** The failure a payment shows once the PSP has undone its capture. */
export const CAPTURE_FAILED_CODE = 'capture_failed';
const CAPTURE_FAILED_MESSAGES = {
  capture_failed: 'The payment service provider reported that the capture failed after accepting it: nothing was captured. '
    + 'The authorization stands: capture the payment again, or cancel it.',
  psp_amount: 'The payment service provider has nothing captured for this payment (found by reconciliation): the capture booked '
    + 'earlier did not happen. The authorization stands: capture the payment again, or cancel it.',
} as const;

export function renderPayment(p: PaymentRow, transactions: TransactionView[]) {
  return {
    id: p.id,
    object: 'payment' as const,
    amount: p.amount,
    currency: p.currency,
    status: p.status,
    capture_method: p.capture_method,
    amount_capturable: p.amount_capturable,
    amount_captured: p.amount_captured,
    amount_refunded: p.amount_refunded,
    amount_refundable: amountRefundable(p),
    connector: p.connector,
    connector_account_id: p.connector_account_id,
    connector_account_short_id: p.connector_account_short_id,
    connector_ref: p.connector_ref,
    payment_method: p.payment_method,
    order_id: p.order_id,
    customer_id: p.customer_id,
    description: p.description,
    metadata: p.metadata,
    line_items: p.line_items.map((li) => ({ ...li })),
    transactions: transactions
      .filter((t) => t.payment_id === p.id)
      .map((t) => ({
        id: t.id,
        type: t.type,
        amount: t.amount,
        status: t.status,
        connector_ref: t.connector_ref,
        ...(t.refund_id ? { refund_id: t.refund_id } : {}),
        created_at: new Date(t.created_at).toISOString(),
      })),
    failure_code: p.failure_code,
    failure_message: p.failure_message,
    test_mode: p.test_mode,
    created_at: p.created_at.toISOString(),
    updated_at: p.updated_at.toISOString(),
  };
}

export type PaymentView = ReturnType<typeof renderPayment>;

/** The payment as embedded in an event, with a bounded list of its newest transactions. */
export async function paymentEventObject(tx: Tx, p: PaymentRow): Promise<PaymentView> {
  return renderPayment(p, await repo.transactions(tx, [p.id], EVENT_TRANSACTIONS_LIMIT));
}

/** `GET /v1/payments` filters; ranges in Stripe's `field[gte]` / `field[lte]` form. */
export interface PaymentListQuery {
  limit: number;
  cursor?: string;
  status?: string;
  order_id?: string;
  customer_id?: string;
  currency?: string;
  'created[gte]'?: string;
  'created[lte]'?: string;
  'amount[gte]'?: number;
  'amount[lte]'?: number;
}

export class PaymentsService {
  constructor(
    private readonly db: Db,
    private readonly accounts: ConnectorAccountsService,
    private readonly log: Logger,
  ) {}

  async create(auth: AuthContext, input: CreatePaymentInput, idempotencyKey: string | undefined) {
    // the request on its own first: a malformed one is a 400 whatever the lookups below would find
    const currency = normalizeCurrency(input.currency);
    if (!currency) throw invalidParam('currency', `Unknown currency: ${input.currency}.`);
    const lineItems = buildLineItems(input.line_items, input.amount);

    // A retry of a request that died mid-way (crash, unknown PSP outcome) resumes its payment.
    if (idempotencyKey) {
      const existing = await repo.findByIdempotencyKey(this.db, auth.merchantId, auth.testMode, idempotencyKey);
      if (existing) return this.resume(existing, input, currency);
    }

    const account = await this.resolveAccount(auth, input.connector_account);
    if (account.connector === 'sandbox' && !(SANDBOX_TEST_TOKENS as readonly string[]).includes(input.payment_method)) {
      throw invalidParam('payment_method', `Unknown sandbox payment method; use one of ${SANDBOX_TEST_TOKENS.join(', ')}.`);
    }

    let payment: PaymentRow | undefined;
    try {
      payment = await repo.insert(this.db, {
        id: newId('pay'),
        merchant_id: auth.merchantId,
        test_mode: auth.testMode,
        amount: input.amount,
        currency,
        capture_method: input.capture_method ?? 'automatic',
        connector: account.connector,
        connector_account_id: account.id,
        connector_account_short_id: account.short_id,
        payment_method: input.payment_method,
        order_id: input.order_id ?? null,
        customer_id: input.customer_id ?? null,
        description: input.description ?? null,
        metadata: input.metadata ?? {},
        line_items: lineItems,
        idempotency_key: idempotencyKey ?? null,
      });
    } catch (err) {
      // the same key raced past the idempotency layer's lease (taken over): resume the winner's payment
      if ((err as { code?: string }).code === '23505' && idempotencyKey) {
        const existing = await repo.findByIdempotencyKey(this.db, auth.merchantId, auth.testMode, idempotencyKey);
        if (existing) return this.resume(existing, input, currency);
      }
      throw err;
    }
    if (!payment) {
      // hard-deleted or deactivated since it was resolved above: nothing was written
      throw new AppError('connector_account_not_found', `The connector account ${account.short_id} was deleted or deactivated meanwhile; the payment was not created.`, { param: 'connector_account' });
    }
    return this.authorize(payment);
  }

  /**
   * A payment found by the request's Idempotency-Key (its first attempt lost the PSP's answer, or
   * crashed): it is driven to the PSP's outcome with its own PSP idempotency key, so the PSP
   * replays what it did, and that is what is booked. A retry that asks for something else (another
   * amount, currency, capture method or payment method: the key's stored answer was released with
   * the 502) cannot be what the PSP did, so it is refused, never answered 201 for money that did
   * not move as asked.
   */
  private async resume(existing: PaymentRow, input: CreatePaymentInput, currency: string) {
    const same = existing.amount === input.amount && existing.currency === currency
      && existing.capture_method === (input.capture_method ?? 'automatic') && existing.payment_method === input.payment_method;
    if (same) return this.authorize(existing);
    try {
      await this.authorize(existing);
    } catch (err) {
      // still unknown at the PSP: the client retries the original request with the same key
      if (!(err instanceof AppError) || err.code !== 'card_declined') throw err;
    }
    const booked = (await repo.findById(this.db, existing.id)) ?? existing;
    throw new AppError('idempotency_key_reused',
      `This Idempotency-Key belongs to payment ${booked.id} of ${booked.amount} ${booked.currency} (${booked.status}), ` +
        'which the payment service provider processed as first asked; this request asks for something else. Use a new key for a new payment.',
      { extra: { payment_id: booked.id, amount: booked.amount } });
  }

  /** Phase 2 and 3 of a payment: the PSP call (outside any transaction), then the outcome. */
  async authorize(payment: PaymentRow) {
    if (payment.status !== 'processing') return this.finalView(payment);
    const account = await connectorAccountsRepository.findById(this.db, payment.connector_account_id);
    if (!account) throw new AppError('originating_account_unavailable', 'The connector account of this payment was deleted.');
    const connector = this.accounts.connectorFor(account);
    let result: AuthorizeResult;
    try {
      result = await connector.authorize(this.accounts.contextFor(account), {
        amount: payment.amount,
        currency: payment.currency,
        paymentMethod: payment.payment_method,
        capture: payment.capture_method === 'automatic',
        idempotencyKey: `settle_${payment.id}`,
        reference: payment.id,
      });
    } catch (err) {
      if (err instanceof ConnectorUnknownOutcomeError) {
        this.log.warn({ payment_id: payment.id, err: err.message }, 'payment authorization outcome unknown');
        throw new AppError('connector_unavailable', 'The payment service provider did not answer; retry with the same Idempotency-Key.', {
          extra: { payment_id: payment.id },
        });
      }
      throw err;
    }

    const finished = await this.db.transaction(async (tx) => {
      const p = (await repo.findById(tx, payment.id, true))!;
      if (p.status !== 'processing') return p; // finished by a concurrent retry
      const events: NewEvent[] = [];
      if (result.outcome === 'declined') {
        p.status = 'failed';
        p.connector_ref = result.connectorRef ?? null;
        p.failure_code = result.code;
        p.failure_message = result.message;
        await repo.insertTransaction(tx, p.id, 'authorization', p.amount, 'failed', p.connector_ref);
      } else {
        // What the PSP authorized (a partial authorization, or a replay of an earlier call) is
        // booked, never the amount asked for.
        p.connector_ref = result.connectorRef;
        await repo.insertTransaction(tx, p.id, 'authorization', result.amount, 'succeeded', p.connector_ref);
        if (result.outcome === 'captured') {
          p.status = 'succeeded';
          p.amount_captured = result.amount;
          const captureId = await repo.insertTransaction(tx, p.id, 'capture', result.amount, 'succeeded', p.connector_ref);
          await this.bookCapture(tx, p, account, captureId);
        } else {
          p.status = 'requires_capture';
          p.amount_capturable = result.amount;
        }
      }
      const updated = await repo.update(tx, p);
      const type = updated.status === 'failed' ? 'payment.failed' : updated.status === 'succeeded' ? 'payment.succeeded' : undefined;
      if (type) events.push({ type, object: await paymentEventObject(tx, updated) });
      await emitEvents(tx, p.merchant_id, p.test_mode, events);
      return updated;
    });
    return this.finalView(finished);
  }

  /**
   * Payments left in `processing` (the gateway crashed mid-request, or the PSP's answer was lost
   * and the client never retried) are authorized again with the same PSP idempotency key, which
   * returns the PSP's original outcome rather than charging twice.
   */
  async recoverProcessing(olderThanMs: number): Promise<number> {
    await repo.clearFinishedProcessing(this.db, 100);
    const stale = await repo.staleProcessing(this.db, olderThanMs, 20);
    for (const p of stale) {
      try {
        await this.authorize(p);
      } catch (err) {
        if (!(err instanceof AppError)) this.log.warn({ payment_id: p.id, err: (err as Error).message }, 'payment recovery failed');
      }
    }
    return 0; // recovery is paced by its interval, not run back to back
  }

  async capture(auth: AuthContext, id: string, amount: number | undefined) {
    const payment = await this.retrieveRow(auth, id);
    if (payment.status !== 'requires_capture') {
      throw new AppError('not_capturable', `This payment cannot be captured: its status is ${payment.status}.`);
    }
    const toCapture = amount ?? payment.amount_capturable;
    if (toCapture > payment.amount_capturable) {
      throw new AppError('amount_too_large', `Capture amount ${toCapture} exceeds the capturable amount of ${payment.amount_capturable}.`, { param: 'amount' });
    }
    const account = await this.originatingAccount(payment);
    // One capture per payment: the key is the payment's, so concurrent captures and retries collapse
    // into one at the PSP, which answers every one of them with what it captured the first time.
    // A capture the PSP reported failed is over: the next one is a new attempt, with a key of its own
    // (under the old key the PSP would only replay the failed capture's answer).
    const failedBefore = (await repo.captureTransactions(this.db, payment.id)).filter((t) => t.status === 'failed').length;
    const result = await this.askPsp('capture', 'not_capturable', (connector, ctx) => connector.capture(ctx, {
      connectorRef: payment.connector_ref!,
      amount: toCapture,
      currency: payment.currency,
      idempotencyKey: failedBefore === 0 ? `settle_capture_${payment.id}` : `settle_capture_${payment.id}_${failedBefore + 1}`,
    }), account);
    const captured = result.amountCaptured;
    const updated = await this.db.transaction(async (tx) => {
      const p = (await repo.findById(tx, payment.id, true))!;
      if (p.status !== 'requires_capture') {
        // a concurrent capture finished it; the check below refuses it if it booked another amount
        if (p.status === 'succeeded') return p;
        throw new AppError('not_capturable', `This payment cannot be captured: its status is ${p.status}.`);
      }
      return this.applyCapture(tx, p, captured, account, result.connectorRef);
    });
    if (updated.amount_captured !== toCapture) throw capturedOtherAmount(updated, toCapture);
    return this.view(updated);
  }

  /**
   * A capture the PSP made that the gateway never heard of (in the PSP's dashboard, or a capture
   * whose answer was lost and never retried), found by reconciliation: booked exactly as an API
   * capture is, with the PSP's amount. Undefined (nothing written) when the payment is no longer
   * waiting for a capture, or the amount cannot be this payment's.
   */
  async recordPspCapture(paymentId: string, captured: number): Promise<PaymentRow | undefined> {
    return this.db.transaction(async (tx) => {
      const p = await repo.findById(tx, paymentId, true);
      if (!p || p.status !== 'requires_capture' || captured <= 0 || captured > p.amount) return undefined;
      const account = await connectorAccountsRepository.findById(tx, p.connector_account_id);
      if (!account) return undefined;
      return this.applyCapture(tx, p, captured, account);
    });
  }

  /**
   * Brings a payment the gateway booked as captured to what the PSP captured: the one path for
   * reconciliation's `--fix` (the PSP's amount differs) and for a capture the PSP reports failed
   * after accepting it (Adyen's CAPTURE_FAILED). In one transaction, under the payment's row lock:
   * - the capture transaction(s) that did not happen as booked become `failed`; when the PSP has
   *   captured something, a `capture` transaction of the PSP's amount records it;
   * - one `capture_adjustment` ledger transaction books the difference, tied to the capture it
   *   supersedes, so the database takes it once however often the correction runs;
   * - the payment's `amount_captured` becomes the PSP's, its status follows (`succeeded`,
   *   `partially_refunded` or `refunded`; with nothing captured and the authorization still open
   *   at the PSP: back to `requires_capture`, with the authorized amount capturable again, so the
   *   merchant can capture again or cancel);
   * - `payment.captured` (the PSP captured something) or `payment.failed` (nothing captured, with
   *   `failure_code` `capture_failed`), as Stripe announces a failed attempt on a payment that
   *   can still be completed.
   * Never below the payment's refunds: a PSP amount under what is refunded or held by pending
   * refunds is refused (nothing written), for an operator.
   */
  async correctCapture(paymentId: string, c: CaptureCorrection): Promise<CaptureCorrectionResult> {
    return this.db.transaction(async (tx) => {
      const p = await repo.findById(tx, paymentId, true);
      if (!p) throw new Error(`correctCapture: no payment ${paymentId}`);
      const captures = await repo.captureTransactions(tx, p.id);
      const booked = captures.filter((t) => t.status === 'succeeded');
      let superseded: CaptureTransaction[];
      let target: number;
      if (c.kind === 'capture_failed') {
        const named = c.captureRef ? captures.find((t) => t.connector_ref === c.captureRef) : undefined;
        if (named?.status === 'failed') return { outcome: 'unchanged', payment: p };
        // A capture whose own PSP reference the gateway did not keep (one made with the
        // authorization, or booked before it kept them) carries the payment's reference.
        const failed = named ?? (booked.length === 1 && (!c.captureRef || booked[0].connector_ref === p.connector_ref) ? booked[0] : undefined);
        if (!failed) {
          if (p.status === 'requires_capture' || p.status === 'processing') return { outcome: 'not_booked', payment: p };
          return { outcome: 'refused', payment: p, reason: `no capture the gateway booked matches ${c.captureRef ?? 'the report'}` };
        }
        superseded = [failed];
        target = p.amount_captured - failed.amount;
      } else {
        if (c.captured === p.amount_captured) return { outcome: 'unchanged', payment: p };
        superseded = booked;
        target = c.captured;
      }
      const refused = (reason: string): CaptureCorrectionResult => ({ outcome: 'refused', payment: p, reason });
      if (!CAPTURED_STATUSES.includes(p.status) || superseded.length === 0) return refused(`the payment is ${p.status}, with no capture booked`);
      if (target > p.amount) return refused(`the payment service provider's ${target} is more than the payment's amount of ${p.amount}`);
      const held = p.amount_refunded + p.amount_refund_pending;
      if (target < held) {
        return refused(`the payment service provider captured ${target}, less than the ${p.amount_refunded} refunded and ` +
          `${p.amount_refund_pending} held by pending refunds in the gateway; lowering the capture below its refunds would invent money`);
      }
      if (target === 0 && c.kind === 'psp_amount' && c.pspStatus !== 'authorized') {
        return refused(`nothing is captured at the payment service provider and its payment is ${c.pspStatus}, not authorized`);
      }

      const delta = target - p.amount_captured;
      const account = { short_id: p.connector_account_short_id };
      for (const t of superseded) await repo.failCaptureTransaction(tx, t.id, c.kind === 'capture_failed' && c.captureRef ? c.captureRef : t.connector_ref);
      const adjusted = await ledgerRepository.bookPaymentTransaction(tx, {
        merchantId: p.merchant_id,
        testMode: p.test_mode,
        type: 'capture_adjustment',
        paymentId: p.id,
        refundId: null,
        currency: p.currency,
        amount: Math.abs(delta),
        debit: delta < 0 ? MERCHANT_BALANCE : clearingAccount(account.short_id),
        credit: delta < 0 ? clearingAccount(account.short_id) : MERCHANT_BALANCE,
        paymentTransactionId: superseded[superseded.length - 1].id,
      });
      // the capture was still booked as succeeded under the lock, so it cannot have been adjusted
      if (!adjusted) throw new Error(`correctCapture: capture ${superseded[superseded.length - 1].id} of ${p.id} was adjusted already`);
      if (c.kind === 'psp_amount' && target > 0) await repo.insertTransaction(tx, p.id, 'capture', target, 'succeeded', p.connector_ref);

      p.amount_captured = target;
      if (target === 0) {
        p.status = 'requires_capture';
        p.amount_capturable = (await repo.authorizedAmount(tx, p.id)) ?? p.amount;
        p.failure_code = CAPTURE_FAILED_CODE;
        p.failure_message = CAPTURE_FAILED_MESSAGES[c.kind];
      } else {
        p.status = refundedStatus(p);
        p.amount_capturable = 0;
      }
      const u = await repo.update(tx, p);
      await emitEvents(tx, u.merchant_id, u.test_mode, [
        { type: target === 0 ? 'payment.failed' : 'payment.captured', object: await paymentEventObject(tx, u) },
      ]);
      return { outcome: 'corrected', payment: u };
    });
  }

  /** Books a capture of `captured` (the PSP's amount, never the request's: money that moved is
   *  the truth) on a payment locked in `tx` that was waiting for one. `captureRef`: the capture's
   *  own reference at the PSP (Adyen's), kept on the capture transaction; default the payment's. */
  private async applyCapture(tx: Tx, p: PaymentRow, captured: number, account: Pick<ConnectorAccountRow, 'short_id'>,
    captureRef?: string): Promise<PaymentRow> {
    p.status = 'succeeded';
    p.amount_captured = captured;
    p.amount_capturable = 0; // a partial capture releases the rest
    if (p.failure_code === CAPTURE_FAILED_CODE) {
      // captured again after a failed capture: the failure is history (the failed capture transaction keeps it)
      p.failure_code = null;
      p.failure_message = null;
    }
    const captureId = await repo.insertTransaction(tx, p.id, 'capture', captured, 'succeeded', captureRef ?? p.connector_ref);
    await this.bookCapture(tx, p, account, captureId);
    const u = await repo.update(tx, p);
    const obj = await paymentEventObject(tx, u);
    await emitEvents(tx, u.merchant_id, u.test_mode, [
      { type: 'payment.captured', object: obj },
      { type: 'payment.succeeded', object: obj },
    ]);
    return u;
  }

  /**
   * A capture or cancel at the PSP. No answer is a 502 the client retries (the PSP key makes the
   * retry safe); a refusal is the 409 of the action.
   */
  private async askPsp<R extends ActionResult | CaptureResult>(action: 'capture' | 'cancel', refused: 'not_capturable' | 'not_cancelable',
    call: (connector: Connector, ctx: ConnectorContext) => Promise<R>, account: ConnectorAccountRow): Promise<Extract<R, { outcome: 'succeeded' }>> {
    let result: R;
    try {
      result = await call(this.accounts.connectorFor(account), this.accounts.contextFor(account));
    } catch (err) {
      if (err instanceof ConnectorUnknownOutcomeError) {
        throw new AppError('connector_unavailable', `The payment service provider did not answer; retry the ${action}.`);
      }
      throw err;
    }
    if (result.outcome === 'rejected') {
      throw new AppError(refused, `The payment service provider refused the ${action}: ${result.message}`);
    }
    return result as Extract<R, { outcome: 'succeeded' }>;
  }

  async cancel(auth: AuthContext, id: string) {
    const payment = await this.retrieveRow(auth, id);
    if (payment.status !== 'requires_capture') {
      throw new AppError('not_cancelable', `This payment cannot be canceled: its status is ${payment.status}.`);
    }
    const account = await this.originatingAccount(payment);
    await this.askPsp('cancel', 'not_cancelable', (connector, ctx) => connector.cancel(ctx, {
      connectorRef: payment.connector_ref!,
      idempotencyKey: `settle_cancel_${payment.id}`,
    }), account);
    const updated = await this.db.transaction(async (tx) => {
      const p = (await repo.findById(tx, payment.id, true))!;
      if (p.status === 'canceled') return p;
      if (p.status !== 'requires_capture') {
        throw new AppError('not_cancelable', `This payment cannot be canceled: its status is ${p.status}.`);
      }
      p.status = 'canceled';
      const released = p.amount_capturable;
      p.amount_capturable = 0;
      await repo.insertTransaction(tx, p.id, 'void', released, 'succeeded', p.connector_ref);
      const u = await repo.update(tx, p);
      await emitEvents(tx, u.merchant_id, u.test_mode, [{ type: 'payment.canceled', object: await paymentEventObject(tx, u) }]);
      return u;
    });
    return this.view(updated);
  }

  async retrieve(auth: AuthContext, id: string) {
    return this.view(await this.retrieveRow(auth, id));
  }

  async retrieveRow(auth: AuthContext, id: string): Promise<PaymentRow> {
    const p = await repo.find(this.db, auth.merchantId, auth.testMode, id);
    if (!p) throw new AppError('payment_not_found', `No such payment: ${id}.`, { param: 'id' });
    return p;
  }

  async list(auth: AuthContext, q: PaymentListQuery) {
    const rows = await repo.list(this.db, auth.merchantId, auth.testMode, q.limit, {
      status: q.status,
      orderId: q.order_id,
      customerId: q.customer_id,
      currency: q.currency?.toUpperCase(),
      createdGte: q['created[gte]'],
      createdLte: q['created[lte]'],
      amountGte: q['amount[gte]'],
      amountLte: q['amount[lte]'],
      after: decodeCursor(q.cursor),
    });
    const txns = await repo.transactions(this.db, rows.slice(0, q.limit).map((r) => r.id));
    return toPage(rows, q.limit, (r) => renderPayment(r, txns));
  }

  async view(p: PaymentRow) {
    return renderPayment(p, await repo.transactions(this.db, [p.id]));
  }

  private async finalView(p: PaymentRow) {
    const view = await this.view(p);
    if (p.status === 'failed') {
      throw new AppError('card_declined', p.failure_message ?? 'The card was declined.', {
        extra: { payment_id: p.id, decline_code: p.failure_code },
      });
    }
    if (p.status === 'processing') {
      throw new AppError('connector_unavailable', 'The payment is still being processed; retry with the same Idempotency-Key.', {
        extra: { payment_id: p.id },
      });
    }
    return view;
  }

  private async resolveAccount(auth: AuthContext, requested: string | undefined): Promise<ConnectorAccountRow> {
    if (requested !== undefined) {
      const account = await connectorAccountsRepository.find(this.db, auth.merchantId, auth.testMode, requested);
      if (!account) {
        throw new AppError('connector_account_not_found', `No such connector account: ${requested}.`, { param: 'connector_account' });
      }
      if (account.status !== 'active') {
        throw new AppError('connector_account_inactive', 'This connector account is inactive (deleted).', { param: 'connector_account' });
      }
      return account;
    }
    const def = await connectorAccountsRepository.findDefault(this.db, auth.merchantId, auth.testMode);
    if (!def) {
      const mode = auth.testMode ? 'test' : 'live';
      throw new AppError(
        'no_default_connector_account',
        `No connector_account given and no active default connector account exists for this merchant in ${mode} mode. ` +
          'Create one with POST /v1/connector_accounts using this mode\'s key, or as the operator: ' +
          `settle connector-accounts create --merchant ${auth.merchantId} --mode ${mode}.`,
      );
    }
    return def;
  }

  private async originatingAccount(p: PaymentRow): Promise<ConnectorAccountRow> {
    const account = await connectorAccountsRepository.findById(this.db, p.connector_account_id);
    if (!account) {
      throw new AppError('originating_account_unavailable', 'The connector account that authorized this payment was deleted.');
    }
    return account;
  }

  /** The capture transaction `captureId` of `p.amount_captured`, booked once. */
  private async bookCapture(tx: Tx, p: PaymentRow, account: Pick<ConnectorAccountRow, 'short_id'>, captureId: string): Promise<void> {
    await ledgerRepository.bookPaymentTransaction(tx, {
      merchantId: p.merchant_id,
      testMode: p.test_mode,
      type: 'capture',
      paymentId: p.id,
      refundId: null,
      currency: p.currency,
      amount: p.amount_captured,
      debit: clearingAccount(account.short_id),
      credit: MERCHANT_BALANCE,
      paymentTransactionId: captureId,
    });
  }
}

/**
 * A capture whose amount is not what the PSP captured (a retry with another amount after a lost
 * answer, or a concurrent capture of another amount). What the PSP captured has been booked; the
 * request is refused so no success ever states an amount that did not move.
 */
function capturedOtherAmount(p: PaymentRow, requested: number): AppError {
  return new AppError(
    'not_capturable',
    `This payment was already captured at the payment service provider for ${p.amount_captured} (an earlier capture request), ` +
      `not the ${requested} requested; the captured amount is what was booked. A payment is captured once.`,
    { extra: { payment_id: p.id, amount_captured: p.amount_captured } },
  );
}

function buildLineItems(items: CreatePaymentInput['line_items'], amount: number): StoredLineItem[] {
  if (!items || items.length === 0) return [];
  const seen = new Set<string>();
  const out = items.map((li, i) => {
    const id = li.id ?? newId('li');
    if (seen.has(id)) throw invalidParam(`line_items[${i}].id`, `Duplicate line item id: ${id}.`);
    seen.add(id);
    const lineAmount = li.quantity * li.unit_amount;
    if (!Number.isSafeInteger(lineAmount)) throw invalidParam(`line_items[${i}].quantity`, 'Line item amount is out of range.');
    return { id, name: li.name, quantity: li.quantity, unit_amount: li.unit_amount, amount: lineAmount, quantity_refunded: 0 };
  });
  const total = out.reduce((s, li) => s + li.amount, 0);
  if (total !== amount) {
    throw invalidParam('line_items', `The line items add up to ${total}, but amount is ${amount}.`);
  }
  return out;
}
