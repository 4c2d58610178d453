import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { ADMIN_KEY, BACKENDS, createHarness, harnessFor, pay, type Harness } from '../helpers/harness.js';

interface Session {
  cookie: string;
  csrf: string;
  body: any;
  setCookie: string;
}

for (const backend of BACKENDS) {
  describe(`console sessions on ${backend}`, () => {
    let h: Harness;
    const it = harnessFor(backend, (opened) => (h = opened));

    const signIn = async (key: string, headers: Record<string, string> = {}): Promise<Session> => {
      const r = await h.call('POST', '/v1/console/session', { body: { key }, headers });
      assert.equal(r.status, 201, r.raw);
      const setCookie = String(r.headers['set-cookie']);
      const cookie = /^(settle_session=[A-Za-z0-9]+)/.exec(setCookie)![1];
      return { cookie, csrf: r.body.csrf_token, body: r.body, setCookie };
    };
    const asSession = (s: Session, method: string, url: string, o: { body?: unknown; csrf?: boolean; idempotencyKey?: string } = {}) =>
      h.call(method, url, {
        body: o.body,
        idempotencyKey: o.idempotencyKey,
        headers: { cookie: s.cookie, ...(o.csrf === false ? {} : { 'x-csrf-token': s.csrf }) },
      });

    it('exchanges a secret key for an HttpOnly, SameSite=Strict cookie that never holds or stores the key', async () => {
      const s = await signIn(h.merchant.testKey);
      assert.match(s.setCookie, /HttpOnly/);
      assert.match(s.setCookie, /SameSite=Strict/);
      assert.match(s.setCookie, /Path=\//);
      assert.doesNotMatch(s.setCookie, /Secure/, 'plain http: no Secure flag, or the browser would drop the cookie');
      assert.ok(!s.setCookie.includes(h.merchant.testKey));
      assert.equal(s.body.role, 'merchant');
      assert.equal(s.body.test_mode, true);
      assert.equal(s.body.merchant.id, h.merchant.id);
      assert.equal(s.body.permissions, null);
      assert.ok(!JSON.stringify(s.body).includes(h.merchant.testKey));
      const rows = await h.db.query<{ token_hash: Uint8Array; key_prefix: string }>('SELECT token_hash, key_prefix FROM console_sessions');
      const token = s.cookie.split('=')[1];
      for (const row of rows.rows) {
        assert.ok(!Buffer.from(row.token_hash).toString('latin1').includes(token), 'the token is stored hashed');
      }
      assert.ok(rows.rows.some((r) => h.merchant.testKey.startsWith(r.key_prefix)), 'only the key prefix is kept');
    });

    it('marks the cookie Secure when the console is served over https', async () => {
      const proxied = await createHarness(backend, { env: { SETTLE_TRUST_PROXY: 'true' } });
      try {
        const r = await proxied.call('POST', '/v1/console/session', { body: { key: proxied.merchant.testKey }, headers: { 'x-forwarded-proto': 'https' } });
        assert.equal(r.status, 201);
        assert.match(String(r.headers['set-cookie']), /; Secure/);
      } finally {
        await proxied.close();
      }
    });

    it('refuses a wrong key without a cookie', async () => {
      const r = await h.call('POST', '/v1/console/session', { body: { key: `sk_test_${'x'.repeat(32)}` } });
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'invalid_api_key');
      assert.equal(r.headers['set-cookie'], undefined);
    });

    it('authenticates API calls with the cookie and refuses writes without the CSRF token', async () => {
      const s = await signIn(h.merchant.testKey);
      const p = await pay(h, { amount: 3000 });
      const seen = await asSession(s, 'GET', `/v1/payments/${p.id}`);
      assert.equal(seen.status, 200);
      const forged = await asSession(s, 'POST', `/v1/payments/${p.id}/refunds`, { body: { amount: 1000 }, csrf: false });
      assert.equal(forged.status, 403);
      assert.equal(forged.body.error.code, 'csrf_token_invalid');
      const wrong = await h.call('POST', `/v1/payments/${p.id}/refunds`, { body: { amount: 1000 }, headers: { cookie: s.cookie, 'x-csrf-token': 'nope' } });
      assert.equal(wrong.status, 403);
      assert.equal((await h.call('GET', `/v1/payments/${p.id}`, { key: h.merchant.testKey })).body.amount_refunded, 0, 'nothing refunded');
      const refund = await asSession(s, 'POST', `/v1/payments/${p.id}/refunds`, { body: { amount: 1000 }, idempotencyKey: 'console-refund-1' });
      assert.equal(refund.status, 201, refund.raw);
      const again = await asSession(s, 'POST', `/v1/payments/${p.id}/refunds`, { body: { amount: 1000 }, idempotencyKey: 'console-refund-1' });
      assert.equal(again.headers['idempotent-replayed'], 'true', 'a double click refunds once');
      assert.equal((await h.call('GET', `/v1/payments/${p.id}`, { key: h.merchant.testKey })).body.amount_refunded, 1000);
    });

    it('keeps a session in the mode of its key: a test session never sees live data', async () => {
      const live = await pay(h, { amount: 700 }, h.merchant.liveKey);
      const testSession = await signIn(h.merchant.testKey);
      assert.equal((await asSession(testSession, 'GET', `/v1/payments/${live.id}`)).status, 404);
      const liveSession = await signIn(h.merchant.liveKey);
      assert.equal(liveSession.body.test_mode, false);
      assert.equal((await asSession(liveSession, 'GET', `/v1/payments/${live.id}`)).status, 200);
    });

    it('gives a restricted key\'s session only its permissions, and ends it when the key is revoked', async () => {
      const key = await h.call('POST', '/v1/api_keys', { key: h.merchant.testKey, body: { name: 'agent', permissions: ['payments:read'] } });
      const s = await signIn(key.body.secret);
      assert.equal(s.body.role, 'restricted');
      assert.deepEqual(s.body.permissions, ['payments:read']);
      assert.equal((await asSession(s, 'GET', '/v1/payments')).status, 200);
      const refused = await asSession(s, 'GET', '/v1/webhook_endpoints');
      assert.equal(refused.status, 403);
      assert.equal(refused.body.error.code, 'insufficient_permissions');
      await h.call('DELETE', `/v1/api_keys/${key.body.key_prefix}`, { key: h.merchant.testKey });
      const after = await asSession(s, 'GET', '/v1/payments');
      assert.equal(after.status, 401);
    });

    it('gives the admin key a platform session that reaches admin routes and no merchant data', async () => {
      const s = await signIn(ADMIN_KEY);
      assert.equal(s.body.role, 'admin');
      assert.equal(s.body.merchant, null);
      assert.equal((await asSession(s, 'GET', '/v1/admin/merchants')).status, 200);
      assert.equal((await asSession(s, 'GET', '/v1/payments')).status, 401);
      const flip = await asSession(s, 'PUT', '/v1/admin/features/refunds', { body: { enabled: true }, csrf: false });
      assert.equal(flip.status, 403);
      assert.equal((await asSession(s, 'PUT', '/v1/admin/features/refunds', { body: { enabled: true } })).status, 200);
      const merchant = await signIn(h.merchant.testKey);
      assert.equal((await asSession(merchant, 'GET', '/v1/admin/merchants')).status, 401);
    });

    it('signs out (with the CSRF token) and expires', async () => {
      const s = await signIn(h.merchant.testKey);
      assert.equal((await asSession(s, 'GET', '/v1/console/session')).body.csrf_token, s.csrf);
      assert.equal((await asSession(s, 'DELETE', '/v1/console/session', { csrf: false })).status, 403);
      const out = await asSession(s, 'DELETE', '/v1/console/session');
      assert.equal(out.status, 200);
      assert.match(String(out.headers['set-cookie']), /settle_session=;/);
      assert.equal((await asSession(s, 'GET', '/v1/payments')).status, 401);
      assert.equal((await asSession(s, 'GET', '/v1/console/session')).status, 401);

      const old = await signIn(h.merchant.testKey);
      assert.equal((await asSession(old, 'GET', '/v1/payments')).status, 200);
      await h.db.query(`UPDATE console_sessions SET expires_at = now() - interval '1 second' WHERE ended_at IS NULL`);
      const expired = await asSession(old, 'GET', '/v1/payments');
      assert.equal(expired.status, 401);
      assert.match(expired.body.error.message, /sign in again/);
    });
  });
}
