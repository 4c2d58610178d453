/**
 * What the PSP reports is never dropped: refunds it reports (dashboard refunds, failed and
 * pending ones, ones colliding with refunds in flight), webhooks of realistic size, and the
 * connector accounts that refunds and captures still need.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Connector } from '../../src/connectors/connector.js';
import { createSandboxConnector } from '../../src/connectors/sandbox/sandbox.connector.js';
import { signSandboxWebhook } from '../../src/connectors/sandbox/sandbox-signature.js';
import { newSandboxEventId, type SandboxWebhookEvent } from '../../src/connectors/sandbox/sandbox-webhook.js';
import { SandboxPsp } from '../../src/psp-sim/psp-model.js';
import { postgresOrSkip } from '../helpers/databases.js';
import { BACKENDS, createHarness, pay, type Harness } from '../helpers/harness.js';

/** The in-process PSP, with a gate that holds the first refund call of a payment on its way to
 *  the PSP (a refund in flight, its amount held by the gateway). */
function gatedSandbox(psp: SandboxPsp) {
  const inner = createSandboxConnector({ psp });
  const gate = { hold: new Set<string>(), release: () => {}, released: Promise.resolve() };
  const connector: Connector = {
    ...inner,
    async refund(ctx, req) {
      if (gate.hold.delete(req.paymentRef)) await gate.released;
      return inner.refund(ctx, req);
    },
  };
  const holdNext = (paymentRef: string) => {
    gate.hold.add(paymentRef);
    gate.released = new Promise<void>((resolve) => (gate.release = resolve));
    return () => gate.release();
  };
  return { connector, holdNext };
}

for (const backend of BACKENDS) {
  describe(`PSP reports on ${backend}`, () => {
    const psp = new SandboxPsp();
    const { connector, holdNext } = gatedSandbox(psp);
    let h: Harness;
    let skip = false;
    before(async (t) => {
      if (backend === 'postgres' && !(await postgresOrSkip(t as never))) {
        skip = true;
        return;
      }
      h = await createHarness(backend, { connectors: new Map([['sandbox', connector]]), env: { SETTLE_REFUND_SYNC_BASE_MS: '60000' } });
    });
    after(async () => {
      psp.dispose();
      await h?.close();
    });
    const it = (name: string, fn: () => Promise<void>) => test(name, async (t) => (skip ? t.skip('no postgres') : fn()));
    const key = () => h.merchant.testKey;
    const account = () => h.merchant.testAccount;

    /** Posts the PSP's signed webhook to the inbound route and processes what was stored. */
    async function deliver(event: SandboxWebhookEvent, to: { id: string; webhook_secret: string } = account()) {
      const raw = JSON.stringify(event);
      const res = await h.app.inject({
        method: 'POST',
        url: `/v1/connectors/sandbox/webhooks/${to.id}`,
        headers: { 'content-type': 'application/json', 'sandbox-signature': signSandboxWebhook(to.webhook_secret, raw) },
        payload: raw,
      });
      // the route starts a processing pass of its own: wait for whichever pass takes it
      for (let i = 0; i < 500; i++) {
        await h.rt.services.inbound.processDue();
        const row = await h.db.query<{ status: string; attempts: number }>('SELECT status, attempts FROM inbound_webhooks WHERE psp_event_id = $1', [event.id]);
        if (row.rows[0]?.status === 'processed' || row.rows[0]?.status === 'failed' || (row.rows[0]?.attempts ?? 0) > 1) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      return { res, size: Buffer.byteLength(raw) };
    }
    const refundedEvent = (paymentRef: string): SandboxWebhookEvent => {
      const t = psp.totals(paymentRef);
      return {
        id: newSandboxEventId(),
        type: 'payment.refunded',
        created: Math.floor(Date.now() / 1000),
        data: {
          payment_ref: paymentRef,
          amount_refunded: t.amount_refunded,
          refunds: t.refunds.map((r) => ({ refund_ref: r.refund_ref, amount: r.amount, status: r.status, reference: r.reference, failure_code: null, failure_message: null })),
        },
      };
    };
    const refundUpdated = (paymentRef: string, refundRef: string): SandboxWebhookEvent => {
      const r = psp.refundView(refundRef)!;
      return {
        id: newSandboxEventId(),
        type: 'refund.updated',
        created: Math.floor(Date.now() / 1000),
        data: { refund_ref: r.id, amount: r.amount, status: r.status, reference: r.reference, failure_code: r.failure_code, failure_message: r.failure_message, payment_ref: paymentRef },
      };
    };
    const payment = async (id: string) => (await h.call('GET', `/v1/payments/${id}`, { key: key() })).body;
    const refundsOf = async (id: string) => (await h.call('GET', `/v1/refunds?payment_id=${id}&limit=100`, { key: key() })).body.data;

    it('accepts a PSP webhook listing a few hundred refunds, far above the API body limit, and books them', async () => {
      const p = await pay(h, { amount: 100_000 });
      for (let i = 0; i < 600; i++) psp.dashboardRefund(p.connector_ref, 10);
      const { res, size } = await deliver(refundedEvent(p.connector_ref));
      assert.ok(size > 64 * 1024, `the webhook is ${size} bytes`);
      assert.equal(res.statusCode, 200, res.body);
      const g = await payment(p.id);
      assert.equal(g.amount_refunded, 6000);
      assert.equal(g.amount_refunded, psp.totals(p.connector_ref).amount_refunded);
    });

    it('records a dashboard refund colliding with a refund in flight: the PSP refuses the held one, the gateway converges to the PSP', async () => {
      const p = await pay(h, { amount: 10_000 });
      const release = holdNext(p.connector_ref);
      const inFlight = h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 6000 } });
      // the API refund holds 6000 and has not reached the PSP; the dashboard refunds 5000 there
      for (let i = 0; i < 100 && (await payment(p.id)).amount_refundable !== 4000; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal((await payment(p.id)).amount_refundable, 4000);
      const dashboard = psp.dashboardRefund(p.connector_ref, 5000);
      await deliver(refundedEvent(p.connector_ref));
      release();
      const api = await inFlight;
      assert.equal(api.status, 201, api.raw);
      assert.equal(api.body.status, 'failed');
      assert.equal(api.body.failure_code, 'amount_exceeds_refundable');
      const g = await payment(p.id);
      assert.equal(g.amount_refunded, 5000);
      assert.equal(g.amount_refunded, psp.totals(p.connector_ref).amount_refunded);
      assert.equal(g.amount_refundable, 5000);
      const recorded = (await refundsOf(p.id)).find((r: any) => r.connector_ref === dashboard.id);
      assert.equal(recorded.source, 'connector');
      assert.equal(recorded.status, 'succeeded');
    });

    it('records a dashboard refund exactly equal to the refundable balance beside a refund in flight, which still succeeds', async () => {
      const p = await pay(h, { amount: 10_000 });
      const release = holdNext(p.connector_ref);
      const inFlight = h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 4000 } });
      for (let i = 0; i < 100 && (await payment(p.id)).amount_refundable !== 6000; i++) await new Promise((r) => setTimeout(r, 10));
      psp.dashboardRefund(p.connector_ref, 6000);
      await deliver(refundedEvent(p.connector_ref));
      const held = (await refundsOf(p.id)).find((r: any) => r.source === 'api');
      assert.equal(held.status, 'pending', 'a report that fits never touches the refunds in flight');
      release();
      assert.equal((await inFlight).body.status, 'succeeded');
      const g = await payment(p.id);
      assert.equal(g.amount_refunded, 10_000);
      assert.equal(g.status, 'refunded');
      assert.equal(g.amount_refunded, psp.totals(p.connector_ref).amount_refunded);
    });

    it('records a failed connector-reported refund as failed and a pending one as pending, holding its amount', async () => {
      const p = await pay(h, { amount: 10_000 });
      const failed = psp.dashboardRefund(p.connector_ref, 1000);
      psp.failRefund(failed.id, 'bank_rejected', 'The bank said no.');
      await deliver(refundUpdated(p.connector_ref, failed.id));
      const pendingRef = psp.dashboardRefund(p.connector_ref, 2000, { forcePending: true, pendingDelayMs: 3_600_000 });
      await deliver(refundUpdated(p.connector_ref, pendingRef.id));
      const byRef = new Map((await refundsOf(p.id)).map((r: any) => [r.connector_ref, r]));
      const f: any = byRef.get(failed.id);
      // the PSP's code is kept; its text is replaced by Settle's message for that code
      assert.deepEqual([f.status, f.source, f.amount, f.failure_code, f.failure_message], ['failed', 'connector', 1000, 'bank_rejected', 'The bank rejected the refund after accepting it.']);
      const pe: any = byRef.get(pendingRef.id);
      assert.deepEqual([pe.status, pe.source, pe.amount], ['pending', 'connector', 2000]);
      const g = await payment(p.id);
      assert.equal(g.amount_refunded, 0);
      assert.equal(g.amount_refundable, 8000);
    });

    it('two racing failure reports of one succeeded refund reverse it once', async () => {
      const p = await pay(h, { amount: 10_000 });
      const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 3000 } });
      assert.equal(r.body.status, 'succeeded');
      await Promise.all([
        h.rt.services.refunds.reverse(r.body.id, 'bank_rejected', 'first report'),
        h.rt.services.refunds.reverse(r.body.id, 'bank_rejected', 'second report'),
      ]);
      const g = await payment(p.id);
      assert.equal(g.amount_refunded, 0);
      const reversals = await h.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ledger_transactions WHERE refund_id = $1 AND type = 'refund_reversal'`, [r.body.id]);
      assert.equal(reversals.rows[0].n, 1);
      const events = await h.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM events WHERE type = 'refund.failed' AND object_id = $1`, [r.body.id]);
      assert.equal(events.rows[0].n, 1);
    });

    it('releases the line-item quantities of a failed refund and of a reversed one, on a line other than the first', async () => {
      const lines = [{ id: 'li_a', name: 'A', quantity: 2, unit_amount: 1000 }, { id: 'li_b', name: 'B', quantity: 3, unit_amount: 2000 }];
      const failing = await pay(h, { amount: 8000, payment_method: 'pm_card_refund_fails', line_items: lines });
      const f = await h.call('POST', `/v1/payments/${failing.id}/refunds`, { key: key(), body: { line_items: [{ id: 'li_b', quantity: 2 }] } });
      assert.equal(f.body.status, 'failed');
      assert.deepEqual((await payment(failing.id)).line_items.map((li: any) => li.quantity_refunded), [0, 0]);

      const ok = await pay(h, { amount: 8000, line_items: lines });
      const s = await h.call('POST', `/v1/payments/${ok.id}/refunds`, { key: key(), body: { line_items: [{ id: 'li_b', quantity: 2 }] } });
      assert.equal(s.body.status, 'succeeded');
      assert.equal(s.body.amount, 4000);
      assert.deepEqual((await payment(ok.id)).line_items.map((li: any) => li.quantity_refunded), [0, 2]);
      psp.failRefund(s.body.connector_ref);
      await deliver(refundUpdated(ok.connector_ref, s.body.connector_ref));
      const g = await payment(ok.id);
      assert.deepEqual(g.line_items.map((li: any) => li.quantity_refunded), [0, 0]);
      assert.equal(g.amount_refunded, 0);
    });

    it('refuses to hard-delete a connector account with pending refunds or uncaptured payments (409), and allows it once they are finished', async () => {
      const acct = await h.call('POST', '/v1/connector_accounts', { key: key(), body: { connector: 'sandbox', name: 'to delete', settings: { pending_delay_ms: 3_600_000 } } });
      const uncaptured = await pay(h, { amount: 5000, capture_method: 'manual', connector_account: acct.body.id });
      const refused = await h.call('DELETE', `/v1/connector_accounts/${acct.body.id}?hard=true`, { key: key() });
      assert.equal(refused.status, 409);
      assert.equal(refused.body.error.code, 'connector_account_in_use');
      assert.equal(refused.body.error.param, 'id');
      assert.match(refused.body.error.message, /0 pending refund\(s\) and 1 uncaptured payment/);
      assert.equal((await h.call('POST', `/v1/payments/${uncaptured.id}/cancel`, { key: key() })).status, 200);

      const slow = await pay(h, { amount: 5000, payment_method: 'pm_card_refund_pending', connector_account: acct.body.id });
      assert.equal((await h.call('POST', `/v1/payments/${slow.id}/refunds`, { key: key(), body: { amount: 1000 } })).body.status, 'pending');
      const again = await h.call('DELETE', `/v1/connector_accounts/${acct.body.id}?hard=true`, { key: key() });
      assert.equal(again.status, 409);
      assert.match(again.body.error.message, /1 pending refund\(s\) and 0 uncaptured/);
      assert.equal((await h.call('GET', `/v1/connector_accounts/${acct.body.id}`, { key: key() })).status, 200, 'nothing was deleted');

      psp.settlePending(slow.connector_ref);
      const [pendingRefund] = (await refundsOf(slow.id));
      await deliver(refundUpdated(slow.connector_ref, pendingRefund.connector_ref), acct.body);
      const done = await h.call('DELETE', `/v1/connector_accounts/${acct.body.id}?hard=true`, { key: key() });
      assert.equal(done.status, 200, done.raw);
      assert.equal(done.body.deleted, true);
    });
  });
}
