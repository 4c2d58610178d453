import { ConnectorUnknownOutcomeError, type RefundResult } from '../../connectors/connector.js';
import { refundReasonFor } from '../../connectors/refund-reasons.js';
import type { Db, Tx } from '../../db/db.js';
import { AppError, invalidParam } from '../../http/errors.js';
import { decodeCursor, toPage } from '../../http/pagination.js';
import { newId } from '../../lib/ids.js';
import { KeyedQueue } from '../../lib/keyed-queue.js';
import { TransactionGroups, type GroupLimits } from '../../db/group.js';
import type { Logger } from '../../lib/logger.js';
import { normalizeCurrency } from '../../lib/money.js';
import { connectorAccountsRepository, idColumn, type ConnectorAccountRow } from '../connector-accounts/connector-accounts.repository.js';
import type { ConnectorAccountsService } from '../connector-accounts/connector-accounts.service.js';
import { clearingAccount, ledgerRepository, MERCHANT_BALANCE, type Booking } from '../ledger/ledger.repository.js';
import type { AuthContext } from '../merchants/merchants.service.js';
import { paymentsRepository, type PaymentRow, type TransactionView } from '../payments/payments.repository.js';
import { amountRefundable, EVENT_TRANSACTIONS_LIMIT, paymentEventObject, refundedStatus, renderPayment } from '../payments/payments.service.js';
import { emitEvents, type NewEvent } from '../webhooks/events.repository.js';
import type { TransactionalKey } from '../idempotency/idempotency.service.js';
import { refundsRepository as repo, storedJson, type NewRefund, type RefundLineItem, type RefundRow } from './refunds.repository.js';

export interface CreateRefundInput {
  payment_id: string;
  amount?: number;
  currency?: string;
  /** Free text, 1–500 characters; kept as given (see `refund-reasons.ts` for what the PSP gets). */
  reason?: string;
  description?: string;
  reference?: string;
  metadata?: Record<string, string>;
  line_items?: { id: string; quantity?: number }[];
  order_id?: string;
  connector_account?: string;
}

export interface CreateRefundOptions {
  idempotencyKey?: string;
  /**
   * The request's idempotency key, to be claimed by phase 1 and answered by phase 3 (see
   * `TransactionalKey`). When phase 1 fails, nothing was claimed and the error is thrown as is:
   * the caller answers by the key's usual path.
   */
  key?: TransactionalKey;
  /** The `X-Connector-Account` header, when sent. */
  connectorAccountHeader?: string;
}

/** What the PSP (or a webhook, or a status query) said about a refund. */
export type RefundOutcome =
  | { status: 'succeeded'; connectorRef: string }
  | { status: 'pending'; connectorRef?: string | null }
  | { status: 'failed'; connectorRef?: string | null; code: string; message: string };

export interface RefundsServiceOptions {
  /** First sync delay and cap for pending refunds, in ms. */
  syncBaseMs: number;
  syncMaxMs: number;
  /** A refund left pending by a request that died is picked up by the sync worker after this. */
  orphanGraceMs: number;
  /** Sharing of transactions across payments (see TransactionGroups, `groupLimits`). */
  groups: GroupLimits;
}

export function renderRefund(r: RefundRow, p: Pick<PaymentRow, 'id' | 'status' | 'amount_captured' | 'amount_refunded' | 'amount_refund_pending'>) {
  return {
    id: r.id,
    object: 'refund' as const,
    payment_id: r.payment_id,
    amount: r.amount,
    currency: r.currency,
    status: r.status,
    reason: r.reason,
    description: r.description,
    reference: r.reference,
    metadata: r.metadata,
    line_items: r.line_items,
    order_id: r.order_id,
    connector: r.connector,
    connector_account_id: r.connector_account_id,
    connector_account_short_id: r.connector_account_short_id,
    connector_ref: r.connector_ref,
    failure_code: r.failure_code,
    failure_message: r.failure_message,
    source: r.source,
    test_mode: r.test_mode,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
    payment: {
      id: p.id,
      status: p.status,
      amount_captured: p.amount_captured,
      amount_refunded: p.amount_refunded,
      amount_refundable: amountRefundable(p as PaymentRow),
    },
  };
}

export type RefundView = ReturnType<typeof renderRefund>;

/**
 * What can be checked of a refund request without its payment, checked before the payment is
 * looked up: a malformed request is a 400 even when the payment does not exist.
 */
function checkRefundInput(input: CreateRefundInput): void {
  if (input.currency !== undefined && !normalizeCurrency(input.currency)) throw invalidParam('currency', `Unknown currency: ${input.currency}.`);
  const seen = new Set<string>();
  for (const [i, li] of (input.line_items ?? []).entries()) {
    if (seen.has(li.id)) throw invalidParam(`line_items[${i}].id`, `Line item ${li.id} is named twice.`);
    seen.add(li.id);
  }
}

/** Phase 1 could not claim the request's Idempotency-Key: another request holds it, and nothing was written. */
export class IdempotencyKeyTakenError extends Error {
  constructor() {
    super('The Idempotency-Key is taken: the refund was not created.');
    this.name = 'IdempotencyKeyTakenError';
  }
}

export class RefundsService {
  /** The transactions that lock one payment's row: two at a time per payment in this process (see KeyedQueue). */
  private readonly paymentTurns = new KeyedQueue(2);
  /** ...and they share a database transaction with other payments' when the gateway is busy (see TransactionGroups). */
  private readonly groups: TransactionGroups;

  constructor(
    private readonly db: Db,
    private readonly accounts: ConnectorAccountsService,
    private readonly log: Logger,
    private readonly opts: RefundsServiceOptions,
  ) {
    this.groups = new TransactionGroups(db, opts.groups);
  }

  /** The row-locking transactions run so far, and the refund steps run in them (grouping: members > transactions). */
  get transactionStats(): Readonly<TransactionGroups['stats']> {
    return this.groups.stats;
  }

  /** Runs a transaction that locks `paymentId`'s row: queued per payment, grouped across payments. */
  private lockingPayment<T>(paymentId: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.paymentTurns.run(paymentId, () => this.groups.run(paymentId, fn));
  }

  /**
   * Creates a refund in three phases: (1) record it as pending and hold its amount on the payment
   * under the payment's row lock, commit; (2) call the PSP with an idempotency key derived from
   * the refund id; (3) record the outcome. No transaction is open during the PSP call.
   */
  async create(auth: AuthContext, input: CreateRefundInput, opts: CreateRefundOptions = {}): Promise<RefundView> {
    checkRefundInput(input);
    const key = opts.key;
    let held: { refund: RefundRow; account: ConnectorAccountRow; payment: PaymentRow } | undefined;
    try {
      held = await this.lockingPayment(input.payment_id, (tx) => this.hold(tx, auth, input, opts));
    } catch (err) {
      // A retry of a request that died after phase 1 (or a concurrent twin): resume that refund,
      // never start a second one. Phase 1 cannot succeed when a refund holds the key (the insert
      // hits its unique index), so looking the key up only when phase 1 fails answers exactly as
      // looking it up first would, without a round trip on the common path. A key claimed here
      // is not: the caller settles the key first.
      if (opts.idempotencyKey && !key) {
        const existing = await repo.findByIdempotencyKey(this.db, auth.merchantId, auth.testMode, opts.idempotencyKey);
        if (existing) return this.drive(existing);
      }
      throw err;
    }
    // only a claim can be refused; the caller settles the key (replay, 409, 422, or run again)
    if (!held) throw new IdempotencyKeyTakenError();
    if (key) key.state = 'claimed';
    return this.callPspAndFinish(held.refund, held.account, held.payment.connector_ref!, key);
  }

  /**
   * Phase 1: validate against the locked payment, insert the pending refund, hold its amount.
   * Two statements: the locked read (payment and its connector account), then every write.
   */
  private async hold(tx: Tx, auth: AuthContext, input: CreateRefundInput, opts: CreateRefundOptions) {
    const locked = await repo.lockPayment(tx, auth.merchantId, auth.testMode, input.payment_id);
    if (!locked) throw new AppError('payment_not_found', `No such payment: ${input.payment_id}.`, { param: 'payment_id' });
    const { payment, now } = locked;

    for (const [requested, param] of [
      [input.connector_account, 'connector_account'],
      [opts.connectorAccountHeader, 'X-Connector-Account'],
    ] as const) {
      if (requested === undefined) continue;
      const col = idColumn(requested);
      const same = col === 'id' ? requested.toLowerCase() === payment.connector_account_id : requested === payment.connector_account_short_id;
      if (!same) {
        throw new AppError('connector_account_override_forbidden', 'Refund must use the same connector_account as the originating charge.', { param });
      }
    }

    if (input.currency !== undefined) {
      const currency = normalizeCurrency(input.currency);
      if (!currency) throw invalidParam('currency', `Unknown currency: ${input.currency}.`);
      if (currency !== payment.currency) {
        throw new AppError('currency_mismatch', `Refund currency ${currency} does not match the payment's currency ${payment.currency}.`, { param: 'currency' });
      }
    }

    if (payment.status === 'refunded') throw new AppError('already_refunded', `Payment ${payment.id} has already been fully refunded.`);
    if ((payment.status !== 'succeeded' && payment.status !== 'partially_refunded') || !payment.connector_ref) {
      throw new AppError('not_refundable', `Payment ${payment.id} cannot be refunded: its status is ${payment.status}.`);
    }

    const account = locked.account;
    if (!account) {
      throw new AppError('originating_account_unavailable',
        'The connector account that settled this payment was deleted; refund it at the processor and reconcile with a ledger adjustment.');
    }
    if (account.status !== 'active') {
      throw new AppError('connector_account_inactive', 'The connector account that settled this payment is inactive.', { param: 'connector_account' });
    }

    const refundable = amountRefundable(payment);
    const lineItems = this.refundLineItems(payment, input.line_items);
    const lineTotal = lineItems?.reduce((s, li) => s + li.amount, 0);
    let amount: number;
    if (input.amount !== undefined && input.amount !== 0) {
      if (lineTotal !== undefined && input.amount > lineTotal) {
        throw invalidParam('amount', `Refund amount ${input.amount} exceeds the ${lineTotal} of the line items it names.`);
      }
      amount = input.amount;
    } else {
      amount = lineTotal ?? refundable;
    }
    if (amount === 0) {
      // nothing left, yet not fully refunded: pending refunds hold the rest until they finish
      throw new AppError('amount_too_large',
        `Nothing left to refund on payment ${payment.id}: pending refunds hold the remaining ${payment.amount_refund_pending}. Retry if one of them fails.`, { param: 'amount' });
    }
    if (amount > refundable) {
      throw new AppError('amount_too_large', `Refund amount ${amount} exceeds the refundable balance of ${refundable}.`, { param: 'amount' });
    }

    const id = newId('re');
    const fields: NewRefund = {
      id,
      txn_id: newId('txn'),
      merchant_id: payment.merchant_id,
      test_mode: payment.test_mode,
      payment_id: payment.id,
      amount,
      currency: payment.currency,
      status: 'pending',
      reason: input.reason ?? null,
      description: input.description ?? null,
      reference: input.reference ?? null,
      metadata: input.metadata ?? {},
      line_items: lineItems ?? [],
      order_id: input.order_id ?? payment.order_id,
      connector: payment.connector,
      connector_account_id: payment.connector_account_id,
      connector_account_short_id: payment.connector_account_short_id,
      connector_ref: null,
      failure_code: null,
      failure_message: null,
      source: 'api',
      idempotency_key: opts.idempotencyKey ?? null,
      psp_idempotency_key: `settle_${id}`,
      syncDelayMs: this.opts.orphanGraceMs,
    };
    payment.amount_refund_pending += amount;
    for (const li of lineItems ?? []) {
      const stored = payment.line_items.find((s) => s.id === li.id)!;
      stored.quantity_refunded += li.quantity;
    }
    // The rows as the statement below leaves them: written at this transaction's now(), JSON
    // columns as jsonb returns them. Rendering them here saves reading back what we write.
    payment.updated_at = now;
    const { syncDelayMs, ...stored } = fields;
    const refund: RefundRow = {
      ...stored,
      metadata: storedJson(fields.metadata),
      line_items: storedJson(fields.line_items),
      next_sync_at: new Date(now.getTime() + syncDelayMs),
      sync_attempts: 0,
      created_at: now,
      updated_at: now,
    };
    const claimed = await repo.hold(tx, fields, payment, [{ type: 'refund.created', object: renderRefund(refund, payment) }], opts.key);
    // the key is another request's (or this one's, sent twice): nothing was written
    if (!claimed) return undefined;
    return { refund, account, payment };
  }

  private refundLineItems(payment: PaymentRow, requested: CreateRefundInput['line_items']): RefundLineItem[] | undefined {
    if (!requested || requested.length === 0) return undefined;
    const seen = new Set<string>();
    return requested.map((li, i) => {
      const stored = payment.line_items.find((s) => s.id === li.id);
      if (!stored) throw invalidParam(`line_items[${i}].id`, `Payment ${payment.id} has no line item ${li.id}.`);
      if (seen.has(li.id)) throw invalidParam(`line_items[${i}].id`, `Line item ${li.id} is named twice.`);
      seen.add(li.id);
      const remaining = stored.quantity - stored.quantity_refunded;
      const quantity = li.quantity ?? remaining;
      if (quantity > remaining || quantity === 0) {
        throw new AppError('line_item_quantity_exceeded',
          `Line item ${li.id} has ${remaining} of ${stored.quantity} left to refund; ${quantity} requested.`, { param: `line_items[${i}].quantity` });
      }
      return { id: li.id, quantity, amount: quantity * stored.unit_amount };
    });
  }

  /** Phase 2 and 3. An unknown outcome leaves the refund pending for the sync worker. */
  private async callPspAndFinish(refund: RefundRow, account: ConnectorAccountRow, paymentRef: string, key?: TransactionalKey): Promise<RefundView> {
    const outcome = await this.askPsp(refund, account, paymentRef, 'refund');
    return this.finish(refund, outcome, key);
  }

  /** Calls the PSP for a refund: `refund` re-sends it (idempotent by key), `status` only asks. */
  async askPsp(refund: RefundRow, account: ConnectorAccountRow, paymentRef: string, mode: 'refund' | 'status'): Promise<RefundOutcome> {
    const connector = this.accounts.connectorFor(account);
    const ctx = this.accounts.contextFor(account);
    const reason = refundReasonFor(refund.reason);
    let result: RefundResult;
    try {
      result =
        mode === 'refund'
          ? await connector.refund(ctx, {
              paymentRef,
              amount: refund.amount,
              currency: refund.currency,
              reason: reason?.code ?? null,
              reasonText: reason?.text ?? null,
              idempotencyKey: refund.psp_idempotency_key,
              reference: refund.id,
            })
          : await connector.refundStatus(ctx, { connectorRef: refund.connector_ref, paymentRef, idempotencyKey: refund.psp_idempotency_key });
    } catch (err) {
      if (err instanceof ConnectorUnknownOutcomeError) {
        this.log.warn({ refund_id: refund.id, err: err.message }, 'refund outcome unknown; left pending for sync');
        return { status: 'pending', connectorRef: null };
      }
      throw err;
    }
    if (result.status === 'failed') {
      return { status: 'failed', connectorRef: result.connectorRef ?? null, code: result.code, message: result.message };
    }
    return { status: result.status, connectorRef: result.connectorRef };
  }

  /**
   * Records what is known about a pending refund. Final outcomes are applied once: the payment
   * row is locked first, then the refund, and a refund that is no longer pending is left alone —
   * so the API, the sync worker and inbound webhooks may all report the same outcome, in any
   * order, any number of times, and it is booked once.
   */
  async finish(refund: Pick<RefundRow, 'id' | 'payment_id'>, outcome: RefundOutcome, key?: TransactionalKey): Promise<RefundView> {
    const view = await this.lockingPayment(refund.payment_id, async (tx) => {
      if (key) key.response = undefined; // this attempt's answer only
      const locking = this.lockRefund(tx, refund.id);
      // The event's transactions, sent right behind the lock statement (pipelined on PostgreSQL):
      // a statement of its own, it runs once the lock is held, on a snapshot taken then, so
      // nothing committed while it waited for the lock is missing from it.
      const reading = outcome.status === 'pending' ? undefined : paymentsRepository.transactions(tx, [refund.payment_id], EVENT_TRANSACTIONS_LIMIT);
      reading?.catch(() => {}); // answered through `locking` when the lock statement fails
      const { refund: locked, payment, now } = await locking;
      if (locked.status !== 'pending') return renderRefund(locked, payment);
      if (outcome.status === 'pending') {
        const r = (await repo.scheduleSync(tx, locked.id, this.opts.syncBaseMs, this.opts.syncMaxMs, outcome.connectorRef ?? null))
          ?? (await repo.findById(tx, locked.id))!;
        return renderRefund(r, payment);
      }
      return this.applyFinal(tx, locked, payment, outcome, now, { last: true, key, transactions: reading });
    });
    if (key?.response) key.state = 'stored';
    return view;
  }

  /**
   * Applies a final outcome to a pending refund whose payment and refund rows the caller has
   * locked; `now` is the transaction's now(). One read (the payment's newest transactions, for
   * the event) and one write (booking, payment, refund, events, and the request's response when
   * `key` is answered here), which ends the transaction when `last`.
   */
  private async applyFinal(tx: Tx, refund: RefundRow, payment: PaymentRow,
    outcome: Exclude<RefundOutcome, { status: 'pending' }>, now: Date,
    opts: { last: boolean; key?: TransactionalKey; transactions?: Promise<TransactionView[]> }): Promise<RefundView> {
    const key = opts.key;
    let booking: Booking | undefined;
    payment.amount_refund_pending -= refund.amount;
    refund.connector_ref = outcome.connectorRef ?? refund.connector_ref;
    if (outcome.status === 'succeeded') {
      refund.status = 'succeeded';
      payment.amount_refunded += refund.amount;
      payment.status = refundedStatus(payment);
      booking = {
        merchantId: refund.merchant_id,
        testMode: refund.test_mode,
        type: 'refund',
        paymentId: payment.id,
        refundId: refund.id,
        currency: refund.currency,
        amount: refund.amount,
        debit: MERCHANT_BALANCE,
        credit: clearingAccount(refund.connector_account_short_id),
      };
    } else {
      refund.status = 'failed';
      refund.failure_code = outcome.code;
      refund.failure_message = outcome.message;
      this.releaseLineItems(payment, refund);
    }
    // the rows as the write below leaves them
    payment.updated_at = now;
    refund.updated_at = now;
    refund.next_sync_at = null;
    const view = renderRefund(refund, payment);
    // Read under the payment's lock (here, or pipelined behind the lock statement by `finish`), so no
    // other transaction changes this list before we commit;
    // this refund's own entry is shown as the write below leaves it.
    const transactions = await (opts.transactions ?? paymentsRepository.transactions(tx, [payment.id], EVENT_TRANSACTIONS_LIMIT));
    for (const t of transactions) {
      if (t.refund_id === refund.id) {
        t.status = refund.status;
        t.connector_ref = refund.connector_ref;
      }
    }
    const paymentObject = renderPayment(payment, transactions);
    const events: NewEvent[] = refund.status === 'succeeded'
      ? [
          { type: 'refund.succeeded', object: view },
          { type: payment.status === 'refunded' ? 'payment.refunded' : 'payment.partially_refunded', object: paymentObject },
        ]
      : [
          { type: 'refund.failed', object: view },
          { type: 'payment.refund_failed', object: paymentObject },
        ];
    // the request's answer, stored with the outcome; the caller marks the key stored once this commits
    if (key) key.response = key.respond(view);
    await repo.finalize(tx, refund, payment, booking, events, key && { key, response: key.response! }, opts.last);
    return view;
  }

  /**
   * A refund the PSP reports as failed after it had succeeded (a bank rejecting it days later):
   * the refund becomes failed, a compensating ledger transaction restores the balance, and the
   * payment's amounts and status are restored.
   */
  async reverse(refundId: string, code: string, message: string): Promise<RefundView> {
    return this.db.transaction(async (tx) => {
      const { refund, payment, now } = await this.lockRefund(tx, refundId);
      if (refund.status === 'pending') return this.applyFinal(tx, refund, payment, { status: 'failed', code, message }, now, { last: true });
      if (refund.status === 'failed') return renderRefund(refund, payment);
      payment.amount_refunded -= refund.amount;
      payment.status = refundedStatus(payment);
      refund.status = 'failed';
      refund.failure_code = code;
      refund.failure_message = message;
      this.releaseLineItems(payment, refund);
      await ledgerRepository.book(tx, {
        merchantId: refund.merchant_id,
        testMode: refund.test_mode,
        type: 'refund_reversal',
        paymentId: payment.id,
        refundId: refund.id,
        currency: refund.currency,
        amount: refund.amount,
        debit: clearingAccount(refund.connector_account_short_id),
        credit: MERCHANT_BALANCE,
      });
      const p = await paymentsRepository.update(tx, payment);
      const r = await repo.update(tx, refund);
      const view = renderRefund(r, p);
      await emitEvents(tx, r.merchant_id, r.test_mode, [
        { type: 'refund.failed', object: view },
        { type: 'payment.refund_failed', object: await paymentEventObject(tx, p) },
      ]);
      return view;
    });
  }

  /**
   * A refund made outside the gateway (in the PSP's dashboard), learned from a webhook or from
   * reconciliation: it becomes a refund with `source: "connector"` in the status the PSP reports
   * (a failed one is recorded failed, holding and booking nothing). Answers `no_room`, writing
   * nothing, when a pending or succeeded report does not fit the refundable balance: the caller
   * resolves the collision with the refunds in flight (see `heldRefunds`) and tries again.
   */
  async recordConnectorRefund(tx: Tx, payment: PaymentRow,
    report: { connectorRef: string; amount: number; status: 'succeeded' | 'pending' | 'failed'; failureCode?: string | null; failureMessage?: string | null },
  ): Promise<RefundView | 'no_room'> {
    const failed = report.status === 'failed';
    if (!failed && report.amount > amountRefundable(payment)) return 'no_room';
    const id = newId('re');
    const refund = await repo.insert(tx, {
      id,
      txn_id: newId('txn'),
      merchant_id: payment.merchant_id,
      test_mode: payment.test_mode,
      payment_id: payment.id,
      amount: report.amount,
      currency: payment.currency,
      status: failed ? 'failed' : 'pending',
      reason: null,
      description: null,
      reference: null,
      metadata: {},
      line_items: [],
      order_id: payment.order_id,
      connector: payment.connector,
      connector_account_id: payment.connector_account_id,
      connector_account_short_id: payment.connector_account_short_id,
      connector_ref: report.connectorRef,
      failure_code: failed ? report.failureCode ?? 'refund_failed' : null,
      failure_message: failed ? report.failureMessage ?? 'The payment service provider reported the refund as failed.' : null,
      source: 'connector',
      idempotency_key: null,
      psp_idempotency_key: `settle_${id}`,
      syncDelayMs: this.opts.syncBaseMs,
    });
    if (failed) {
      // nothing moved: no hold, no booking; recorded so the gateway's refunds list the PSP's
      await repo.update(tx, { ...refund, next_sync_at: null });
      const view = renderRefund(refund, payment);
      await emitEvents(tx, refund.merchant_id, refund.test_mode, [{ type: 'refund.failed', object: view }]);
      return view;
    }
    payment.amount_refund_pending += report.amount;
    const p = await paymentsRepository.update(tx, payment);
    await emitEvents(tx, refund.merchant_id, refund.test_mode, [{ type: 'refund.created', object: renderRefund(refund, p) }]);
    // inserted in this transaction, the refund's created_at is the transaction's now()
    if (report.status === 'succeeded') {
      return this.applyFinal(tx, refund, p, { status: 'succeeded', connectorRef: report.connectorRef }, refund.created_at, { last: false });
    }
    return renderRefund(refund, p);
  }

  /**
   * Settles the refunds holding part of a payment's balance by asking the PSP for each (the same
   * idempotent call as their own, so a refund the PSP already has is answered, never made
   * twice). Used when the PSP reports a refund that does not fit beside them: the PSP allowed its
   * own, so it refuses (or has already refused) those that no longer fit, which releases their
   * holds. Returns how many are still pending.
   */
  async settleHeldRefunds(paymentId: string): Promise<number> {
    const payment = (await paymentsRepository.findById(this.db, paymentId))!;
    const held = await repo.list(this.db, payment.merchant_id, payment.test_mode, 100, { paymentId, status: 'pending' });
    let pending = 0;
    for (const refund of held) {
      const view = await this.drive(refund);
      if (view.status === 'pending') pending += 1;
    }
    return pending;
  }

  /** Brings a refund found by idempotency key (or by the sync worker) to where it can be answered. */
  async drive(refund: RefundRow): Promise<RefundView> {
    if (refund.status !== 'pending') return this.view(refund);
    const payment = (await paymentsRepository.findById(this.db, refund.payment_id))!;
    const account = await connectorAccountsRepository.findById(this.db, refund.connector_account_id);
    if (!account) return this.view(refund);
    return this.callPspAndFinish(refund, account, payment.connector_ref!);
  }

  async retrieve(auth: AuthContext, id: string): Promise<RefundView> {
    const r = await repo.find(this.db, auth.merchantId, auth.testMode, id);
    if (!r) throw new AppError('refund_not_found', `No such refund: ${id}.`, { param: 'id' });
    return this.view(r);
  }

  async list(auth: AuthContext, q: { limit: number; cursor?: string; payment_id?: string; status?: string }) {
    const rows = await repo.list(this.db, auth.merchantId, auth.testMode, q.limit, {
      paymentId: q.payment_id,
      status: q.status,
      after: decodeCursor(q.cursor),
    });
    const paymentIds = [...new Set(rows.map((r) => r.payment_id))];
    const payments = new Map<string, PaymentRow>();
    if (paymentIds.length) {
      const res = await this.db.query<PaymentRow>('SELECT * FROM payments WHERE id = ANY ($1::text[])', [paymentIds]);
      for (const p of res.rows) payments.set(p.id, p);
    }
    return toPage(rows, q.limit, (r) => renderRefund(r, payments.get(r.payment_id)!));
  }

  /** Lists a payment's refunds, 404 when the payment is not the caller's. */
  async listForPayment(auth: AuthContext, paymentId: string, q: { limit: number; cursor?: string; status?: string }) {
    decodeCursor(q.cursor); // a malformed cursor is a 400 even for a payment that does not exist
    const p = await paymentsRepository.find(this.db, auth.merchantId, auth.testMode, paymentId);
    if (!p) throw new AppError('payment_not_found', `No such payment: ${paymentId}.`, { param: 'id' });
    return this.list(auth, { ...q, payment_id: paymentId });
  }

  async view(r: RefundRow): Promise<RefundView> {
    const p = (await paymentsRepository.findById(this.db, r.payment_id))!;
    return renderRefund(r, p);
  }

  private async lockRefund(tx: Tx, refundId: string) {
    // lock order everywhere: payment, then refund
    const locked = await repo.lockWithPayment(tx, refundId);
    if (!locked) throw new Error(`refund ${refundId} does not exist`);
    return locked;
  }

  private releaseLineItems(payment: PaymentRow, refund: RefundRow): void {
    for (const li of refund.line_items) {
      const stored = payment.line_items.find((s) => s.id === li.id);
      if (stored) stored.quantity_refunded = Math.max(0, stored.quantity_refunded - li.quantity);
    }
  }
}
