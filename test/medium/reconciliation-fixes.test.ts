/**
 * Reconciliation finds, and with `fix` corrects through the gateway's own booking paths:
 * - a capture the PSP made that the gateway never heard of (captured amounts differ): booked as
 *   an API capture is, through the ledger;
 * - a payment booked as captured for another amount than the PSP captured (less, more, or
 *   nothing with the authorization still open): one capture adjustment in the ledger, the
 *   superseded capture failed and the PSP's recorded, never below the payment's refunds;
 * - refunds pending in the gateway that the PSP has finished (succeeded or failed), also on
 *   payments with no other activity in the window and with PSPs that cannot list a payment's
 *   refunds: finished through the refund path, booked once.
 * Differences are injected into the sandbox PSP on purpose; its webhooks reach nobody here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConnectorUnknownOutcomeError, type Connector, type ConnectorRegistry } from '../../src/connectors/connector.js';
import { createSandboxConnector } from '../../src/connectors/sandbox/sandbox.connector.js';
import { SandboxPsp } from '../../src/psp-sim/psp-model.js';
import { createHarness, pay, type Harness } from '../helpers/harness.js';

/** The sandbox PSP; `blind` makes it unable to tell a payment's state (like Adyen's Checkout API),
 *  while it still answers refund status queries; `refundsUnanswered` loses every refund call and
 *  status query (the refund stays pending, its amount held, the PSP never had it). */
function sandbox(psp: SandboxPsp) {
  const inner = createSandboxConnector({ psp });
  const control = { blind: false, refundsUnanswered: false };
  const unanswered = () => new ConnectorUnknownOutcomeError('sandbox: no answer (test)');
  const connector: Connector = {
    ...inner,
    async paymentState(ctx, req) {
      if (control.blind) return { paymentRef: req.paymentRef, status: 'unknown', amountCaptured: null, amountRefunded: null, refunds: null };
      return inner.paymentState(ctx, req);
    },
    async refund(ctx, req) {
      if (control.refundsUnanswered) throw unanswered();
      return inner.refund(ctx, req);
    },
    async refundStatus(ctx, req) {
      if (control.refundsUnanswered) throw unanswered();
      return inner.refundStatus(ctx, req);
    },
  };
  return { control, connectors: new Map([['sandbox', connector]]) as ConnectorRegistry };
}

describe('reconciliation corrects captured amounts and pending refunds through the booking paths', () => {
  const psp = new SandboxPsp();
  const { control, connectors } = sandbox(psp);
  let h: Harness;
  let account: any;
  before(async () => {
    h = await createHarness('pglite', { connectors });
    const r = await h.call('POST', '/v1/connector_accounts', { key: h.merchant.testKey, body: { connector: 'sandbox', settings: { pending_delay_ms: 86_400_000 } } });
    assert.equal(r.status, 201, r.raw);
    account = r.body;
  });
  after(async () => {
    await h?.close();
    psp.dispose();
  });
  const key = () => h.merchant.testKey;
  const reconcile = (fix = false) => h.rt.services.reconciliation.run({ since: new Date(Date.now() - 3_600_000), fix });
  const of = (report: Awaited<ReturnType<typeof reconcile>>, paymentId: string) =>
    report.differences.filter((d) => d.payment_id === paymentId).map((d) => `${d.kind} ${d.status}`).sort();

  async function ledger(paymentId: string): Promise<{ captured: number; refunded: number; refundBookings: number }> {
    const r = await h.db.query<{ type: string; amount: string; direction: string }>(
      `SELECT t.type, e.amount, e.direction FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
        WHERE t.payment_id = $1 AND e.account = 'merchant_balance'`, [paymentId]);
    const sum = (type: string) => r.rows.filter((x) => x.type === type).reduce((s, x) => s + (x.direction === 'credit' ? 1 : -1) * Number(x.amount), 0);
    return { captured: sum('capture') + sum('capture_adjustment'), refunded: -(sum('refund') + sum('refund_reversal')) || 0, refundBookings: r.rows.filter((x) => x.type === 'refund').length };
  }
  /** The payment's capture adjustments in the ledger, as the API lists them. */
  const adjustments = async (paymentId: string) =>
    (await h.call('GET', `/v1/ledger/transactions?payment_id=${paymentId}&limit=100`, { key: key() })).body.data.filter((t: any) => t.type === 'capture_adjustment');
  const captures = (payment: any) => payment.transactions.filter((t: any) => t.type === 'capture').map((t: any) => [t.amount, t.status]);
  const latestEvent = async (paymentId: string, type: string) =>
    (await h.call('GET', `/v1/events?object_id=${paymentId}&type=${type}&limit=1`, { key: key() })).body.data[0];
  const verify = async () => assert.deepEqual((await h.rt.services.ledger.verify()).violations, []);

  test('a capture made at the PSP that the gateway missed: reported, then booked through the ledger by fix', async () => {
    const p = await pay(h, { amount: 9_000, capture_method: 'manual', connector_account: account.id });
    psp.dashboardCapture(p.connector_ref, 6_000);

    const found = await reconcile();
    assert.deepEqual(of(found, p.id), ['captured_amount open']);
    assert.equal((await h.call('GET', `/v1/payments/${p.id}`, { key: key() })).body.amount_captured, 0, 'reporting changes nothing');

    const fixed = await reconcile(true);
    assert.deepEqual(of(fixed, p.id), ['captured_amount fixed']);
    const g = (await h.call('GET', `/v1/payments/${p.id}`, { key: key() })).body;
    assert.equal(g.status, 'succeeded');
    assert.equal(g.amount_captured, psp.totals(p.connector_ref).amount_captured);
    assert.equal(g.amount_captured, 6_000);
    assert.equal(g.amount_capturable, 0);
    assert.ok(g.transactions.some((t: any) => t.type === 'capture' && t.amount === 6_000), 'a capture transaction, not an edited total');
    assert.equal((await ledger(p.id)).captured, 6_000, 'booked in the ledger');
    await verify();
    const events = await h.call('GET', `/v1/events?object_id=${p.id}&limit=100`, { key: key() });
    assert.ok(events.body.data.some((e: any) => e.type === 'payment.captured'), 'announced as a capture');

    assert.deepEqual(of(await reconcile(true), p.id), [], 'nothing left, nothing booked twice');
    assert.equal((await ledger(p.id)).captured, 6_000);
  });

  test('a payment captured for more than the PSP captured: fix books one capture adjustment, fails the superseded capture, records the PSP\'s, and books once', async () => {
    const p = await pay(h, { amount: 9_000, connector_account: account.id });
    // at the PSP the capture becomes 6,000 (the scheme rejected the first, the PSP's dashboard captured less)
    psp.failCapture(p.connector_ref);
    psp.dashboardCapture(p.connector_ref, 6_000);
    const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 1_000 } });
    assert.equal(r.body.status, 'succeeded', r.raw);

    assert.deepEqual(of(await reconcile(), p.id), ['captured_amount open']);
    assert.equal((await h.call('GET', `/v1/payments/${p.id}`, { key: key() })).body.amount_captured, 9_000, 'reporting changes nothing');

    const fixed = await reconcile(true);
    assert.deepEqual(of(fixed, p.id), ['captured_amount fixed']);
    const g = (await h.call('GET', `/v1/payments/${p.id}`, { key: key() })).body;
    assert.equal(g.amount_captured, psp.totals(p.connector_ref).amount_captured);
    assert.deepEqual([g.status, g.amount_captured, g.amount_refunded, g.amount_refundable, g.amount_capturable], ['partially_refunded', 6_000, 1_000, 5_000, 0]);
    assert.deepEqual(captures(g), [[9_000, 'failed'], [6_000, 'succeeded']], 'the superseded capture failed, the PSP\'s recorded');
    const [adjustment, ...more] = await adjustments(p.id);
    assert.deepEqual(more, []);
    assert.deepEqual(adjustment.entries.map((e: any) => [e.account, e.direction, e.amount]).sort(),
      [[`connector_clearing:${account.short_id}`, 'credit', 3_000], ['merchant_balance', 'debit', 3_000]]);
    assert.deepEqual(await ledger(p.id), { captured: 6_000, refunded: 1_000, refundBookings: 1 });
    await verify();
    assert.equal((await latestEvent(p.id, 'payment.captured')).data.object.amount_captured, 6_000, 'announced with the PSP\'s amount');

    // booked once: a second run finds nothing, and the correction itself is a no-op now
    assert.deepEqual(of(await reconcile(true), p.id), []);
    const again = await h.rt.services.payments.correctCapture(p.id, { kind: 'psp_amount', captured: 6_000, pspStatus: 'captured' });
    assert.equal(again.outcome, 'unchanged');
    assert.equal((await adjustments(p.id)).length, 1);
    await verify();
  });

  test('a payment captured for less than the PSP captured: corrected up through one adjustment', async () => {
    const p = await pay(h, { amount: 9_000, capture_method: 'manual', connector_account: account.id });
    assert.equal((await h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body: { amount: 4_000 } })).status, 200);
    psp.failCapture(p.connector_ref);
    psp.dashboardCapture(p.connector_ref, 7_000);
    // two corrections at once: one books, the other finds it done
    const both = await Promise.all([1, 2].map(() => h.rt.services.payments.correctCapture(p.id, { kind: 'psp_amount', captured: 7_000, pspStatus: 'captured' })));
    assert.deepEqual(both.map((b) => b.outcome).sort(), ['corrected', 'unchanged']);
    const g = (await h.call('GET', `/v1/payments/${p.id}`, { key: key() })).body;
    assert.deepEqual([g.status, g.amount_captured, g.amount_refundable], ['succeeded', 7_000, 7_000]);
    assert.deepEqual(captures(g), [[4_000, 'failed'], [7_000, 'succeeded']]);
    const [adjustment] = await adjustments(p.id);
    assert.deepEqual(adjustment.entries.find((e: any) => e.account === 'merchant_balance'), { account: 'merchant_balance', direction: 'credit', amount: 3_000, currency: 'USD' });
    assert.deepEqual(of(await reconcile(true), p.id), []);
    assert.deepEqual(await ledger(p.id), { captured: 7_000, refunded: 0, refundBookings: 0 });
    await verify();
  });

  test('nothing captured at the PSP and its authorization open: back to requires_capture with payment.failed, and captured again under a new PSP key', async () => {
    const p = await pay(h, { amount: 5_000, connector_account: account.id });
    psp.failCapture(p.connector_ref);
    assert.deepEqual(of(await reconcile(true), p.id), ['captured_amount fixed']);
    const g = (await h.call('GET', `/v1/payments/${p.id}`, { key: key() })).body;
    assert.deepEqual([g.status, g.amount_captured, g.amount_capturable, g.amount_refundable, g.failure_code], ['requires_capture', 0, 5_000, 0, 'capture_failed']);
    assert.deepEqual(captures(g), [[5_000, 'failed']]);
    assert.equal((await latestEvent(p.id, 'payment.failed')).data.object.status, 'requires_capture');
    assert.equal((await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: {} })).body.error.code, 'not_refundable');

    const c = await h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body: { amount: 3_000 } });
    assert.equal(c.status, 200, c.raw);
    assert.deepEqual([c.body.status, c.body.amount_captured, c.body.failure_code], ['succeeded', 3_000, null]);
    assert.equal(psp.totals(p.connector_ref).amount_captured, 3_000, 'the PSP captured again: not a replay of the failed capture');
    assert.deepEqual(await ledger(p.id), { captured: 3_000, refunded: 0, refundBookings: 0 });
    assert.deepEqual(of(await reconcile(true), p.id), []);
    await verify();
  });

  test('a PSP capture below what refunds hold in the gateway is reported, never booked; once the refund is settled, fix converges', async () => {
    const p = await pay(h, { amount: 5_000, connector_account: account.id });
    control.refundsUnanswered = true;
    try {
      const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 4_000 } });
      assert.equal(r.body.status, 'pending', r.raw);
      psp.failCapture(p.connector_ref);
      psp.dashboardCapture(p.connector_ref, 1_000);

      const found = await reconcile(true);
      const [d, ...others] = found.differences.filter((x) => x.payment_id === p.id);
      assert.deepEqual(others, []);
      assert.deepEqual([d.kind, d.status], ['captured_amount', 'open'], 'not fixed: the CLI exits 1');
      assert.match(d.message, /the PSP captured 1000, less than the 0 refunded and 4000 held by pending refunds in the gateway\. --fix cannot resolve this without inventing money/);
      const g = (await h.call('GET', `/v1/payments/${p.id}`, { key: key() })).body;
      assert.deepEqual([g.amount_captured, g.amount_refundable], [5_000, 1_000], 'nothing booked');
      assert.deepEqual(await adjustments(p.id), []);
      assert.deepEqual(of(await reconcile(true), p.id), ['captured_amount open'], 'reported on every run');
    } finally {
      control.refundsUnanswered = false;
    }
    // the PSP answers: it never had the refund, which fails and releases its hold; the capture follows the PSP
    assert.deepEqual(of(await reconcile(true), p.id), ['captured_amount fixed', 'refund_status fixed']);
    const g = (await h.call('GET', `/v1/payments/${p.id}`, { key: key() })).body;
    assert.deepEqual([g.status, g.amount_captured, g.amount_refunded, g.amount_refundable], ['succeeded', 1_000, 0, 1_000]);
    assert.deepEqual(of(await reconcile(true), p.id), []);
    await verify();
  });

  test('a refund pending in the gateway that the PSP completed, on a payment with no activity in the window: found and finished once', async () => {
    const p = await pay(h, { amount: 5_000, connector_account: account.id, payment_method: 'pm_card_refund_pending' });
    const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 1_500 } });
    assert.equal(r.status, 201, r.raw);
    assert.equal(r.body.status, 'pending');
    psp.completeRefund(r.body.connector_ref);
    // the payment's last change is older than the window
    await h.db.query(`UPDATE payments SET updated_at = now() - interval '3 days' WHERE id = $1`, [p.id]);

    const found = await reconcile();
    assert.deepEqual(of(found, p.id), ['refund_status open', 'refunded_amount open']);

    const fixed = await reconcile(true);
    assert.deepEqual(of(fixed, p.id), ['refund_status fixed', 'refunded_amount fixed']);
    const refund = (await h.call('GET', `/v1/refunds/${r.body.id}`, { key: key() })).body;
    assert.equal(refund.status, 'succeeded');
    const g = (await h.call('GET', `/v1/payments/${p.id}`, { key: key() })).body;
    assert.equal(g.amount_refunded, psp.totals(p.connector_ref).amount_refunded);
    assert.equal(g.amount_refunded, 1_500);
    assert.deepEqual(await ledger(p.id), { captured: 5_000, refunded: 1_500, refundBookings: 1 });
    // the refund path already finished it: a late report of the same outcome books nothing more
    await h.rt.services.refunds.finish(r.body, { status: 'succeeded', connectorRef: r.body.connector_ref });
    assert.deepEqual(of(await reconcile(true), p.id), []);
    assert.deepEqual(await ledger(p.id), { captured: 5_000, refunded: 1_500, refundBookings: 1 });
    await verify();
  });

  test('a pending refund the PSP failed, with a PSP that cannot list refunds: asked refund by refund, failed through the refund path', async () => {
    const p = await pay(h, { amount: 4_000, connector_account: account.id, payment_method: 'pm_card_refund_pending' });
    const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 4_000 } });
    assert.equal(r.body.status, 'pending', r.raw);
    psp.failRefund(r.body.connector_ref, 'bank_rejected');
    control.blind = true;
    try {
      const found = await reconcile();
      assert.deepEqual(of(found, p.id), ['refund_status open']);
      assert.ok(found.unverifiable.some((u) => u.paymentId === p.id), 'the payment itself stays unverifiable');

      const fixed = await reconcile(true);
      assert.deepEqual(of(fixed, p.id), ['refund_status fixed']);
      const refund = (await h.call('GET', `/v1/refunds/${r.body.id}`, { key: key() })).body;
      assert.equal(refund.status, 'failed');
      const g = (await h.call('GET', `/v1/payments/${p.id}`, { key: key() })).body;
      assert.equal(g.amount_refunded, 0);
      assert.equal(g.amount_refundable, 4_000, 'the held amount is released');
      assert.deepEqual(await ledger(p.id), { captured: 4_000, refunded: 0, refundBookings: 0 });
      assert.deepEqual(of(await reconcile(true), p.id), []);
    } finally {
      control.blind = false;
    }
    await verify();
  });
});
