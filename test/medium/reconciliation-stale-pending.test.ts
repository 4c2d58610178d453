/**
 * A refund on a PSP without a status query (Adyen) stays pending until its notification comes.
 * When none comes, reconciliation reports the refund once it has been pending longer than
 * `SETTLE_RECONCILE_STALE_PENDING_HOURS`: a `refund_pending_too_long` difference, stored, counted
 * in /metrics and announced like every difference, never finished by `fix` (only the PSP's
 * notification may say what happened), and resolved once the notification arrives. A PSP that
 * can be asked (the sandbox) has its long-pending refunds left to the refund sync.
 *
 * The gateway's real Adyen connector talks to the psp-sim's Adyen wire over loopback; no
 * notification target is registered at the sim, so its notifications are lost. Refunds are aged
 * by moving their `created_at` back.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { startPspSim, type PspSimHandle } from '../../src/psp-sim/server.js';
import { postgresOrSkip } from '../helpers/databases.js';
import { BACKENDS, createHarness, pay, type Backend, type Harness } from '../helpers/harness.js';
import { notification } from '../helpers/adyen-notifications.js';

const HOUR = 3_600_000;

for (const backend of BACKENDS) {
  describe(`refunds pending too long on a PSP without a status query (${backend})`, () => {
    let h: Harness | undefined;
    let sim: PspSimHandle | undefined;
    let adyen: any;
    let sandbox: any;
    const creds = {
      api_key: `AQE${randomBytes(24).toString('base64url')}`,
      merchant_account: `SettleStale${randomBytes(4).toString('hex')}ECOM`,
      hmac_key: randomBytes(32).toString('hex').toUpperCase(),
    };

    before(async (t) => {
      if (backend === 'postgres' && !(await postgresOrSkip(t as never))) return;
      sim = await startPspSim({ port: 0, wire: 'adyen' });
      h = await createHarness(backend as Backend, { env: { SETTLE_ADYEN_CHECKOUT_BASE: sim.url } });
      const a = await h.call('POST', '/v1/connector_accounts', { key: h.merchant.testKey, body: { connector: 'adyen', credentials: creds } });
      assert.equal(a.status, 201, a.raw);
      adyen = a.body;
      const s = await h.call('POST', '/v1/connector_accounts', { key: h.merchant.testKey, body: { connector: 'sandbox', settings: { pending_delay_ms: 86_400_000 } } });
      assert.equal(s.status, 201, s.raw);
      sandbox = s.body;
    });
    after(async () => {
      await h?.close();
      await sim?.close();
    });

    const it = (name: string, fn: (h: Harness) => Promise<void>) => test(name, async (t) => (h ? fn(h) : t.skip('no postgres')));
    const key = () => h!.merchant.testKey;
    const reconcile = (o: { fix?: boolean; stalePendingMs?: number } = {}) =>
      h!.rt.services.reconciliation.run({ since: new Date(Date.now() - HOUR), stalePendingMs: 24 * HOUR, ...o });
    const of = (report: Awaited<ReturnType<typeof reconcile>>, paymentId: string) =>
      report.differences.filter((d) => d.payment_id === paymentId).map((d) => `${d.kind} ${d.refund_id} ${d.status}`).sort();
    const age = (refundId: string, hours: number) =>
      h!.db.query(`UPDATE refunds SET created_at = now() - make_interval(hours => $2) WHERE id = $1`, [refundId, hours]);
    const refund = async (paymentId: string, amount: number) => {
      const r = await h!.call('POST', `/v1/payments/${paymentId}/refunds`, { key: key(), body: { amount } });
      assert.equal(r.status, 201, r.raw);
      assert.equal(r.body.status, 'pending', r.raw);
      return r.body;
    };

    it('reported past the threshold (stored, counted, announced once), never finished by fix, resolved when the notification comes', async (h) => {
      const p = await pay(h, { amount: 8_000, connector_account: adyen.id });
      const old = await refund(p.id, 1_500);
      const fresh = await refund(p.id, 500);
      assert.match(old.connector_ref, /^[A-Z0-9]{16}$/, 'Adyen received it');
      await age(old.id, 25);
      await age(fresh.id, 2);

      // under the threshold nothing is said; the payment itself stays unverifiable
      const under = await reconcile({ stalePendingMs: 26 * HOUR });
      assert.deepEqual(of(under, p.id), []);
      assert.ok(under.unverifiable.some((u) => u.paymentId === p.id));

      const found = await reconcile();
      assert.deepEqual(of(found, p.id), [`refund_pending_too_long ${old.id} open`], 'the old refund only');
      const d = found.differences.find((x) => x.payment_id === p.id)!;
      assert.equal(d.connector_ref, old.connector_ref);
      assert.equal(d.gateway, 'pending');
      assert.equal(d.psp, null);
      assert.match(d.message, /pending for 25 hours/);
      assert.ok(found.unverifiable.some((u) => u.paymentId === p.id), 'the payment itself is still not guessed at');

      const listed = await h.call('GET', `/v1/reconciliation/differences?payment_id=${p.id}&status=open`, { key: key() });
      assert.deepEqual(listed.body.data.map((x: any) => [x.kind, x.refund_id]), [['refund_pending_too_long', old.id]]);
      const metrics = (await h.call('GET', '/metrics')).raw;
      assert.match(metrics, /settle_reconciliation_differences_total\{kind="refund_pending_too_long"\} 1\b/);
      assert.match(metrics, /settle_reconciliation_differences_open [1-9]/);

      // fix finishes nothing: the refund stays pending, its amount held, nothing booked
      const fixed = await reconcile({ fix: true });
      assert.deepEqual(of(fixed, p.id), [`refund_pending_too_long ${old.id} open`]);
      assert.equal((await h.call('GET', `/v1/refunds/${old.id}`, { key: key() })).body.status, 'pending');
      const g = (await h.call('GET', `/v1/payments/${p.id}`, { key: key() })).body;
      assert.deepEqual([g.amount_refunded, g.amount_refundable], [0, 6_000]);
      const booked = await h.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ledger_transactions WHERE payment_id = $1 AND type = 'refund'`, [p.id]);
      assert.equal(booked.rows[0].n, 0);

      // announced as every difference is, once, though every run finds it
      const events = await h.call('GET', '/v1/events?type=reconciliation.difference_found&limit=100', { key: key() });
      const announced = events.body.data.filter((e: any) => e.data.object.payment_id === p.id);
      assert.deepEqual(announced.map((e: any) => [e.data.object.kind, e.data.object.refund_id]), [['refund_pending_too_long', old.id]]);
      assert.match((await h.call('GET', '/metrics')).raw, /settle_reconciliation_differences_total\{kind="refund_pending_too_long"\} 1\b/);

      // the operator has Adyen resend the notification: the refund finishes, the difference is resolved
      const body = notification(creds.hmac_key, [{
        pspReference: old.connector_ref, originalReference: p.connector_ref, merchantAccountCode: creds.merchant_account,
        merchantReference: old.id, value: 1_500, currency: 'USD', eventCode: 'REFUND',
      }]);
      const ack = await h.call('POST', adyen.webhook_path, { payload: body, headers: { 'content-type': 'application/json' } });
      assert.equal(ack.raw, '[accepted]');
      await h.rt.services.inbound.processDue();
      assert.equal((await h.call('GET', `/v1/refunds/${old.id}`, { key: key() })).body.status, 'succeeded');
      assert.deepEqual(of(await reconcile(), p.id), []);
      const after = await h.call('GET', `/v1/reconciliation/differences?payment_id=${p.id}`, { key: key() });
      assert.deepEqual(after.body.data.map((x: any) => [x.kind, x.status]), [['refund_pending_too_long', 'resolved']]);
      assert.deepEqual((await h.rt.services.ledger.verify()).violations, []);
    });

    it('a refund long pending on a PSP that can be asked is left to the refund sync: not reported', async (h) => {
      const p = await pay(h, { amount: 3_000, connector_account: sandbox.id, payment_method: 'pm_card_refund_pending' });
      const r = await refund(p.id, 1_000);
      await age(r.id, 72);
      assert.deepEqual(of(await reconcile(), p.id), []);
      assert.equal((await h.call('GET', `/v1/refunds/${r.id}`, { key: key() })).body.status, 'pending');
    });
  });
}

test('SETTLE_RECONCILE_STALE_PENDING_HOURS: 24 by default, whole hours from 1', () => {
  assert.equal(loadConfig({}).reconcileStalePendingHours, 24);
  assert.equal(loadConfig({ SETTLE_RECONCILE_STALE_PENDING_HOURS: '6' }).reconcileStalePendingHours, 6);
  for (const bad of ['0', '1.5', 'a day']) assert.throws(() => loadConfig({ SETTLE_RECONCILE_STALE_PENDING_HOURS: bad }), /SETTLE_RECONCILE_STALE_PENDING_HOURS/);
});
