import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { PERMISSIONS, permissionFor, ROUTE_PERMISSIONS } from '../../src/http/permissions.js';
import { BACKENDS, harnessFor, pay, type Harness } from '../helpers/harness.js';

/** A URL for a route pattern: every `:param` filled with a value no object has. */
const fill = (url: string) => url.replace(/:(\w+)/g, (_m, name: string) => (name === 'connector' ? 'sandbox' : `unknown_${name}`));

/** The event stream never ends by itself: its answer is read from the status line, then left to the harness's close. */
async function openStream(h: Harness, url: string, key: string) {
  const r = await h.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` }, payloadAsStream: true });
  r.stream().destroy();
  return { status: r.statusCode, raw: String(r.headers['content-type']) };
}

for (const backend of BACKENDS) {
  describe(`restricted keys on ${backend}`, () => {
    let h: Harness;
    const it = harnessFor(backend, (opened) => (h = opened));

    const restricted = async (permissions: readonly string[], key = h.merchant.testKey) => {
      const r = await h.call('POST', '/v1/api_keys', { key, body: { name: `support ${permissions.length}`, permissions } });
      assert.equal(r.status, 201, r.raw);
      return r.body as { secret: string; key_prefix: string; permissions: string[]; test_mode: boolean };
    };

    it('gives every merchant route a permission in the route table', async () => {
      const merchantRoutes = h.app.routeList.filter((r) => r.auth === 'merchant');
      assert.ok(merchantRoutes.length >= 25, `found ${merchantRoutes.length} merchant routes`);
      const missing = merchantRoutes.filter((r) => !permissionFor(r.method, r.url)).map((r) => `${r.method} ${r.url}`);
      assert.deepEqual(missing, [], 'merchant routes without a permission in ROUTE_PERMISSIONS');
      // and the table names no route that does not exist (a renamed route would keep a stale entry)
      const registered = new Set(merchantRoutes.map((r) => `${r.method} ${r.url}`));
      assert.deepEqual(Object.keys(ROUTE_PERMISSIONS).filter((k) => !registered.has(k)), []);
    });

    it('refuses every merchant route to a key without its permission, naming the permission, and lets it through with it', async () => {
      const routes = h.app.routeList.filter((r) => r.auth === 'merchant');
      for (const route of routes) {
        const needed = permissionFor(route.method, route.url)!;
        const [resource] = needed.split(':');
        // everything except the permission the route needs and anything that would include it
        const others = PERMISSIONS.filter((p) => p !== needed && p !== `${resource}:write`);
        const without = await restricted(others);
        const url = fill(route.url);
        const refused = await h.call(route.method, url, { key: without.secret });
        assert.equal(refused.status, 403, `${route.method} ${route.url} without ${needed}: ${refused.raw}`);
        assert.equal(refused.body.error.type, 'permission_error');
        assert.equal(refused.body.error.code, 'insufficient_permissions');
        assert.equal(refused.body.error.permission, needed);
        assert.ok(refused.body.error.message.includes(needed), refused.body.error.message);

        const withIt = await restricted([needed]);
        const allowed = url === '/v1/events/stream' ? await openStream(h, url, withIt.secret) : await h.call(route.method, url, { key: withIt.secret });
        assert.ok(![401, 403].includes(allowed.status), `${route.method} ${route.url} with ${needed}: ${allowed.status} ${allowed.raw}`);
      }
    });

    it('lets a write permission read the same resource, and nothing else', async () => {
      const key = await restricted(['refunds:write']);
      assert.equal((await h.call('GET', '/v1/refunds', { key: key.secret })).status, 200);
      const payments = await h.call('GET', '/v1/payments', { key: key.secret });
      assert.equal(payments.status, 403);
      assert.match(payments.body.error.message, /payments:read/);
    });

    it('lets a support agent read payments and refund them, and not take payments', async () => {
      const agent = await restricted(['payments:read', 'refunds:write']);
      assert.match(agent.secret, /^rk_test_[A-Za-z0-9]{32}$/);
      assert.equal(agent.test_mode, true);
      const p = await pay(h, { amount: 4000 });
      const seen = await h.call('GET', `/v1/payments/${p.id}`, { key: agent.secret });
      assert.equal(seen.status, 200);
      const refund = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: agent.secret, body: { amount: 1000 }, idempotencyKey: 'agent-refund-1' });
      assert.equal(refund.status, 201, refund.raw);
      assert.equal(refund.body.status, 'succeeded');
      const take = await h.call('POST', '/v1/payments', { key: agent.secret, body: { amount: 100, currency: 'USD', payment_method: 'pm_card_visa' } });
      assert.equal(take.status, 403);
      assert.equal(take.body.error.permission, 'payments:write');
      const hooks = await h.call('GET', '/v1/webhook_endpoints', { key: agent.secret });
      assert.equal(hooks.status, 403);
    });

    it('stores restricted keys hashed, lists them without secrets, and revokes them at once', async () => {
      const key = await restricted(['payments:read']);
      const stored = await h.db.query<{ key_hash: Uint8Array; permissions: string[] }>('SELECT key_hash, permissions FROM api_keys WHERE prefix = $1', [key.key_prefix]);
      assert.equal(Buffer.from(stored.rows[0].key_hash).length, 32);
      assert.ok(!Buffer.from(stored.rows[0].key_hash).toString('latin1').includes(key.secret));
      assert.deepEqual(stored.rows[0].permissions, ['payments:read']);

      const list = await h.call('GET', '/v1/api_keys?limit=100', { key: h.merchant.testKey });
      assert.equal(list.status, 200);
      const listed = list.body.data.find((k: any) => k.key_prefix === key.key_prefix);
      assert.equal(listed.type, 'restricted');
      assert.deepEqual(listed.permissions, ['payments:read']);
      assert.ok(!list.raw.includes(key.secret), 'no secret in the list');
      assert.ok(list.body.data.some((k: any) => k.type === 'secret' && k.permissions === null));

      const revoked = await h.call('DELETE', `/v1/api_keys/${key.key_prefix}`, { key: h.merchant.testKey });
      assert.equal(revoked.status, 200);
      assert.equal(revoked.body.revoked, true);
      assert.equal((await h.call('GET', '/v1/payments', { key: key.secret })).status, 401);
    });

    it('never lets a restricted key make a stronger key, reach the admin API, or another mode or merchant', async () => {
      const keyMaker = await restricted(['api_keys:write', 'payments:read']);
      const weaker = await restricted(['payments:read'], keyMaker.secret);
      assert.deepEqual(weaker.permissions, ['payments:read']);
      const stronger = await h.call('POST', '/v1/api_keys', { key: keyMaker.secret, body: { name: 'escalate', permissions: ['refunds:write'] } });
      assert.equal(stronger.status, 403);
      assert.equal(stronger.body.error.code, 'insufficient_permissions');
      assert.equal(stronger.body.error.param, 'permissions');

      const admin = await h.call('GET', '/v1/admin/features/refunds', { key: keyMaker.secret });
      assert.equal(admin.status, 401);

      const live = await pay(h, { amount: 500 }, h.merchant.liveKey);
      assert.equal((await h.call('GET', `/v1/payments/${live.id}`, { key: keyMaker.secret })).status, 404);
      const liveKey = await restricted(['payments:read'], h.merchant.liveKey);
      assert.match(liveKey.secret, /^rk_live_/);
      assert.equal((await h.call('GET', `/v1/payments/${live.id}`, { key: liveKey.secret })).status, 200);

      const other = await h.newMerchant('Other');
      assert.equal((await h.call('DELETE', `/v1/api_keys/${keyMaker.key_prefix}`, { key: other.testKey })).status, 404);
      // a live key cannot revoke a test key of its own merchant either
      assert.equal((await h.call('DELETE', `/v1/api_keys/${keyMaker.key_prefix}`, { key: h.merchant.liveKey })).status, 404);
    });

    it('refuses unknown permissions by name', async () => {
      const r = await h.call('POST', '/v1/api_keys', { key: h.merchant.testKey, body: { name: 'x', permissions: ['payments:delete'] } });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, 'invalid_param');
      assert.match(r.body.error.param, /^permissions/);
    });

    it('lists merchants for the admin with the refund switch as it applies to each', async () => {
      const other = await h.newMerchant('Switched off');
      assert.equal((await h.admin('PUT', '/v1/admin/features/refunds', { enabled: false, merchant_id: other.id })).status, 200);
      const list = await h.admin('GET', '/v1/admin/merchants?limit=100');
      assert.equal(list.status, 200);
      const row = list.body.data.find((m: any) => m.id === other.id);
      assert.equal(row.refunds_enabled, false);
      assert.equal(row.refunds_effective, false);
      assert.equal(list.body.data.find((m: any) => m.id === h.merchant.id).refunds_effective, true);
      assert.equal((await h.call('GET', '/v1/admin/merchants', { key: h.merchant.testKey })).status, 401);
      await h.admin('PUT', '/v1/admin/features/refunds', { enabled: true, merchant_id: other.id });
    });
  });
}
