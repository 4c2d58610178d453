import type { ConnectorEvent, ConnectorPaymentNotice, ConnectorRefundReport, InboundEvent } from '../../connectors/connector.js';
import type { Db } from '../../db/db.js';
import { AppError } from '../../http/errors.js';
import { newId } from '../../lib/ids.js';
import type { Logger } from '../../lib/logger.js';
import { connectorAccountsRepository } from '../connector-accounts/connector-accounts.repository.js';
import type { ConnectorAccountsService } from '../connector-accounts/connector-accounts.service.js';
import { paymentsRepository, type PaymentRow } from '../payments/payments.repository.js';
import { refundsRepository, type RefundRow } from '../refunds/refunds.repository.js';
import type { RefundsService } from '../refunds/refunds.service.js';
import type { PaymentsService } from '../payments/payments.service.js';
import type { DifferencesRecorder } from '../reconciliation/reconciliation.service.js';

interface InboundRow {
  id: string;
  connector: string;
  connector_account_id: string;
  psp_event_id: string;
  type: string;
  payload: InboundEvent;
  attempts: number;
}

/** After this many failed processing attempts an inbound webhook is marked failed for an operator. */
const MAX_ATTEMPTS = 12;
/** A claimed webhook is not claimed again by another worker for this long. */
const LEASE_MS = 30_000;

/**
 * Inbound PSP webhooks: verified, stored (deduplicated by the PSP's event id) and only then
 * acknowledged; processed by a worker, at least once, idempotently. Processing converges with
 * refunds made through the API: every outcome goes through RefundsService.finish/reverse, which
 * apply a given refund's outcome once whatever the order and number of messages.
 */
export class InboundWebhooksService {
  constructor(
    private readonly db: Db,
    private readonly accounts: ConnectorAccountsService,
    private readonly refunds: RefundsService,
    private readonly log: Logger,
    private readonly captures: { payments: PaymentsService; differences: DifferencesRecorder },
  ) {}

  async receive(connectorName: string, accountId: string, rawBody: string, headers: Record<string, string | string[] | undefined>) {
    const account = await connectorAccountsRepository.findById(this.db, accountId);
    if (!account || account.connector !== connectorName) {
      throw new AppError('connector_account_not_found', `No such connector account: ${accountId}.`, { param: 'connector_account_id' });
    }
    const connector = this.accounts.connectorFor(account);
    if (!connector.verifyWebhook(this.accounts.contextFor(account), { rawBody, headers })) {
      throw new AppError('invalid_param', 'Webhook signature verification failed.', { param: 'signature' });
    }
    let events: InboundEvent[];
    try {
      events = connector.parseWebhookBatch ? connector.parseWebhookBatch(rawBody) : [connector.parseWebhook(rawBody)];
      if (events.length === 0) throw new Error('no events');
    } catch (err) {
      throw new AppError('invalid_param', `Unrecognised webhook payload: ${(err as Error).message}`, { param: 'body' });
    }
    // one row per event (a batch of the PSP's notifications is several), stored before the answer
    const values: unknown[] = [];
    const rows = events.map((event, i) => {
      values.push(newId('iwh'), connectorName, account.id, account.merchant_id, account.test_mode, event.id, event.type, JSON.stringify(event));
      const o = i * 8;
      return `($${o + 1}, $${o + 2}, $${o + 3}, $${o + 4}, $${o + 5}, $${o + 6}, $${o + 7}, $${o + 8}, 'received')`;
    });
    const r = await this.db.query(
      `INSERT INTO inbound_webhooks (id, connector, connector_account_id, merchant_id, test_mode, psp_event_id, type, payload, status)
       VALUES ${rows.join(', ')}
       ON CONFLICT (connector_account_id, psp_event_id) DO NOTHING`,
      values,
    );
    return { received: true as const, duplicate: r.rowCount === 0, acknowledgement: connector.webhookAcknowledgement };
  }

  /** One pass of the inbound worker. Returns how many webhooks it processed. */
  async processDue(limit = 20): Promise<number> {
    const claimed = await this.db.query<InboundRow>(
      `UPDATE inbound_webhooks SET next_attempt_at = now() + ($2::int * interval '1 millisecond'), attempts = attempts + 1
       WHERE id IN (SELECT id FROM inbound_webhooks WHERE status = 'received' AND next_attempt_at <= now()
                    ORDER BY received_at LIMIT $1 FOR UPDATE SKIP LOCKED)
       RETURNING id, connector, connector_account_id, psp_event_id, type, payload, attempts`,
      [limit, LEASE_MS],
    );
    for (const row of claimed.rows) {
      try {
        const done = await this.process(row);
        if (done === true) {
          await this.db.query(`UPDATE inbound_webhooks SET status = 'processed', processed_at = now(), last_error = NULL WHERE id = $1`, [row.id]);
        } else {
          await this.retryLater(row, done);
        }
      } catch (err) {
        this.log.warn({ inbound_webhook_id: row.id, err: (err as Error).message }, 'inbound webhook processing failed');
        await this.retryLater(row, (err as Error).message);
      }
    }
    return claimed.rowCount;
  }

  private async retryLater(row: InboundRow, error: string): Promise<void> {
    await this.db.query(
      `UPDATE inbound_webhooks SET last_error = $2,
         status = CASE WHEN attempts >= $3 THEN 'failed' ELSE 'received' END,
         next_attempt_at = now() + least(600000, 500 * power(2, attempts)) * interval '1 millisecond'
       WHERE id = $1`,
      [row.id, error.slice(0, 500), MAX_ATTEMPTS],
    );
  }

  /** Returns true when applied, or why the event cannot be applied yet (it is retried later). */
  private async process(row: InboundRow): Promise<true | string> {
    const event = row.payload;
    if (event.type === 'payment.notice') return this.recordNotice(row, event);
    const paymentRef = event.paymentRef;
    const reports = event.type === 'payment.refunded' ? event.refunds : [event.refund];
    let payment: PaymentRow | undefined;
    if (paymentRef) payment = await paymentsRepository.findByConnectorRef(this.db, row.connector_account_id, paymentRef);

    if (!(await this.applyRefundReports(row.connector_account_id, payment, reports))) return 'payment not known yet';
    if (event.type === 'payment.refunded' && payment) await this.reconcileCumulative(payment.id, event);
    return true;
  }

  /**
   * What the PSP says about a payment itself: an AUTHORISATION, CAPTURE or CANCELLATION confirms
   * what the gateway booked when the PSP answered, and moves no money. A capture the PSP reports
   * failed after accepting it (Adyen's CAPTURE_FAILED, or CAPTURE with success false) is money the
   * gateway booked as captured that never arrives: the capture is undone through the capture
   * correction path (`PaymentsService.correctCapture`), once, however often the notice comes. Other
   * failed notices are logged for an operator, with the stored webhook as their record.
   */
  private async recordNotice(row: InboundRow, event: ConnectorPaymentNotice): Promise<true | string> {
    const payment = await paymentsRepository.findByConnectorRef(this.db, row.connector_account_id, event.paymentRef);
    const captureFailed = event.notice === 'capture_failed' || (event.notice === 'capture' && !event.success);
    if (captureFailed && payment) return this.captureFailed(row, payment, event);
    const failed = !event.success || event.notice.endsWith('_failed');
    if (failed && payment) {
      this.log.error({ payment_id: payment.id, inbound_webhook_id: row.id, notice: event.notice, amount: event.amount },
        'the PSP reports a payment operation failed after it was accepted; check the payment at the PSP');
    } else if (failed) {
      this.log.warn({ inbound_webhook_id: row.id, notice: event.notice, connector_ref: event.paymentRef }, 'the PSP reports a failed operation on a payment the gateway does not know');
    }
    return true;
  }

  /**
   * Undoes a capture the PSP reports failed. When the payment's refunds (booked, or held by pending
   * ones) stand on that capture, nothing is undone — the gateway never takes a payment below its
   * refunds — and an open `capture_failed` reconciliation difference is stored and announced
   * instead (once, however often the notice comes): those refunds cannot succeed at the PSP, and
   * once it reports them failed, `settle reconcile --fix` undoes the capture. Waits (retried later)
   * while the gateway has not booked that capture: the capture's answer may still be on its way.
   */
  private async captureFailed(row: InboundRow, payment: PaymentRow, event: ConnectorPaymentNotice): Promise<true | string> {
    const captureRef = event.operationRef && event.operationRef !== event.paymentRef ? event.operationRef : null;
    const result = await this.captures.payments.correctCapture(payment.id, { kind: 'capture_failed', captureRef });
    const at = { payment_id: payment.id, inbound_webhook_id: row.id, capture_ref: captureRef, amount: event.amount };
    switch (result.outcome) {
      case 'corrected':
        this.log.warn(at, 'the PSP reports a capture failed after accepting it: the capture is undone, the payment waits for a capture again');
        return true;
      case 'unchanged':
        return true;
      case 'not_booked':
        return 'the capture reported failed is not booked yet';
      case 'refused': {
        const p = result.payment;
        const held = p.amount_refunded + p.amount_refund_pending > 0;
        this.log.error({ ...at, reason: result.reason }, 'the PSP reports a capture failed that the gateway cannot undo; check the payment at the PSP');
        if (!held) return true; // nothing an operator can do but look: logged
        await this.db.transaction(async (tx) => {
          await this.captures.differences.store(tx, p, {
            kind: 'capture_failed',
            refundId: null,
            connectorRef: captureRef ?? p.connector_ref,
            gateway: { amount_captured: p.amount_captured, amount_refunded: p.amount_refunded, amount_refund_pending: p.amount_refund_pending },
            psp: { amount_captured: Math.max(0, p.amount_captured - event.amount), capture_ref: captureRef, notice: event.notice, amount: event.amount },
            message: `The PSP reports the capture ${captureRef ?? `of ${p.connector_ref}`} of ${event.amount} failed, but ${p.amount_refunded} is refunded ` +
              `and ${p.amount_refund_pending} held by pending refunds against it: the gateway does not undo a capture below its refunds. ` +
              'Those refunds cannot succeed at the PSP; once it reports them failed, settle reconcile --fix undoes the capture. Check the payment at the PSP.',
          }, 'open');
        });
        return true;
      }
    }
  }

  /**
   * Records what the PSP reports about refunds: the one path for webhooks and for
   * reconciliation's `--fix`. Refunds of ours move as reported; refunds the gateway never made
   * (dashboard refunds) are recorded. Returns false when something could not be applied yet (the
   * payment is not known, or a reported refund is waiting for room on the payment).
   */
  async applyRefundReports(connectorAccountId: string, payment: PaymentRow | undefined, reports: readonly ConnectorRefundReport[]): Promise<boolean> {
    let complete = true;
    for (const report of reports) {
      const ours = await this.findRefund(connectorAccountId, report);
      if (ours) {
        await this.applyReport(ours, report);
      } else if (!report.reference) {
        if (!payment) return false;
        if (!(await this.recordOutOfBand(payment.id, report))) complete = false;
      } else {
        // names a refund of ours we do not have: phase 1 always commits before the PSP is
        // called, so this is another gateway's refund or a forged reference — never booked
        this.log.warn({ reference: report.reference, connector_ref: report.connectorRef }, 'webhook names an unknown gateway refund');
      }
    }
    return complete;
  }

  private async findRefund(accountId: string, report: ConnectorRefundReport): Promise<RefundRow | undefined> {
    const byRef = await refundsRepository.findByConnectorRef(this.db, accountId, report.connectorRef);
    if (byRef) return byRef;
    if (report.reference) {
      const byId = await refundsRepository.findById(this.db, report.reference);
      if (byId && byId.connector_account_id === accountId) return byId;
    }
    return undefined;
  }

  /** Moves one of our refunds as the PSP reports it; final states never move back, except a
   *  succeeded refund the PSP later reports failed (reversal). */
  private async applyReport(ours: RefundRow, report: ConnectorRefundReport): Promise<void> {
    if (report.amount !== ours.amount) {
      this.log.warn({ refund_id: ours.id, ours: ours.amount, psp: report.amount }, 'PSP reports a different amount for a refund');
    }
    if (report.status === 'succeeded') {
      if (ours.status === 'pending') await this.refunds.finish(ours, { status: 'succeeded', connectorRef: report.connectorRef });
    } else if (report.status === 'failed') {
      const code = report.failureCode ?? 'refund_failed';
      const message = report.failureMessage ?? 'The payment service provider reported the refund as failed.';
      if (ours.status === 'pending') await this.refunds.finish(ours, { status: 'failed', connectorRef: report.connectorRef, code, message });
      else if (ours.status === 'succeeded') await this.refunds.reverse(ours.id, code, message);
    } else if (ours.status === 'pending' && !ours.connector_ref) {
      await this.refunds.finish(ours, { status: 'pending', connectorRef: report.connectorRef });
    }
  }

  /**
   * Records a refund the gateway did not make. When it does not fit beside the refunds in flight
   * (their holds), the PSP's report wins: those refunds are settled with the PSP first, which
   * refuses the ones it no longer has room for, and the report is recorded once it fits. Returns
   * false when it still does not fit (the webhook is retried later; reconciliation reports it).
   */
  private async recordOutOfBand(paymentId: string, report: ConnectorRefundReport): Promise<boolean> {
    const attempt = () => this.db.transaction(async (tx) => {
      const payment = (await paymentsRepository.findById(tx, paymentId, true))!;
      // re-checked under the payment lock: a concurrent worker may have recorded it meanwhile
      const existing = await refundsRepository.findByConnectorRef(tx, payment.connector_account_id, report.connectorRef);
      if (existing) return true;
      return (await this.refunds.recordConnectorRefund(tx, payment, report)) !== 'no_room';
    });
    if (await attempt()) return true;
    await this.refunds.settleHeldRefunds(paymentId);
    if (await attempt()) return true;
    this.log.error({ payment_id: paymentId, connector_ref: report.connectorRef, amount: report.amount },
      'PSP reports a refund that does not fit the payment even after settling the refunds in flight; retried later');
    return false;
  }

  /**
   * A cumulative amount that lists no refunds but exceeds what is booked means refunds the
   * gateway has not heard of: the difference becomes one connector refund. At or below what is
   * booked (or held by refunds in flight) changes nothing.
   */
  private async reconcileCumulative(paymentId: string, event: Extract<ConnectorEvent, { type: 'payment.refunded' }>): Promise<void> {
    if (event.refunds.length > 0) return;
    await this.db.transaction(async (tx) => {
      const payment = (await paymentsRepository.findById(tx, paymentId, true))!;
      const known = payment.amount_refunded + payment.amount_refund_pending;
      const missing = event.amountRefunded - known;
      if (missing <= 0) return;
      const ref = `cumulative:${event.paymentRef}:${event.amountRefunded}`;
      if (await refundsRepository.findByConnectorRef(tx, payment.connector_account_id, ref)) return;
      if ((await this.refunds.recordConnectorRefund(tx, payment, { connectorRef: ref, amount: missing, status: 'succeeded' })) === 'no_room') {
        this.log.error({ payment_id: paymentId, amount: missing }, 'PSP reports a cumulative refunded amount above what the payment has left');
      }
    });
  }
}
