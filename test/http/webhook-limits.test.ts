/**
 * Webhook hardening over HTTP: the cap on endpoints per merchant and mode, and blank webhook
 * secrets, each answered with the contract's error envelope.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createHarness, type Harness } from '../helpers/harness.js';

describe('webhook endpoints per merchant are capped (SETTLE_WEBHOOK_ENDPOINTS_MAX)', () => {
  let h: Harness;
  before(async () => {
    h = await createHarness('pglite', { env: { SETTLE_WEBHOOK_ENDPOINTS_MAX: '3' } });
  });
  after(() => h.close());

  const create = (key: string, n: number) =>
    h.call('POST', '/v1/webhook_endpoints', { key, body: { url: `http://127.0.0.1:9/hooks/${n}`, enabled_events: ['*'] } });

  test('the create past the cap is 400 webhook_endpoints_limit_reached; the other mode and a freed slot are unaffected', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await create(h.merchant.testKey, i);
      assert.equal(r.status, 201, r.raw);
      ids.push(r.body.id);
    }
    const over = await create(h.merchant.testKey, 3);
    assert.equal(over.status, 400, over.raw);
    assert.equal(over.body.error.type, 'invalid_request_error');
    assert.equal(over.body.error.code, 'webhook_endpoints_limit_reached');
    assert.match(over.body.error.message, /maximum of 3 test-mode webhook endpoints/);
    const listed = await h.call('GET', '/v1/webhook_endpoints?limit=100', { key: h.merchant.testKey });
    assert.equal(listed.body.data.length, 3, 'the refused create stored an endpoint');

    // concurrent creates cannot overshoot the cap either
    const deleted = await h.call('DELETE', `/v1/webhook_endpoints/${ids[0]}`, { key: h.merchant.testKey });
    assert.equal(deleted.status, 200, deleted.raw);
    const racing = await Promise.all([10, 11, 12, 13].map((n) => create(h.merchant.testKey, n)));
    assert.deepEqual(racing.map((r) => r.status).sort(), [201, 400, 400, 400]);
    const after = await h.call('GET', '/v1/webhook_endpoints?limit=100', { key: h.merchant.testKey });
    assert.equal(after.body.data.length, 3);
  });
});

describe('blank webhook secrets are refused', () => {
  let h: Harness;
  before(async () => {
    h = await createHarness('pglite');
  });
  after(() => h.close());

  for (const blank of ['', '   ', '\t\n']) {
    test(`a connector account with webhook_secret ${JSON.stringify(blank)} is 400 with param credentials.webhook_secret`, async () => {
      for (const connector of ['sandbox', 'stripe']) {
        const credentials = connector === 'stripe' ? { secret_key: 'sk_test_abc123', webhook_secret: blank } : { webhook_secret: blank };
        const r = await h.call('POST', '/v1/connector_accounts', { key: h.merchant.testKey, body: { connector, credentials } });
        assert.equal(r.status, 400, `${connector}: ${r.raw}`);
        assert.equal(r.body.error.code, 'invalid_param');
        assert.equal(r.body.error.param, 'credentials.webhook_secret');
      }
    });
  }

  test('a sandbox account still gets a generated secret when none is given, and keeps a real one', async () => {
    const generated = await h.call('POST', '/v1/connector_accounts', { key: h.merchant.testKey, body: { connector: 'sandbox' } });
    assert.equal(generated.status, 201, generated.raw);
    assert.match(generated.body.webhook_secret, /^whsec_\S{32}$/);
    const own = await h.call('POST', '/v1/connector_accounts', { key: h.merchant.testKey, body: { connector: 'sandbox', credentials: { webhook_secret: 'whsec_mine' } } });
    assert.equal(own.status, 201, own.raw);
    assert.equal(own.body.webhook_secret, 'whsec_mine');
  });
});
