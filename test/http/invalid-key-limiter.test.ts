/**
 * The invalid-key limiter refuses further invalid keys from an address that sent too many, and
 * never a request that carries a valid key: an attacker sharing an address (NAT, a proxy) with a
 * merchant's servers must not be able to lock the merchant out.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN_KEY, createHarness, type Harness, type Res } from '../helpers/harness.js';

const ATTACKER = '203.0.113.50';
const LIMIT = 3;

function limited(r: Res, what: string): void {
  assert.equal(r.status, 429, `${what}: ${r.status} ${r.raw.slice(0, 200)}`);
  assert.equal(r.body.error.code, 'rate_limited', what);
  const wait = Number(r.headers['retry-after']);
  assert.ok(Number.isInteger(wait) && wait >= 1 && wait <= 60, `${what}: Retry-After ${r.headers['retry-after']}`);
}

describe('the invalid-key limiter and valid keys from the same address', () => {
  let h: Harness;
  before(async () => {
    h = await createHarness('pglite', { env: { SETTLE_AUTH_FAILURES_PER_MINUTE: String(LIMIT) } });
  });
  after(async () => h?.close());

  test('after an attacker fills the window with bad keys, a valid key from the same address still succeeds, undelayed', async () => {
    const bad = `sk_test_${'q'.repeat(32)}`;
    for (let i = 0; i < LIMIT; i++) {
      assert.equal((await h.call('GET', '/v1/payments?limit=1', { key: bad, remoteAddress: ATTACKER })).status, 401, `bad key ${i + 1}`);
    }
    limited(await h.call('GET', '/v1/payments?limit=1', { key: bad, remoteAddress: ATTACKER }), 'the next bad key');

    const read = await h.call('GET', '/v1/payments?limit=1', { key: h.merchant.testKey, remoteAddress: ATTACKER });
    assert.equal(read.status, 200, read.raw);
    assert.equal(read.headers['retry-after'], undefined, 'no wait is asked of a valid key');

    const write = await h.call('POST', '/v1/payments', {
      key: h.merchant.testKey, remoteAddress: ATTACKER, body: { amount: 1_234, currency: 'EUR', payment_method: 'pm_card_visa' },
    });
    assert.equal(write.status, 201, write.raw);
    assert.equal(write.body.amount_captured, 1_234);

    const admin = await h.call('GET', '/v1/admin/features/refunds', { key: ADMIN_KEY, remoteAddress: ATTACKER });
    assert.equal(admin.status, 200, `the admin key: ${admin.raw}`);
    limited(await h.call('GET', '/v1/admin/features/refunds', { key: ADMIN_KEY.slice(0, -1), remoteAddress: ATTACKER }), 'a wrong admin key');
  });

  test('while the attacker keeps flooding, every valid request is answered and every bad one refused with 429', async () => {
    const bad = (i: number) => `sk_test_${String(i).padStart(32, 'z')}`;
    for (let i = 0; i < LIMIT; i++) await h.call('GET', '/v1/payments?limit=1', { key: bad(i), remoteAddress: ATTACKER });
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) =>
      i % 6 === 0
        ? h.call('GET', '/v1/payments?limit=1', { key: h.merchant.testKey, remoteAddress: ATTACKER }).then((r) => ({ good: true, r }))
        : h.call('GET', '/v1/payments?limit=1', { key: bad(100 + i), remoteAddress: ATTACKER }).then((r) => ({ good: false, r }))));
    const good = results.filter((x) => x.good);
    assert.equal(good.length, 10);
    for (const { r } of good) assert.equal(r.status, 200, r.raw);
    for (const { r } of results.filter((x) => !x.good)) limited(r, 'a bad key during the flood');
    // nothing waits out the window: the whole batch is answered well within the minute it blocks
    assert.ok(Date.now() - started < 30_000, `answered in ${Date.now() - started} ms`);
  });

  test('a console sign-in with a valid key from a blocked address succeeds; a wrong one gets 429', async () => {
    for (let i = 0; i < LIMIT; i++) await h.call('GET', '/v1/payments?limit=1', { key: 'nonsense', remoteAddress: ATTACKER });
    limited(await h.call('POST', '/v1/console/session', { remoteAddress: ATTACKER, body: { key: `sk_test_${'w'.repeat(32)}` } }), 'a wrong sign-in');
    const ok = await h.call('POST', '/v1/console/session', { remoteAddress: ATTACKER, body: { key: h.merchant.testKey } });
    assert.equal(ok.status, 201, ok.raw);
  });
});
