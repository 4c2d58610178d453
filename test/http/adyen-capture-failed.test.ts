/**
 * Adyen's CAPTURE_FAILED after the gateway booked the capture Adyen answered `received`: the
 * gateway's Adyen connector talks HTTP to the psp-sim's Adyen wire, whose notifications come back
 * over HTTP to the gateway's inbound route. The capture is undone through the capture correction
 * path (docs/connectors.md, Adyen mapping): the capture transaction fails, a capture adjustment
 * books the money back, the payment waits for a capture again, once however often the notice
 * comes. When refunds stand on the capture, nothing is undone: an open reconciliation difference
 * says so, and `reconcile --fix` undoes the capture once the refunds have failed at the PSP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startPspSim, type PspSimHandle } from '../../src/psp-sim/server.js';
import { notification, pspReference } from '../helpers/adyen-notifications.js';
import { ADYEN_SETUP } from '../helpers/connectors.js';
import { createHarness, type Harness } from '../helpers/harness.js';

describe('Adyen CAPTURE_FAILED after a capture the gateway booked (Adyen wire over HTTP)', () => {
  let sim: PspSimHandle;
  let h: Harness;
  let gatewayUrl: string;
  let account: any;
  let creds: { api_key: string; merchant_account: string; hmac_key: string };

  before(async () => {
    sim = await startPspSim({ port: 0, wire: 'adyen' });
    h = await createHarness('pglite', { env: ADYEN_SETUP.gatewayEnv(sim.url) });
    gatewayUrl = await h.app.listen({ port: 0, host: '127.0.0.1' });
    const plan = ADYEN_SETUP.account(sim.url, { pendingDelayMs: 3_600_000 });
    creds = (plan.body as { credentials: typeof creds }).credentials;
    const r = await h.call('POST', '/v1/connector_accounts', { key: h.merchant.testKey, body: plan.body });
    assert.equal(r.status, 201, r.raw);
    account = r.body;
    await simCall('PUT', `/_sim/accounts/${plan.simAccount(account)}/webhook`, { url: `${gatewayUrl}${account.webhook_path}`, secret: account.webhook_secret });
    // duplicates on: every notification arrives twice
    await simCall('PUT', '/_sim/faults', { ...plan.faults, webhook: { duplicate: true } });
  });
  after(async () => {
    await h?.close();
    await sim?.close();
  });

  async function simCall(method: string, path: string, body?: unknown) {
    const r = await fetch(sim.url + path, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
    const text = await r.text();
    assert.ok(r.ok, `${method} ${path}: ${r.status} ${text}`);
    return JSON.parse(text);
  }
  const key = () => h.merchant.testKey;
  const get = async (path: string) => (await h.call('GET', path, { key: key() })).body;
  const pay = async (body: Record<string, unknown>) => {
    const r = await h.call('POST', '/v1/payments', { key: key(), body: { amount: 5_000, currency: 'EUR', payment_method: 'pm_card_visa', connector_account: account.id, ...body } });
    assert.equal(r.status, 201, r.raw);
    return r.body;
  };
  /** The inbound worker's passes until `done` holds (notifications arrive over HTTP meanwhile). */
  async function processUntil(done: () => Promise<boolean>, what: string) {
    for (let i = 0; i < 200; i++) {
      await h.rt.services.inbound.processDue();
      if (await done()) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.fail(`never: ${what}`);
  }
  const stored = async (eventId: string) =>
    (await h.db.query<{ status: string }>(`SELECT status FROM inbound_webhooks WHERE connector_account_id = $1 AND psp_event_id = $2`, [account.id, eventId])).rows;
  const captures = (p: any) => p.transactions.filter((t: any) => t.type === 'capture').map((t: any) => [t.amount, t.status, t.connector_ref]);
  const adjustments = async (paymentId: string) =>
    (await get(`/v1/ledger/transactions?payment_id=${paymentId}&limit=100`)).data.filter((t: any) => t.type === 'capture_adjustment');
  const verify = async () => assert.deepEqual((await h.rt.services.ledger.verify()).violations, []);
  const post = (body: string) => fetch(`${gatewayUrl}${account.webhook_path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then((r) => r.text());

  test('the capture is undone once: capture failed, money booked back, payment.failed, requires_capture — and it can be captured again', async () => {
    const p = await pay({ capture_method: 'manual' });
    const c = await h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body: {} });
    assert.equal(c.status, 200, c.raw);
    const [[, , captureRef]] = captures(c.body);
    assert.notEqual(captureRef, p.connector_ref, 'the capture transaction keeps the capture\'s own pspReference');

    await simCall('POST', `/_sim/payments/${p.connector_ref}/capture_failed`);
    await processUntil(async () => (await get(`/v1/payments/${p.id}`)).status === 'requires_capture', 'the capture is undone');
    const g = await get(`/v1/payments/${p.id}`);
    assert.deepEqual([g.amount_captured, g.amount_capturable, g.amount_refundable, g.failure_code], [0, 5_000, 0, 'capture_failed']);
    assert.deepEqual(captures(g), [[5_000, 'failed', captureRef]]);
    const [adjustment, ...more] = await adjustments(p.id);
    assert.deepEqual(more, []);
    assert.deepEqual(adjustment.entries.find((e: any) => e.account === 'merchant_balance'), { account: 'merchant_balance', direction: 'debit', amount: 5_000, currency: 'EUR' });
    const failed = (await get(`/v1/events?object_id=${p.id}&type=payment.failed`)).data;
    assert.equal(failed.length, 1);
    assert.equal(failed[0].data.object.status, 'requires_capture');
    await verify();

    // the notice again (Adyen retries; another item reporting the same capture failed): nothing more
    const again = notification(creds.hmac_key, [
      { pspReference: captureRef, originalReference: p.connector_ref, merchantAccountCode: creds.merchant_account, merchantReference: p.id, value: 5_000, eventCode: 'CAPTURE_FAILED' },
      { pspReference: captureRef, originalReference: p.connector_ref, merchantAccountCode: creds.merchant_account, merchantReference: p.id, value: 5_000, eventCode: 'CAPTURE', success: false },
    ]);
    assert.equal(await post(again), '[accepted]');
    await processUntil(async () => (await stored(`${captureRef}:CAPTURE:false`))[0]?.status === 'processed', 'the second notice is processed');
    assert.equal((await stored(`${captureRef}:CAPTURE_FAILED:true`)).length, 1, 'stored once');
    assert.equal((await adjustments(p.id)).length, 1, 'undone once');
    assert.equal((await get(`/v1/events?object_id=${p.id}&type=payment.failed`)).data.length, 1);

    // the authorization stands: captured again, under a new Adyen idempotency key (the old one would replay the failed capture)
    const recapture = await h.call('POST', `/v1/payments/${p.id}/capture`, { key: key(), body: {} });
    assert.equal(recapture.status, 200, recapture.raw);
    assert.deepEqual([recapture.body.status, recapture.body.amount_captured, recapture.body.failure_code], ['succeeded', 5_000, null]);
    assert.equal((await simCall('GET', `/_sim/payments/${p.connector_ref}`)).amount_captured, 5_000, 'Adyen captured again');
    assert.deepEqual(captures(recapture.body).map(([amount, status]: [number, string]) => [amount, status]), [[5_000, 'failed'], [5_000, 'succeeded']]);
    await verify();
  });

  test('refunds stand on the failed capture: nothing undone, an open capture_failed difference announced once; reconcile --fix undoes it after the refund fails', async () => {
    const p = await pay({}); // captured with the authorization: the capture has no pspReference of its own
    const r = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), body: { amount: 2_000 } });
    assert.equal(r.body.status, 'pending', r.raw); // received; Adyen's REFUND notification finishes it
    await processUntil(async () => (await get(`/v1/refunds/${r.body.id}`)).status === 'succeeded', 'the refund succeeds');

    // Adyen fails the refund, then the scheme rejects the capture; the refund's notification is lost
    await simCall('PUT', '/_sim/faults', { pending_delay_ms: 3_600_000, webhook: { enabled: false } });
    await simCall('POST', `/_sim/refunds/${r.body.connector_ref}/fail`);
    await simCall('PUT', '/_sim/faults', { pending_delay_ms: 3_600_000, webhook: { duplicate: true } });
    await simCall('POST', `/_sim/payments/${p.connector_ref}/capture_failed`);
    const differences = async () => (await get(`/v1/reconciliation/differences?payment_id=${p.id}`)).data;
    await processUntil(async () => (await differences()).length > 0, 'the difference is stored');

    const [d] = await differences();
    assert.deepEqual([d.kind, d.status, d.gateway], ['capture_failed', 'open', { amount_captured: 5_000, amount_refunded: 2_000, amount_refund_pending: 0 }]);
    assert.match(d.message, /2000 is refunded and 0 held by pending refunds against it: the gateway does not undo a capture below its refunds/);
    let g = await get(`/v1/payments/${p.id}`);
    assert.deepEqual([g.status, g.amount_captured, g.amount_refundable], ['partially_refunded', 5_000, 3_000], 'never below its refunds');
    assert.deepEqual(await adjustments(p.id), []);
    assert.equal((await get(`/v1/events?type=reconciliation.difference_found&object_id=${d.id}`)).data.length, 1, 'announced once');
    const before = await h.rt.services.reconciliation.run({ since: new Date(Date.now() - 3_600_000) });
    assert.deepEqual(before.differences.filter((x) => x.payment_id === p.id).map((x) => `${x.kind} ${x.status}`), ['capture_failed open'], 'reported until fixed, though Adyen cannot be asked');

    // the refund's failure arrives after all (Adyen resends it): the refund is reversed
    assert.equal(await post(notification(creds.hmac_key, [{
      pspReference: r.body.connector_ref, originalReference: p.connector_ref, merchantAccountCode: creds.merchant_account,
      merchantReference: r.body.id, value: 2_000, eventCode: 'REFUND_FAILED',
    }])), '[accepted]');
    await processUntil(async () => (await get(`/v1/refunds/${r.body.id}`)).status === 'failed', 'the refund fails');

    const fixed = await h.rt.services.reconciliation.run({ since: new Date(Date.now() - 3_600_000), fix: true });
    assert.deepEqual(fixed.differences.filter((x) => x.payment_id === p.id).map((x) => `${x.kind} ${x.status}`), ['capture_failed fixed']);
    g = await get(`/v1/payments/${p.id}`);
    assert.deepEqual([g.status, g.amount_captured, g.amount_refunded, g.amount_capturable], ['requires_capture', 0, 0, 5_000]);
    assert.deepEqual(captures(g).map(([amount, status]: [number, string]) => [amount, status]), [[5_000, 'failed']]);
    assert.equal((await adjustments(p.id)).length, 1);
    const after = await h.rt.services.reconciliation.run({ since: new Date(Date.now() - 3_600_000), fix: true });
    assert.deepEqual(after.differences.filter((x) => x.payment_id === p.id), []);
    assert.equal((await adjustments(p.id)).length, 1, 'undone once');
    await verify();
  });
});
