import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { BACKENDS, harnessFor, pay, type Harness } from '../helpers/harness.js';

for (const backend of BACKENDS) {
  describe(`list filters on ${backend}`, () => {
    let h: Harness;
    const it = harnessFor(backend, (opened) => (h = opened));
    const ids = (r: any) => r.body.data.map((p: any) => p.id);

    it('filters payments by amount range, currency and creation time', async () => {
      const small = await pay(h, { amount: 500, currency: 'EUR' });
      const mid = await pay(h, { amount: 5000, currency: 'USD' });
      const big = await pay(h, { amount: 50_000, currency: 'USD' });
      const get = (q: string) => h.call('GET', `/v1/payments?limit=100&${q}`, { key: h.merchant.testKey });
      assert.deepEqual(ids(await get('amount[gte]=1000&amount[lte]=10000')), [mid.id]);
      assert.deepEqual(ids(await get('currency=eur')), [small.id]);
      const since = await get(`created[gte]=${encodeURIComponent(mid.created_at)}`);
      assert.deepEqual(ids(since), [big.id, mid.id]);
      assert.deepEqual(ids(await get(`created[lte]=${encodeURIComponent(small.created_at)}`)), [small.id]);
      const bad = await get('created[gte]=yesterday');
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.param, 'created[gte]');
    });

    it('filters events by the object they describe and by failed deliveries', async () => {
      const p = await pay(h, { amount: 1200 });
      const refund = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: h.merchant.testKey, body: { amount: 200 } });
      const forPayment = await h.call('GET', `/v1/events?limit=100&object_id=${p.id}`, { key: h.merchant.testKey });
      assert.ok(forPayment.body.data.length >= 2, forPayment.raw);
      assert.ok(forPayment.body.data.every((e: any) => e.data.object.id === p.id));
      const forRefund = await h.call('GET', `/v1/events?limit=100&object_id=${refund.body.id}`, { key: h.merchant.testKey });
      assert.ok(forRefund.body.data.some((e: any) => e.type === 'refund.created'));
      const failed = await h.call('GET', '/v1/events?delivery_status=failed', { key: h.merchant.testKey });
      assert.equal(failed.status, 200);
      assert.deepEqual(failed.body.data, [], 'no endpoint, no delivery, nothing failed');
    });
  });
}
