/**
 * An Idempotency-Key reused after its stored response expired is a new request or refused; it
 * never answers with another request's object. And a refund with no body is the same request as
 * one with `{}` under one key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createHarness, pay, type Harness } from '../helpers/harness.js';

describe('idempotency keys after their retention', () => {
  let h: Harness;
  before(async () => {
    h = await createHarness('pglite');
  });
  after(() => h?.close());
  const key = () => h.merchant.testKey;

  /** What the cleanup job does once the retention has passed. */
  async function expireStoredResponses() {
    await h.db.query(`UPDATE idempotency_keys SET created_at = now() - interval '1000 hours'`);
    await h.rt.services.idempotency.purgeExpired();
  }

  test('a payment key reused after retention never answers with the old payment', async () => {
    const first = await h.call('POST', '/v1/payments', { key: key(), idempotencyKey: 'order-1', body: { amount: 1000, currency: 'USD', payment_method: 'pm_card_visa' } });
    assert.equal(first.status, 201);
    await expireStoredResponses();
    const reused = await h.call('POST', '/v1/payments', { key: key(), idempotencyKey: 'order-1', body: { amount: 5000, currency: 'EUR', payment_method: 'pm_card_visa' } });
    if (reused.status === 201) {
      assert.notEqual(reused.body.id, first.body.id);
      assert.equal(reused.body.amount, 5000);
      assert.equal(reused.body.currency, 'EUR');
    } else {
      assert.equal(reused.status, 422, reused.raw);
      assert.equal(reused.body.error.code, 'idempotency_key_reused');
    }
  });

  test("a refund key reused after retention for another payment never answers with the first payment's refund", async () => {
    const a = await pay(h, { amount: 4000 });
    const b = await pay(h, { amount: 4000 });
    const first = await h.call('POST', `/v1/payments/${a.id}/refunds`, { key: key(), idempotencyKey: 'return-1', body: { amount: 1000 } });
    assert.equal(first.status, 201);
    await expireStoredResponses();
    const reused = await h.call('POST', `/v1/payments/${b.id}/refunds`, { key: key(), idempotencyKey: 'return-1', body: { amount: 1500 } });
    if (reused.status === 201) {
      assert.notEqual(reused.body.id, first.body.id);
      assert.equal(reused.body.payment_id, b.id);
      assert.equal(reused.body.amount, 1500);
    } else {
      assert.equal(reused.status, 422, reused.raw);
      assert.equal(reused.body.error.code, 'idempotency_key_reused');
    }
    // and nothing was refunded twice on A
    assert.equal((await h.call('GET', `/v1/payments/${a.id}`, { key: key() })).body.amount_refunded, 1000);
  });

  test('a refund with no body and one with {} under one key are the same request', async () => {
    const p = await pay(h, { amount: 4000 });
    const none = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), idempotencyKey: 'empty-1' });
    assert.equal(none.status, 201, none.raw);
    const empty = await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), idempotencyKey: 'empty-1', body: {} });
    assert.equal(empty.status, 201, empty.raw);
    assert.equal(empty.body.id, none.body.id);
    assert.equal(empty.headers['idempotent-replayed'], 'true');
    // and the other way round
    const q = await pay(h, { amount: 4000 });
    const braces = await h.call('POST', `/v1/payments/${q.id}/refunds`, { key: key(), idempotencyKey: 'empty-2', body: {} });
    const bare = await h.call('POST', `/v1/payments/${q.id}/refunds`, { key: key(), idempotencyKey: 'empty-2' });
    assert.equal(bare.status, 201, bare.raw);
    assert.equal(bare.body.id, braces.body.id);
  });
});
