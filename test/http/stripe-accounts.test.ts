import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadConfig, ConfigError } from '../../src/config.js';
import { createHarness, type Harness } from '../helpers/harness.js';

describe('Stripe connector accounts', () => {
  let h: Harness;
  before(async () => {
    h = await createHarness('pglite');
  });
  after(() => h.close());

  const create = (key: string, body: Record<string, unknown>) => h.call('POST', '/v1/connector_accounts', { key, body });

  test('a test-mode account takes an sk_test_ key and the whsec_ signing secret, stored encrypted and never shown', async () => {
    const r = await create(h.merchant.testKey, { connector: 'stripe', credentials: { secret_key: 'sk_test_abc123', webhook_secret: 'whsec_abc' } });
    assert.equal(r.status, 201, r.raw);
    assert.equal(r.body.connector, 'stripe');
    assert.equal(r.body.webhook_path, `/v1/connectors/stripe/webhooks/${r.body.id}`);
    assert.equal(r.raw.includes('sk_test_abc123'), false);
    const sealed = await h.db.query<{ credentials_sealed: string }>('SELECT credentials_sealed FROM connector_accounts WHERE id = $1', [r.body.id]);
    assert.equal(sealed.rows[0].credentials_sealed.includes('sk_test_abc123'), false);
  });

  test('refuses a live key on a test account and a test key on a live account', async () => {
    const testWithLive = await create(h.merchant.testKey, { connector: 'stripe', credentials: { secret_key: 'sk_live_abc', webhook_secret: 'whsec_abc' } });
    assert.equal(testWithLive.status, 400);
    assert.equal(testWithLive.body.error.param, 'credentials.secret_key');
    const liveWithTest = await create(h.merchant.liveKey, { connector: 'stripe', credentials: { secret_key: 'sk_test_abc', webhook_secret: 'whsec_abc' } });
    assert.equal(liveWithTest.status, 400);
    assert.equal(liveWithTest.body.error.param, 'credentials.secret_key');
    const live = await create(h.merchant.liveKey, { connector: 'stripe', credentials: { secret_key: 'sk_live_abc', webhook_secret: 'whsec_abc' } });
    assert.equal(live.status, 201, live.raw);
  });

  test('refuses a missing webhook secret, unknown credentials and any setting (no host override)', async () => {
    const noSecret = await create(h.merchant.testKey, { connector: 'stripe', credentials: { secret_key: 'sk_test_abc' } });
    assert.equal(noSecret.body.error.param, 'credentials.webhook_secret');
    const extra = await create(h.merchant.testKey, { connector: 'stripe', credentials: { secret_key: 'sk_test_abc', webhook_secret: 'whsec_a', api_base: 'x' } });
    assert.equal(extra.body.error.param, 'credentials.api_base');
    const baseUrl = await create(h.merchant.testKey, {
      connector: 'stripe', settings: { base_url: 'http://169.254.169.254' }, credentials: { secret_key: 'sk_test_abc', webhook_secret: 'whsec_a' },
    });
    assert.equal(baseUrl.status, 400);
    assert.equal(baseUrl.body.error.param, 'settings.base_url');
  });
});

describe('SETTLE_STRIPE_API_BASE', () => {
  test('takes an http(s) origin and refuses paths, credentials and other schemes', () => {
    assert.equal(loadConfig({ SETTLE_STRIPE_API_BASE: 'http://127.0.0.1:4100' }).stripeApiBase, 'http://127.0.0.1:4100');
    assert.equal(loadConfig({}).stripeApiBase, undefined);
    for (const bad of ['ftp://x', 'http://u:p@host', 'http://host/v1', 'not a url']) {
      assert.throws(() => loadConfig({ SETTLE_STRIPE_API_BASE: bad }), (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.includes('SETTLE_STRIPE_API_BASE')));
    }
  });
});
