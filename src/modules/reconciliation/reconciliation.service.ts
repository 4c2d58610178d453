/**
 * Reconciliation: for every payment with activity in a window, ask the PSP (through its
 * connector) what it captured and refunded, compare with the gateway's payment, refunds and
 * ledger, and report every difference. With `fix`, what the PSP did that the gateway missed is
 * recorded through the inbound webhook path (`InboundWebhooksService.applyRefundReports`), the
 * same rules that book a PSP's webhooks: no rule is written twice.
 *
 * The PSP is the truth for money that moved. What a PSP cannot tell (a status `unknown`, null
 * amounts) is never guessed: the payment is counted as unverifiable instead. A refund such a PSP
 * leaves pending longer than `stalePendingMs` (its notification never came) is reported, never
 * finished: only the PSP's notification may say what happened to it.
 */
import { ConnectorUnknownOutcomeError, type ConnectorPaymentState, type ConnectorRefundReport } from '../../connectors/connector.js';
import type { Db, Tx } from '../../db/db.js';
import { decodeCursor, toPage } from '../../http/pagination.js';
import { newId } from '../../lib/ids.js';
import type { Logger } from '../../lib/logger.js';
import { connectorAccountsRepository } from '../connector-accounts/connector-accounts.repository.js';
import type { ConnectorAccountsService } from '../connector-accounts/connector-accounts.service.js';
import type { InboundWebhooksService } from '../inbound/inbound.service.js';
import type { AuthContext } from '../merchants/merchants.service.js';
import { paymentsRepository, type PaymentRow } from '../payments/payments.repository.js';
import type { RefundRow } from '../refunds/refunds.repository.js';
import { CAPTURED_STATUSES, type CaptureCorrection, type PaymentsService } from '../payments/payments.service.js';
import type { RefundOutcome, RefundsService } from '../refunds/refunds.service.js';
import type { ConnectorAccountRow } from '../connector-accounts/connector-accounts.repository.js';
import { emitEvents } from '../webhooks/events.repository.js';
import { reconciliationRepository as repo, type DifferenceRow, type PaymentLedger } from './reconciliation.repository.js';

export const DIFFERENCE_KINDS = [
  /** The PSP has no such payment. */
  'payment_not_found_at_psp',
  /** The gateway's amount_captured is not what the PSP captured. */
  'captured_amount',
  /** The gateway's amount_refunded is not the PSP's total of succeeded refunds. */
  'refunded_amount',
  /** The PSP has a refund the gateway has no record of (fixable: recorded as the PSP reports it). */
  'refund_missing',
  /** A refund's status differs (fixable where the gateway's refund can still move that way). */
  'refund_status',
  /** A refund's amount differs. */
  'refund_amount',
  /** The gateway booked a refund as succeeded that the PSP does not have. */
  'refund_not_at_psp',
  /** The PSP has a refund naming a gateway refund id the gateway does not have. */
  'refund_unknown_reference',
  /** The ledger's capture booking is not the payment's amount_captured. */
  'ledger_capture',
  /** The ledger's refund bookings (minus reversals) are not the payment's amount_refunded. */
  'ledger_refunds',
  /** A refund pending longer than the threshold on a PSP that cannot be asked where it stands
   *  (Adyen): its notification never came. Reported only: the PSP must resend it. */
  'refund_pending_too_long',
  /** The PSP reported a capture failed (Adyen's CAPTURE_FAILED) that the gateway could not undo:
   *  refunds of the payment are booked or held against it. Stored by the inbound path; checked on
   *  every run until `fix` can undo the capture. */
  'capture_failed',
] as const;
export type DifferenceKind = (typeof DIFFERENCE_KINDS)[number];

export interface Difference {
  kind: DifferenceKind;
  payment: PaymentRow;
  refundId: string | null;
  connectorRef: string | null;
  gateway: unknown;
  psp: unknown;
  message: string;
  /** The PSP's report that `fix` records through the inbound path. */
  fix?: ConnectorRefundReport;
  /** A capture the PSP made on a payment the gateway still has waiting for one: `fix` books it
   *  as an API capture is booked (`PaymentsService.recordPspCapture`). */
  fixCapture?: number;
  /** A payment booked as captured for another amount than the PSP's (or whose capture the PSP
   *  reported failed): `fix` corrects it (`PaymentsService.correctCapture`). */
  correct?: CaptureCorrection;
  /** The PSP's final outcome of a refund still pending in the gateway, learned from the PSP's
   *  refund status: `fix` finishes the refund through the refund path (`RefundsService.finish`). */
  finish?: RefundOutcome;
}

export interface ReconcileOptions {
  /** Payments whose gateway record changed at or after this time. */
  since: Date;
  /** Record what the PSP did that the gateway missed. Default false. */
  fix?: boolean;
  /** Payments changed more recently than this are left for a later run (their webhooks may be
   *  in flight). Default 0. */
  settleMs?: number;
  /** A refund pending longer than this on a PSP without a status query is reported
   *  (`refund_pending_too_long`). Default 24 hours. */
  stalePendingMs?: number;
}

export const DEFAULT_STALE_PENDING_MS = 24 * 3_600_000;

export interface ReconcileReport {
  checked: number;
  /** Payments the PSP could not tell about (status unknown, PSP unreachable, account deleted). */
  unverifiable: { paymentId: string; reason: string }[];
  /** Every difference found, with `status`: `open`, or `fixed` when `fix` recorded it. */
  differences: DifferenceView[];
}

export function renderDifference(d: DifferenceRow) {
  return {
    id: d.id,
    object: 'reconciliation_difference' as const,
    payment_id: d.payment_id,
    connector_account_id: d.connector_account_id,
    kind: d.kind,
    refund_id: d.refund_id,
    connector_ref: d.connector_ref,
    gateway: d.gateway_value ?? null,
    psp: d.psp_value ?? null,
    message: d.message,
    status: d.status,
    test_mode: d.test_mode,
    detected_at: d.detected_at.toISOString(),
    resolved_at: d.resolved_at ? d.resolved_at.toISOString() : null,
  };
}
export type DifferenceView = ReturnType<typeof renderDifference>;

const PAGE = 100;

/** What is stored of one difference. */
export type FoundDifference = Pick<Difference, 'kind' | 'refundId' | 'connectorRef' | 'gateway' | 'psp' | 'message'>;

/**
 * Stores differences with the PSP and announces each new one (`reconciliation.difference_found`),
 * counting them for /metrics: for reconciliation runs, and for a PSP report the inbound path could
 * not apply (a capture failure the payment's refunds block).
 */
export class DifferencesRecorder {
  /** Differences stored since this process started, per kind (the /metrics counter). */
  readonly found = new Map<string, number>();

  /** Stores `d` unless the same difference is open already; returns the row when it is new. */
  async store(tx: Tx, payment: PaymentRow, d: FoundDifference, status: 'open' | 'fixed'): Promise<DifferenceRow | undefined> {
    const row = await repo.insertOpen(tx, {
      id: newId('rcd'),
      merchant_id: payment.merchant_id,
      test_mode: payment.test_mode,
      payment_id: payment.id,
      connector_account_id: payment.connector_account_id,
      kind: d.kind,
      refund_id: d.refundId,
      connector_ref: d.connectorRef,
      gateway_value: d.gateway,
      psp_value: d.psp,
      message: d.message,
      status,
    });
    if (row) {
      this.found.set(d.kind, (this.found.get(d.kind) ?? 0) + 1);
      await emitEvents(tx, payment.merchant_id, payment.test_mode, [{ type: 'reconciliation.difference_found', object: renderDifference(row) }]);
    }
    return row;
  }
}

export class ReconciliationService {
  constructor(
    private readonly db: Db,
    private readonly accounts: ConnectorAccountsService,
    private readonly inbound: InboundWebhooksService,
    private readonly log: Logger,
    private readonly money: { payments: PaymentsService; refunds: RefundsService },
    private readonly differences: DifferencesRecorder = new DifferencesRecorder(),
  ) {}

  /** Differences stored since this process started, per kind (the /metrics counter). */
  get found(): ReadonlyMap<string, number> {
    return this.differences.found;
  }

  async run(opts: ReconcileOptions): Promise<ReconcileReport> {
    const report: ReconcileReport = { checked: 0, unverifiable: [], differences: [] };
    const until = Date.now() - (opts.settleMs ?? 0);
    let afterId = '';
    for (;;) {
      const page = await repo.paymentsWithActivity(this.db, opts.since, afterId, PAGE);
      for (const payment of page) {
        if (payment.updated_at.getTime() > until) continue;
        await this.reconcilePayment(payment, { fix: opts.fix ?? false, stalePendingMs: opts.stalePendingMs ?? DEFAULT_STALE_PENDING_MS }, report);
      }
      if (page.length < PAGE) break;
      afterId = page[page.length - 1].id;
    }
    return report;
  }

  private async reconcilePayment(payment: PaymentRow, opts: { fix: boolean; stalePendingMs: number }, report: ReconcileReport): Promise<void> {
    const { fix } = opts;
    const account = await connectorAccountsRepository.findById(this.db, payment.connector_account_id);
    if (!account) {
      report.unverifiable.push({ paymentId: payment.id, reason: 'its connector account was deleted' });
      return;
    }
    let state: ConnectorPaymentState;
    try {
      state = await this.accounts.connectorFor(account).paymentState(this.accounts.contextFor(account), { paymentRef: payment.connector_ref! });
    } catch (err) {
      if (!(err instanceof ConnectorUnknownOutcomeError)) throw err;
      report.unverifiable.push({ paymentId: payment.id, reason: `the PSP did not answer: ${err.message}` });
      return;
    }
    report.checked += 1;
    if (state.status === 'unknown') report.unverifiable.push({ paymentId: payment.id, reason: 'the PSP cannot tell what it did for this payment' });

    const check = async () => {
      const now = await this.compareNow(payment.id, state);
      now.found.push(...(await this.pendingRefundsAtPsp(now.current, now.refunds, state, account, opts.stalePendingMs)));
      return now;
    };
    let { current, found } = await check();
    const fixed: Difference[] = [];
    const reports = found.flatMap((d) => (d.fix ? [d.fix] : []));
    const capture = found.find((d) => d.fixCapture !== undefined);
    const finishes = found.filter((d) => d.finish !== undefined);
    const corrections = found.flatMap((d) => (d.correct ? [d.correct] : []));
    // a capture the PSP made larger first (the refunds it made are of that money); one it made
    // smaller last, once the refunds it failed no longer hold the gateway's capture up
    const raises = corrections.filter((c) => c.kind === 'psp_amount' && c.captured > current.amount_captured);
    const lowers = corrections.filter((c) => !raises.includes(c));
    if (fix && (reports.length > 0 || capture || finishes.length > 0 || corrections.length > 0)) {
      // the capture first: the refunds the PSP made are of captured money
      if (capture) await this.money.payments.recordPspCapture(payment.id, capture.fixCapture!);
      for (const c of raises) await this.money.payments.correctCapture(payment.id, c);
      if (reports.length > 0) await this.inbound.applyRefundReports(account.id, (await paymentsRepository.findById(this.db, payment.id))!, reports);
      // finished as the API and the refund sync finish them: booked once, whoever reports it
      for (const d of finishes) await this.money.refunds.finish({ id: d.refundId!, payment_id: payment.id }, d.finish!);
      // refused (nothing written) when refunds still hold the capture up: the re-check below reports it
      for (const c of lowers) await this.money.payments.correctCapture(payment.id, c);
      const { current: afterFix, found: after } = await check();
      current = afterFix;
      const still = new Set(after.map(keyOf));
      fixed.push(...found.filter((d) => !still.has(keyOf(d))));
      found = after;
    }
    report.differences.push(...(await this.store(current, found, fixed)));
  }

  /**
   * Refunds pending in the gateway that the PSP's payment record does not settle (the PSP cannot
   * list refunds, or lists none of these): their status is asked of the PSP, refund by refund, as
   * the refund sync does. One the PSP finished (succeeded or failed) is a `refund_status`
   * difference that `fix` finishes through the refund path. One still pending on a PSP that
   * cannot be asked (Adyen), older than `stalePendingMs`, is a `refund_pending_too_long`
   * difference: reported, never finished (no fix: only the PSP's notification can say).
   */
  private async pendingRefundsAtPsp(
    payment: PaymentRow, refunds: RefundRow[], state: ConnectorPaymentState, account: ConnectorAccountRow, stalePendingMs: number,
  ): Promise<Difference[]> {
    const out: Difference[] = [];
    const blind = this.accounts.connectorFor(account).statusQuery === false;
    for (const r of refunds) {
      if (r.status !== 'pending') continue;
      const listed = state.refunds?.some((x) => (r.connector_ref !== null && x.connectorRef === r.connector_ref) || x.reference === r.id);
      if (listed) continue; // compare() has it
      const outcome = await this.money.refunds.askPsp(r, account, payment.connector_ref!, 'status');
      if (outcome.status === 'pending') {
        const pendingMs = Date.now() - r.created_at.getTime();
        if (blind && pendingMs >= stalePendingMs) out.push(pendingTooLong(payment, r, account.connector, pendingMs));
        continue;
      }
      out.push({
        kind: 'refund_status', payment, refundId: r.id, connectorRef: outcome.connectorRef ?? r.connector_ref,
        gateway: 'pending', psp: outcome.status,
        message: `Refund ${r.id} is pending in the gateway and ${outcome.status} at the PSP.`,
        finish: outcome,
      });
    }
    return out;
  }

  /** The gateway's payment, refunds and ledger read in one snapshot (so a refund booked meanwhile
   *  is seen in all three or in none), compared with the PSP's state. */
  private async compareNow(paymentId: string, state: ConnectorPaymentState): Promise<{ current: PaymentRow; refunds: RefundRow[]; found: Difference[] }> {
    return this.db.transaction(async (tx) => {
      await repo.readInOneSnapshot(tx);
      const current = (await paymentsRepository.findById(tx, paymentId))!;
      const refunds = await repo.refundsOf(tx, paymentId);
      const reported = await repo.openReportedCaptureFailures(tx, current.merchant_id, paymentId);
      return { current, refunds, found: compare(current, refunds, await repo.ledgerOf(tx, paymentId), state, reported) };
    });
  }

  /** Stores what one payment's check found, emits an event for each new difference, and resolves
   *  the payment's open differences this check no longer finds. */
  private async store(payment: PaymentRow, open: Difference[], fixed: Difference[]): Promise<DifferenceView[]> {
    return this.db.transaction(async (tx) => {
      const views: DifferenceView[] = [];
      const fixedNow: Difference[] = [];
      for (const d of fixed) {
        // found open by an earlier run (and announced then): it is now fixed
        const row = await repo.markFixed(tx, payment.id, d.kind, d.connectorRef);
        if (row) views.push(renderDifference(row));
        else fixedNow.push(d);
      }
      const all = [...open.map((d) => [d, 'open'] as const), ...fixedNow.map((d) => [d, 'fixed'] as const)];
      for (const [d, status] of all) {
        const row = await this.differences.store(tx, payment, d, status);
        views.push(row ? renderDifference(row) : renderTransient(payment, d, status));
      }
      await repo.resolveOthers(tx, payment.id, open.map((d) => ({ kind: d.kind, connector_ref: d.connectorRef })));
      return views;
    });
  }

  /** The background job's pass: one process at a time, once per `everyMs`, over the lookback window. */
  async backgroundPass(opts: { everyMs: number; lookbackMs: number; settleMs: number; leaseMs: number; stalePendingMs?: number }): Promise<ReconcileReport | undefined> {
    const { lookbackMs, settleMs, stalePendingMs } = opts;
    const claim = await repo.claimRun(this.db, opts.everyMs, opts.leaseMs);
    if (!claim) return undefined;
    try {
      const report = await this.run({ since: new Date(claim.start.getTime() - lookbackMs), settleMs, stalePendingMs });
      const open = report.differences.filter((d) => d.status === 'open').length;
      if (open > 0) this.log.warn({ differences: open, checked: report.checked }, 'reconciliation found differences with the PSP');
      return report;
    } finally {
      await repo.releaseRun(this.db);
    }
  }

  async list(auth: AuthContext, q: { limit: number; cursor?: string; status?: string; payment_id?: string }) {
    const rows = await repo.list(this.db, q.limit, {
      merchantId: auth.merchantId, testMode: auth.testMode, status: q.status, paymentId: q.payment_id, after: decodeCursor(q.cursor),
    });
    return toPage(rows, q.limit, renderDifference);
  }

  async listAll(q: { limit: number; cursor?: string; status?: string; merchant_id?: string }) {
    const rows = await repo.list(this.db, q.limit, { merchantId: q.merchant_id, status: q.status, after: decodeCursor(q.cursor) });
    return toPage(rows, q.limit, renderDifference);
  }

  countOpen(): Promise<number> {
    return repo.countOpen(this.db);
  }
}

function keyOf(d: Pick<Difference, 'kind' | 'connectorRef'>): string {
  return `${d.kind}:${d.connectorRef ?? ''}`;
}

/** An open difference already stored by an earlier run, shown as this run found it. */
function renderTransient(payment: PaymentRow, d: Difference, status: 'open' | 'fixed'): DifferenceView {
  return {
    id: '',
    object: 'reconciliation_difference',
    payment_id: payment.id,
    connector_account_id: payment.connector_account_id,
    kind: d.kind,
    refund_id: d.refundId,
    connector_ref: d.connectorRef,
    gateway: d.gateway ?? null,
    psp: d.psp ?? null,
    message: d.message,
    status,
    test_mode: payment.test_mode,
    detected_at: new Date().toISOString(),
    resolved_at: null,
  };
}

/**
 * The differences between one payment as the gateway has it (row, refunds, ledger) and as the
 * PSP reports it. Pure: the same inputs give the same list.
 */
export function compare(payment: PaymentRow, refunds: RefundRow[], ledger: PaymentLedger, psp: ConnectorPaymentState,
  reportedCaptureFailures: readonly DifferenceRow[] = []): Difference[] {
  const out: Difference[] = [];
  const diff = (kind: DifferenceKind, gateway: unknown, pspValue: unknown, message: string, extra: Partial<Difference> = {}) =>
    out.push({ kind, payment, refundId: null, connectorRef: null, gateway, psp: pspValue, message, ...extra });
  const held = payment.amount_refunded + payment.amount_refund_pending;
  const captured = CAPTURED_STATUSES.includes(payment.status);

  // What the PSP reported of a capture (its failure) that the gateway could not apply yet: the
  // PSP's word stands until the capture is undone, whatever the PSP's status query can tell.
  for (const r of reportedCaptureFailures) {
    if (!captured) continue; // undone since (the re-check after a fix marks it fixed)
    const after = Number((r.psp_value as { amount_captured?: unknown } | null)?.amount_captured ?? 0);
    const message = after >= held
      ? `The PSP reported the capture ${r.connector_ref} failed; nothing refunded or held blocks its reversal any more: --fix undoes it.`
      : r.message;
    diff('capture_failed', { amount_captured: payment.amount_captured, amount_refunded: payment.amount_refunded, amount_refund_pending: payment.amount_refund_pending },
      r.psp_value, message, { connectorRef: r.connector_ref, correct: { kind: 'capture_failed', captureRef: r.connector_ref } });
  }

  // The gateway against itself: its ledger must say what its payment says.
  if (ledger.captured !== payment.amount_captured) {
    diff('ledger_capture', ledger.captured, payment.amount_captured, `The ledger books a capture of ${ledger.captured}; the payment says ${payment.amount_captured} was captured.`);
  }
  if (ledger.refunded !== payment.amount_refunded) {
    diff('ledger_refunds', ledger.refunded, payment.amount_refunded, `The ledger books ${ledger.refunded} refunded; the payment says ${payment.amount_refunded}.`);
  }

  if (psp.status === 'not_found') {
    diff('payment_not_found_at_psp', payment.connector_ref, null, `The PSP has no payment ${payment.connector_ref}.`);
    return out;
  }
  if (psp.amountCaptured !== null && psp.amountCaptured !== payment.amount_captured) {
    // A capture the gateway missed (made in the PSP's dashboard, or whose answer was lost) on a
    // payment still waiting for one is booked by `fix`; a payment booked as captured for another
    // amount is corrected to the PSP's — unless that would go below its refunds, or book what the
    // payment cannot hold: reported only, for an operator.
    const pspCaptured = psp.amountCaptured;
    const missed = payment.status === 'requires_capture' && payment.amount_captured === 0
      && pspCaptured > 0 && pspCaptured <= payment.amount;
    let message = `The gateway has ${payment.amount_captured} captured; the PSP captured ${pspCaptured}.`;
    let extra: Partial<Difference> = missed ? { fixCapture: pspCaptured } : {};
    if (captured) {
      const refusal = pspCaptured > payment.amount ? `more than the payment's amount of ${payment.amount}`
        : pspCaptured === 0 && psp.status !== 'authorized' ? `nothing, and its payment is ${psp.status}, not authorized`
          : pspCaptured < held ? `less than the ${payment.amount_refunded} refunded and ${payment.amount_refund_pending} held by pending refunds in the gateway`
            : undefined;
      if (refusal) {
        message = `The gateway has ${payment.amount_captured} captured; the PSP captured ${pspCaptured}, ${refusal}. ` +
          '--fix cannot resolve this without inventing money: check the payment at the PSP.';
      }
      // refunds the same fix fails or reverses may make room: the correction re-checks under the
      // payment's lock and writes nothing while the refunds still stand on the capture
      if (!refusal || pspCaptured < held) extra = { correct: { kind: 'psp_amount', captured: pspCaptured, pspStatus: psp.status } };
    }
    diff('captured_amount', payment.amount_captured, pspCaptured, message, extra);
  }
  if (psp.amountRefunded !== null && psp.amountRefunded !== payment.amount_refunded) {
    diff('refunded_amount', payment.amount_refunded, psp.amountRefunded, `The gateway has ${payment.amount_refunded} refunded; the PSP refunded ${psp.amountRefunded}.`);
  }
  if (psp.refunds === null) return out;

  const matched = new Set<string>();
  for (const r of psp.refunds) {
    const ours = refunds.find((x) => x.connector_ref === r.connectorRef) ?? (r.reference ? refunds.find((x) => x.id === r.reference) : undefined);
    const at = { connectorRef: r.connectorRef };
    if (!ours) {
      if (r.reference) {
        diff('refund_unknown_reference', null, pspRefund(r), `The PSP's refund ${r.connectorRef} names gateway refund ${r.reference}, which the gateway does not have.`, at);
      } else {
        diff('refund_missing', null, pspRefund(r), `The PSP has a ${r.status} refund ${r.connectorRef} of ${r.amount} the gateway has no record of.`, { ...at, fix: r });
      }
      continue;
    }
    matched.add(ours.id);
    const refundAt = { ...at, refundId: ours.id };
    if (ours.amount !== r.amount) {
      diff('refund_amount', ours.amount, r.amount, `Refund ${ours.id} is ${ours.amount} in the gateway and ${r.amount} at the PSP.`, refundAt);
    }
    if (ours.status !== r.status && !(r.status === 'pending' && ours.status === 'pending')) {
      // what the inbound path can apply: a pending refund finishing, a succeeded one failing (reversal)
      const fixable = (ours.status === 'pending' && r.status !== 'pending') || (ours.status === 'succeeded' && r.status === 'failed');
      diff('refund_status', ours.status, r.status, `Refund ${ours.id} is ${ours.status} in the gateway and ${r.status} at the PSP.`,
        { ...refundAt, ...(fixable ? { fix: r } : {}) });
    }
  }
  for (const ours of refunds) {
    // a pending refund may not have reached the PSP yet: the refund sync finishes it
    if (matched.has(ours.id) || ours.status !== 'succeeded') continue;
    diff('refund_not_at_psp', ours.amount, null, `Refund ${ours.id} of ${ours.amount} is succeeded in the gateway; the PSP has no such refund.`,
      { refundId: ours.id, connectorRef: ours.connector_ref });
  }
  return out;
}

/** A refund a PSP without a status query has left pending too long: what an operator does about it. */
function pendingTooLong(payment: PaymentRow, r: RefundRow, connector: string, pendingMs: number): Difference {
  const hours = Math.floor(pendingMs / 3_600_000);
  const where = r.connector_ref ? `its PSP reference ${r.connector_ref}` : `its reference ${r.id} (the PSP's answer was never received)`;
  return {
    kind: 'refund_pending_too_long', payment, refundId: r.id, connectorRef: r.connector_ref,
    gateway: 'pending', psp: null,
    message: `Refund ${r.id} of ${r.amount} has been pending for ${hours} hours and ${connector} cannot be asked where it stands: its notification never came. ` +
      `Look it up at the PSP by ${where} and have the PSP resend its notification; the gateway does not guess its outcome.`,
  };
}

function pspRefund(r: ConnectorRefundReport) {
  return { connector_ref: r.connectorRef, amount: r.amount, status: r.status, reference: r.reference ?? null };
}
