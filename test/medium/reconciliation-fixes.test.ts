/**
 * Reconciliation finds, and with `fix` corrects through the gateway's own booking paths:
 * - a capture the PSP made that the gateway never heard of (captured amounts differ): booked as
 *   an API capture is, through the ledger;
 * - refunds pending in the gateway that the PSP has finished (succeeded or failed), also on
 *   payments with no other activity in the window and with PSPs that cannot list a payment's
 *   refunds: finished through the refund path, booked once.
 * Differences are injected into the sandbox PSP on purpose; its webhooks reach nobody here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Connector, ConnectorRegistry } from '../../src/connectors/connector.js';
import { createSandboxConnector } from '../../src/connectors/sandbox/sandbox.connector.js';
import { SandboxPsp } from '../../src/psp-sim/psp-model.js';
import { createHarness, pay, type Harness } from '../helpers/harness.js';

/** The sandbox PSP; `blind` makes it unable to tell a payment's state (like Adyen's Checkout API),
 *  while it still answers refund status queries. */
function sandbox(psp: SandboxPsp) {
  const inner = createSandboxConnector({ psp });
  const control = { blind: false };
  const connector: Connector = {
    ...inner,
    async paymentState(ctx, req) {
      if (control.blind) return { paymentRef: req.paymentRef, status: 'unknown', amountCaptured: null, amountRefunded: null, refunds: null };
      return inner.paymentState(ctx, req);
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
    const r = await h.db.query<{ type: string; amount: string }>(
      `SELECT t.type, e.amount FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
        WHERE t.payment_id = $1 AND e.account = 'merchant_balance'`, [paymentId]);
    const sum = (type: string) => r.rows.filter((x) => x.type === type).reduce((s, x) => s + Number(x.amount), 0);
    return { captured: sum('capture'), refunded: sum('refund') - sum('refund_reversal'), refundBookings: r.rows.filter((x) => x.type === 'refund').length };
  }
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
