/**
 * The Adyen connector in a gateway: its accounts and notifications, and Adyen's CAPTURE_FAILED
 * after the gateway booked the capture Adyen answered `received`. One gateway (in-process, on
 * PGlite) for the file, its Adyen connector pointed at a psp-sim speaking Adyen's wire over HTTP;
 * the wire's notifications come back over HTTP to the gateway's inbound route.
 *
 * CAPTURE_FAILED: the capture is undone through the capture correction path (docs/connectors.md,
 * Adyen mapping): the capture transaction fails, a capture adjustment books the money back, the
 * payment waits for a capture again, once however often the notice comes. When refunds stand on
 * the capture, nothing is undone: an open reconciliation difference says so, and
 * `reconcile --fix` undoes the capture once the refunds have failed at the PSP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadConfig, ConfigError } from '../../src/config.js';
import { startPspSim, type PspSimHandle } from '../../src/psp-sim/server.js';
import { newHmacKey, notification, pspReference } from '../helpers/adyen-notifications.js';
import { ADYEN_SETUP } from '../helpers/connectors.js';
import { createHarness, type Harness } from '../helpers/harness.js';

let sim: PspSimHandle;
let h: Harness;
before(async () => {
  sim = await startPspSim({ port: 0, wire: 'adyen' });
  h = await createHarness('pglite', { env: ADYEN_SETUP.gatewayEnv(sim.url) });
});
after(async () => {
  await h?.close();
  await sim?.close();
});

describe('Adyen connector accounts and notifications', () => {
  const create = (key: string, body: Record<string, unknown>) => h.call('POST', '/v1/connector_accounts', { key, body });
  const credentials = (over: Record<string, string> = {}) => ({ api_key: 'AQEyhmfxK4_test_api_key_0123456789', merchant_account: 'SettleECOM', hmac_key: newHmacKey(), ...over });

  test('a test-mode account takes the API key, merchant account and hex HMAC key, stored encrypted and never shown', async () => {
    const creds = credentials();
    const r = await create(h.merchant.testKey, { connector: 'adyen', credentials: creds });
    assert.equal(r.status, 201, r.raw);
    assert.equal(r.body.connector, 'adyen');
    assert.deepEqual(r.body.settings, { environment: 'test' });
    assert.equal(r.body.webhook_path, `/v1/connectors/adyen/webhooks/${r.body.id}`);
    assert.equal(r.raw.includes(creds.api_key), false);
    const row = await h.db.query<{ credentials_sealed: string; webhook_secret_sealed: string }>('SELECT credentials_sealed, webhook_secret_sealed FROM connector_accounts WHERE id = $1', [r.body.id]);
    assert.equal(row.rows[0].credentials_sealed.includes(creds.api_key), false);
    assert.equal(row.rows[0].webhook_secret_sealed.includes(creds.hmac_key), false);
    assert.equal((await h.call('GET', `/v1/connector_accounts/${r.body.id}`, { key: h.merchant.testKey })).raw.includes(creds.api_key), false);
  });

  test('refuses bad credentials, any host setting, and a mode mismatch, each with its param', async () => {
    const cases: [string, Record<string, unknown>, string][] = [
      [h.merchant.testKey, { credentials: credentials({ hmac_key: 'not-hex-at-all' }) }, 'credentials.hmac_key'],
      [h.merchant.testKey, { credentials: credentials({ hmac_key: 'ABCD' }) }, 'credentials.hmac_key'],
      [h.merchant.testKey, { credentials: { api_key: 'AQEyhmfxK4_test_api_key_0123456789', hmac_key: newHmacKey() } }, 'credentials.merchant_account'],
      [h.merchant.testKey, { credentials: credentials({ api_key: 'short' }) }, 'credentials.api_key'],
      [h.merchant.testKey, { credentials: credentials({ webhook_secret: 'whsec_x' }) }, 'credentials.webhook_secret'],
      [h.merchant.testKey, { credentials: credentials(), settings: { base_url: 'http://169.254.169.254' } }, 'settings.base_url'],
      [h.merchant.testKey, { credentials: credentials(), settings: { environment: 'live', live_url_prefix: 'abc-Demo' } }, 'settings.environment'],
      [h.merchant.testKey, { credentials: credentials(), settings: { live_url_prefix: 'abc-Demo' } }, 'settings.live_url_prefix'],
      [h.merchant.liveKey, { credentials: credentials() }, 'settings.environment'],
      [h.merchant.liveKey, { credentials: credentials(), settings: { environment: 'live' } }, 'settings.live_url_prefix'],
      [h.merchant.liveKey, { credentials: credentials(), settings: { environment: 'live', live_url_prefix: 'evil.example.com' } }, 'settings.live_url_prefix'],
    ];
    for (const [key, body, param] of cases) {
      const r = await create(key, { connector: 'adyen', ...body });
      assert.equal(r.status, 400, `${param}: ${r.raw}`);
      assert.equal(r.body.error.param, param, r.raw);
    }
    const live = await create(h.merchant.liveKey, { connector: 'adyen', credentials: credentials(), settings: { environment: 'live', live_url_prefix: '1797a841fbb37ca7-AdyenDemo' } });
    assert.equal(live.status, 201, live.raw);
    assert.equal(live.body.test_mode, false);
  });

  test('a notification batch is verified, stored per item before the answer `[accepted]`, and stored once when Adyen sends it again', async () => {
    const creds = credentials({ merchant_account: 'SettleNotifyECOM' });
    const account = (await create(h.merchant.testKey, { connector: 'adyen', credentials: creds })).body;
    const items = [
      { pspReference: pspReference(), originalReference: pspReference(), merchantAccountCode: creds.merchant_account, merchantReference: 'pay_x', value: 500, eventCode: 'REFUND' },
      { pspReference: pspReference(), originalReference: pspReference(), merchantAccountCode: creds.merchant_account, merchantReference: 'pay_y', value: 900, eventCode: 'CAPTURE' },
    ];
    const body = notification(creds.hmac_key, items);
    const stored = async () => (await h.db.query<{ n: number }>('SELECT count(*)::int AS n FROM inbound_webhooks WHERE connector_account_id = $1', [account.id])).rows[0].n;
    for (let i = 0; i < 2; i++) {
      const r = await h.call('POST', account.webhook_path, { payload: body, headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 200, r.raw);
      assert.equal(r.raw, '[accepted]');
      assert.match(String(r.headers['content-type']), /^text\/plain/);
      assert.equal(await stored(), 2);
    }
    const types = await h.db.query<{ type: string; psp_event_id: string }>('SELECT type, psp_event_id FROM inbound_webhooks WHERE connector_account_id = $1 ORDER BY type', [account.id]);
    assert.deepEqual(types.rows.map((r) => r.type), ['payment.notice', 'refund.updated']);
    assert.ok(types.rows.some((r) => r.psp_event_id === `${items[0].pspReference}:REFUND:true`));

    // signed with another key, or claiming the live platform: refused, nothing stored
    for (const forged of [notification(newHmacKey(), [{ ...items[0], pspReference: pspReference() }]), notification(creds.hmac_key, [{ ...items[0], pspReference: pspReference() }], true)]) {
      const r = await h.call('POST', account.webhook_path, { payload: forged, headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 400, r.raw);
      assert.equal(r.body.error.param, 'signature');
    }
    assert.equal(await stored(), 2);
  });
});

describe('SETTLE_ADYEN_CHECKOUT_BASE', () => {
  test('takes an http(s) origin and refuses paths, credentials and other schemes', () => {
    assert.equal(loadConfig({ SETTLE_ADYEN_CHECKOUT_BASE: 'http://127.0.0.1:4100' }).adyenCheckoutBase, 'http://127.0.0.1:4100');
    assert.equal(loadConfig({}).adyenCheckoutBase, undefined);
    for (const bad of ['ftp://x', 'http://u:p@host', 'http://host/v71', 'not a url']) {
      assert.throws(() => loadConfig({ SETTLE_ADYEN_CHECKOUT_BASE: bad }), (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.includes('SETTLE_ADYEN_CHECKOUT_BASE')));
    }
  });
});

describe('Adyen CAPTURE_FAILED after a capture the gateway booked (Adyen wire over HTTP)', () => {
  let gatewayUrl: string;
  let account: any;
  let creds: { api_key: string; merchant_account: string; hmac_key: string };

  before(async () => {
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
