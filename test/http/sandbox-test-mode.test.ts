/**
 * The sandbox moves no real money: live mode can never reach it, and what a PSP server says in
 * its errors never reaches an API client verbatim.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createConnectors, seedDemoMerchant } from '../../src/bootstrap.js';
import { loadConfig } from '../../src/config.js';
import type { ConnectorContext } from '../../src/connectors/connector.js';
import { createSandboxConnector } from '../../src/connectors/sandbox/sandbox.connector.js';
import { signSandboxWebhook } from '../../src/connectors/sandbox/sandbox-signature.js';
import { createHarness, type Harness } from '../helpers/harness.js';

describe('sandbox is test mode only', () => {
  let h: Harness;
  before(async () => {
    // the gateway's own connectors, without the harness's live-mode stand-in
    h = await createHarness('pglite', { connectors: createConnectors(loadConfig({})) });
  });
  after(() => h.close());

  test('refuses a live-mode sandbox account, with or without a base_url, and accepts a test-mode one', async () => {
    for (const body of [{ connector: 'sandbox' }, { connector: 'sandbox', settings: { base_url: 'http://127.0.0.1:9' } }]) {
      const r = await h.call('POST', '/v1/connector_accounts', { key: h.merchant.liveKey, body });
      assert.equal(r.status, 400, r.raw);
      assert.equal(r.body.error.param, 'connector');
    }
    const test = await h.call('POST', '/v1/connector_accounts', { key: h.merchant.testKey, body: { connector: 'sandbox', name: 'fine' } });
    assert.equal(test.status, 201, test.raw);
  });

  test('a live payment has no sandbox to go to: 409 no_default_connector_account', async () => {
    const r = await h.call('POST', '/v1/payments', { key: h.merchant.liveKey, body: { amount: 100, currency: 'USD', payment_method: 'pm_card_visa' } });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'no_default_connector_account');
  });

  test('the first-run demo merchant gets a test-mode sandbox account only', async () => {
    const fresh = await createHarness('pglite', { connectors: createConnectors(loadConfig({})) });
    try {
      await fresh.db.query('DELETE FROM connector_accounts');
      await fresh.db.query('DELETE FROM api_keys');
      await fresh.db.query('DELETE FROM merchants');
      const demo = await seedDemoMerchant(fresh.rt.services);
      assert.ok(demo);
      const modes = await fresh.db.query<{ test_mode: boolean }>('SELECT test_mode FROM connector_accounts WHERE merchant_id = $1', [demo.merchantId]);
      assert.deepEqual(modes.rows.map((r) => r.test_mode), [true]);
    } finally {
      await fresh.close();
    }
  });
});

describe('the sandbox connector for a live-mode account made before it was refused', () => {
  const connector = createSandboxConnector();
  const live: ConnectorContext = { accountId: 'acct_old_live', shortId: 'ca_oldlive0001', testMode: false, settings: {}, credentials: {}, webhookSecret: 'whsec_old' };

  test('declines, refuses and fails every operation without reaching a PSP, and verifies no webhook', async () => {
    const auth = await connector.authorize(live, { amount: 100, currency: 'USD', paymentMethod: 'pm_card_visa', capture: true, idempotencyKey: 'k', reference: 'pay_x' });
    assert.deepEqual(auth.outcome === 'declined' && auth.code, 'connector_test_mode_only');
    const refund = await connector.refund(live, { paymentRef: 'sbx_pay_100_USD_visa_x', amount: 1, currency: 'USD', idempotencyKey: 'k', reference: 're_x' });
    assert.deepEqual(refund.status === 'failed' && refund.code, 'connector_test_mode_only');
    const capture = await connector.capture(live, { connectorRef: 'sbx_pay_100_USD_visa_x', amount: 1, currency: 'USD', idempotencyKey: 'k' });
    assert.equal(capture.outcome, 'rejected');
    const body = JSON.stringify({ id: 'sbevt_1', type: 'refund.updated', created: 1, data: {} });
    assert.equal(connector.verifyWebhook(live, { rawBody: body, headers: { 'sandbox-signature': signSandboxWebhook('whsec_old', body) } }), false);
  });
});

describe('PSP error text is never reflected', () => {
  const server = (status: number, body: unknown) =>
    createSandboxConnector({ fetch: (async () => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })) as typeof fetch });
  const ctx: ConnectorContext = { accountId: 'acct_t', shortId: 'ca_t000000001', testMode: true, settings: { base_url: 'http://127.0.0.1:9' }, credentials: {}, webhookSecret: 'whsec_t' };
  const leak = 'internal host db-7.corp:5432 said <script>alert(1)</script>';

  test('a decline keeps the code and reads Settle\'s message', async () => {
    const auth = await server(402, { error: { code: 'card_declined', message: leak } }).authorize(ctx, { amount: 1, currency: 'USD', paymentMethod: 'pm_card_visa', capture: true, idempotencyKey: 'k', reference: 'pay_1' });
    assert.deepEqual(auth, { outcome: 'declined', code: 'card_declined', message: 'The card was declined.' });
  });

  test('an unlisted code reads a generic message, and a malformed code becomes psp_refused', async () => {
    const unknown = await server(409, { error: { code: 'weird_code', message: leak } }).refund(ctx, { paymentRef: 'sbx_pay_1', amount: 1, currency: 'USD', idempotencyKey: 'k', reference: 're_1' });
    assert.deepEqual(unknown, { status: 'failed', code: 'weird_code', message: 'The payment service provider refused the request.' });
    const malformed = await server(409, { error: { code: 'DROP TABLE; --', message: leak } }).capture(ctx, { connectorRef: 'sbx_pay_1', amount: 1, currency: 'USD', idempotencyKey: 'k' });
    assert.deepEqual(malformed, { outcome: 'rejected', code: 'psp_refused', message: 'The payment service provider refused the request.' });
  });

  test('a failed refund\'s failure text, in an answer or a webhook, is Settle\'s', async () => {
    const failed = await server(200, {
      object: 'refund', id: 'sbx_re_1', payment_ref: 'sbx_pay_1', amount: 1, currency: 'USD', status: 'failed', reason: null, reference: 're_1',
      idempotency_key: 'k', failure_code: 'refund_rejected', failure_message: leak, created: 1,
    }).refund(ctx, { paymentRef: 'sbx_pay_1', amount: 1, currency: 'USD', idempotencyKey: 'k', reference: 're_1' });
    assert.deepEqual(failed, { status: 'failed', connectorRef: 'sbx_re_1', code: 'refund_rejected', message: 'The card issuer rejected the refund.' });
    const event = createSandboxConnector().parseWebhook(JSON.stringify({
      id: 'sbevt_2', type: 'refund.updated', created: 1,
      data: { refund_ref: 'sbx_re_1', payment_ref: 'sbx_pay_1', amount: 1, status: 'failed', reference: 're_1', failure_code: 'bank_rejected', failure_message: leak },
    }));
    assert.ok(event.type === 'refund.updated');
    assert.equal(event.refund.failureMessage, 'The bank rejected the refund after accepting it.');
    assert.ok(!JSON.stringify(event).includes('db-7'));
  });
});
