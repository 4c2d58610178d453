import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadConfig, ConfigError } from '../../src/config.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { newHmacKey, notification, pspReference } from '../helpers/adyen-notifications.js';

describe('Adyen connector accounts and notifications', () => {
  let h: Harness;
  before(async () => {
    h = await createHarness('pglite');
  });
  after(() => h.close());

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
