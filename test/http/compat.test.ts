/**
 * The compatibility surfaces: every request example of the five seed documents, sent verbatim
 * (only host, ids and keys substituted), gets the status and response shape its document shows;
 * each document's error cases; idempotency through a surface; and a refund made through a surface
 * is the same refund, booked the same way, as through the native API.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { constructEvent } from '../../src/sdk/verify-signature.js';
import { createHarness, pay, type Harness } from '../helpers/harness.js';

const JSON_HEADERS = { 'content-type': 'application/json' };

/** A merchant's webhook receiver on 127.0.0.1: keeps every body with its signature header. */
async function startReceiver() {
  const hits: { raw: string; signature: string }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      hits.push({ raw: Buffer.concat(chunks).toString('utf8'), signature: String(req.headers['settle-signature']) });
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    hits,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
const sortedKeys = (o: object) => Object.keys(o).sort();

describe('compatibility surfaces', () => {
  let h: Harness;
  before(async () => {
    h = await createHarness('pglite');
  });
  after(async () => {
    await h?.close();
  });
  const key = () => h.merchant.testKey;
  /** A request as a seed's curl example sends it: its own headers and body text. */
  const send = (method: string, url: string, headers: Record<string, string>, payload?: string) =>
    h.call(method, url, { key: key(), headers, payload });
  const native = (paymentId: string) => h.call('GET', `/v1/payments/${paymentId}`, { key: key() });
  const verifyLedger = async () => assert.deepEqual((await h.rt.services.ledger.verify()).violations, []);
  const killSwitch = (enabled: boolean) => h.admin('PUT', '/v1/admin/features/refunds', { enabled, merchant_id: h.merchant.id });
  /** A payment made through an account of its own, which is then soft- or hard-deleted. */
  const payThroughDeletedAccount = async (hard: boolean) => {
    const account = await h.call('POST', '/v1/connector_accounts', { key: key(), body: { connector: 'sandbox', name: 'to delete' } });
    const p = await pay(h, { connector_account: account.body.id });
    const del = await h.call('DELETE', `/v1/connector_accounts/${account.body.id}${hard ? '?hard=true' : ''}`, { key: key() });
    assert.equal(del.status, 200);
    return p;
  };

  describe('gatelithix (seed 000): POST /compat/gatelithix/v1/payments/refund', () => {
    const url = '/compat/gatelithix/v1/payments/refund';
    const shape = ['amount', 'connector_account_id', 'connector_account_short_id', 'created_at', 'id', 'payment_intent_id', 'reason', 'status', 'test_mode'];

    test('the partial refund example answers the documented refund object', async () => {
      const p = await pay(h, { amount: 5000 });
      const r = await send('POST', url, { ...JSON_HEADERS, 'Idempotency-Key': `ref_${randomUUID()}` }, `{
"payment_intent_id": "${p.id}",
"amount": 1500
}`);
      assert.equal(r.status, 201);
      assert.deepEqual(sortedKeys(r.body), shape);
      assert.equal(r.body.payment_intent_id, p.id);
      assert.equal(r.body.amount, 1500);
      assert.equal(r.body.status, 'succeeded');
      assert.equal(r.body.connector_account_id, p.connector_account_id);
      assert.equal(r.body.connector_account_short_id, p.connector_account_short_id);
      assert.equal(r.body.test_mode, true);
      assert.match(r.body.id, /^re_/);
    });

    test('a full refund (amount omitted or 0) refunds the remaining balance, with the reason kept', async () => {
      const p = await pay(h, { amount: 5000 });
      const r = await send('POST', url, JSON_HEADERS, JSON.stringify({ payment_intent_id: p.id, reason: 'customer_request' }));
      assert.equal(r.status, 201);
      assert.equal(r.body.amount, 5000);
      assert.equal(r.body.reason, 'customer_request');
      const q = await pay(h, { amount: 700 });
      const zero = await send('POST', url, JSON_HEADERS, JSON.stringify({ payment_intent_id: q.id, amount: 0 }));
      assert.equal(zero.body.amount, 700);
    });

    test('the override-forbidden example answers 400 with the documented error body', async () => {
      const p = await pay(h, { amount: 5000 });
      const other = await h.call('POST', '/v1/connector_accounts', { key: key(), body: { connector: 'sandbox', name: 'other' } });
      const r = await send('POST', url, { 'Idempotency-Key': 'ref_01HK-override', 'Content-Type': 'application/json' }, `{
"payment_intent_id": "${p.id}",
"amount": 1500,
"connector_account": "${other.body.short_id}"
}`);
      assert.equal(r.status, 400);
      assert.deepEqual(sortedKeys(r.body), ['error']);
      assert.deepEqual(sortedKeys(r.body.error), ['code', 'message', 'param', 'request_id', 'type']);
      assert.equal(r.body.error.type, 'invalid_request_error');
      assert.equal(r.body.error.code, 'connector_account_override_forbidden');
      assert.equal(r.body.error.message, 'Refund must use the same connector_account as the originating charge.');
      assert.equal(r.body.error.param, 'connector_account');
      assert.match(r.body.error.request_id, /^req_/);
      const header = await send('POST', url, { ...JSON_HEADERS, 'X-Connector-Account': other.body.id }, JSON.stringify({ payment_intent_id: p.id }));
      assert.equal(header.body.error.code, 'connector_account_override_forbidden');
      await h.call('DELETE', `/v1/connector_accounts/${other.body.id}?hard=true`, { key: key() });
    });

    test('answers each documented error case with its code and status', async () => {
      const p = await pay(h, { amount: 1000 });
      const manual = await pay(h, { capture_method: 'manual' });
      const cases: [string, () => Promise<unknown>, number, string, string?][] = [
        ['missing payment_intent_id', async () => ({ amount: 100 }), 400, 'invalid_param', 'payment_intent_id'],
        ['no body at all', async () => undefined, 400, 'invalid_param', 'payment_intent_id'],
        ['amount above the remaining balance', async () => ({ payment_intent_id: p.id, amount: 1001 }), 400, 'refund_exceeds_amount', 'amount'],
        ['no such payment intent', async () => ({ payment_intent_id: 'a1b2c3d4-e5f6-7890-abcd-ef1234567890' }), 404, 'payment_intent_not_found', 'payment_intent_id'],
        ['payment intent not succeeded', async () => ({ payment_intent_id: manual.id }), 409, 'invalid_state_transition'],
        ['originating account soft-deleted', async () => ({ payment_intent_id: (await payThroughDeletedAccount(false)).id }), 400, 'connector_account_inactive'],
        ['originating account hard-deleted', async () => ({ payment_intent_id: (await payThroughDeletedAccount(true)).id }), 409, 'originating_account_unavailable'],
      ];
      for (const [name, body, status, code, param] of cases) {
        const payload = await body();
        const r = await send('POST', url, payload === undefined ? {} : JSON_HEADERS, payload === undefined ? undefined : JSON.stringify(payload));
        assert.equal(r.status, status, name);
        assert.equal(r.body.error.code, code, name);
        if (param) assert.equal(r.body.error.param, param, name);
      }
      await send('POST', url, JSON_HEADERS, JSON.stringify({ payment_intent_id: p.id }));
      const again = await send('POST', url, JSON_HEADERS, JSON.stringify({ payment_intent_id: p.id }));
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, 'invalid_state_transition');
    });
  });

  describe('shiftxpay (seed 001): POST /compat/shiftxpay/v1/payments/{id}/refunds', () => {
    const url = (id: string) => `/compat/shiftxpay/v1/payments/${id}/refunds`;

    test('the two curl examples: a full refund with no body, a partial one with a reason', async () => {
      const p = await pay(h, { amount: 125000, currency: 'INR' });
      const partial = await send('POST', url(p.id), { ...JSON_HEADERS, 'Idempotency-Key': randomUUID() }, '{ "amount": 50000, "reason": "partial return" }');
      assert.equal(partial.status, 201);
      assert.deepEqual(sortedKeys(partial.body), ['connector_ref', 'payment_id', 'refund_status', 'refunded', 'status']);
      assert.deepEqual({ ...partial.body, connector_ref: typeof partial.body.connector_ref }, {
        payment_id: p.id, refunded: 50000, status: 'partially_refunded', connector_ref: 'string', refund_status: 'succeeded',
      });
      const full = await send('POST', url(p.id), { 'Idempotency-Key': randomUUID() });
      assert.equal(full.status, 201);
      assert.equal(full.body.refunded, 75000);
      assert.equal(full.body.status, 'refunded');
      assert.equal(full.body.refund_status, 'succeeded');
      const refunds = await h.call('GET', `/v1/payments/${p.id}/refunds`, { key: key() });
      assert.deepEqual(refunds.body.data.map((r: any) => r.reason), [null, 'partial return']);
      assert.equal(refunds.body.data[1].connector_ref, partial.body.connector_ref);
    });

    test('an empty body or amount 0 refunds the full remaining balance', async () => {
      for (const payload of ['', '{}', '{"amount": 0}']) {
        const p = await pay(h, { amount: 900 });
        const r = await send('POST', url(p.id), JSON_HEADERS, payload);
        assert.equal(r.status, 201, payload);
        assert.equal(r.body.refunded, 900, payload);
      }
    });

    test('a refund the PSP rejects books nothing and leaves the payment\'s status', async () => {
      const p = await pay(h, { amount: 800, payment_method: 'pm_card_refund_fails' });
      const r = await send('POST', url(p.id), JSON_HEADERS, '{"amount": 300}');
      assert.equal(r.status, 201);
      assert.deepEqual([r.body.refunded, r.body.status, r.body.refund_status], [0, 'succeeded', 'failed']);
    });

    test('answers each documented error with its status and code', async () => {
      const manual = await pay(h, { capture_method: 'manual' });
      const p = await pay(h, { amount: 1000 });
      const done = await pay(h, { amount: 100 });
      await send('POST', url(done.id), {});
      const cases: [string, string, string, number, string][] = [
        ['not refundable', manual.id, '', 409, 'not_refundable'],
        ['already refunded', done.id, '', 409, 'already_refunded'],
        ['amount too large', p.id, '{"amount": 1001}', 422, 'amount_too_large'],
        ['no such payment', 'pay_3Nfnope', '', 404, 'not_found'],
      ];
      for (const [name, id, payload, status, code] of cases) {
        const r = await send('POST', url(id), payload ? JSON_HEADERS : {}, payload || undefined);
        assert.equal(r.status, status, name);
        assert.equal(r.body.error.code, code, name);
      }
      await killSwitch(false);
      try {
        const off = await send('POST', url(p.id), {});
        assert.equal(off.status, 403);
        assert.equal(off.body.error.code, 'feature_disabled');
      } finally {
        await killSwitch(true);
      }
    });
  });

  describe('generic (seed 002): POST /compat/generic/refunds', () => {
    const url = '/compat/generic/refunds';

    test('creates a partial refund from a camelCase body and answers the refund in camelCase', async () => {
      const p = await pay(h, { amount: 3000, currency: 'EUR', line_items: [{ id: 'li_a', name: 'A', quantity: 2, unit_amount: 1000 }, { id: 'li_b', name: 'B', quantity: 1, unit_amount: 1000 }] });
      const r = await send('POST', url, JSON_HEADERS, JSON.stringify({
        paymentId: p.id, currency: 'EUR', reason: 'customer_request', description: 'Returned mug', reference: 'rma-17',
        lineItems: [{ id: 'li_a', quantity: 1 }], metadata: { ticket: 'T-1' },
      }));
      assert.equal(r.status, 201);
      assert.equal(r.body.paymentId, p.id);
      assert.equal(r.body.amount, 1000);
      assert.deepEqual(r.body.lineItems, [{ id: 'li_a', quantity: 1, amount: 1000 }]);
      assert.equal(r.body.reference, 'rma-17');
      assert.equal(r.body.payment.amountRefundable, 2000);
      assert.equal(r.body.testMode, true);
      for (const k of Object.keys(r.body)) assert.doesNotMatch(k, /_/, `camelCase field ${k}`);
      const rest = await send('POST', url, JSON_HEADERS, JSON.stringify({ paymentId: p.id, currency: 'EUR', reason: 'duplicate' }));
      assert.equal(rest.body.amount, 2000);
      assert.equal(rest.body.payment.status, 'refunded');
    });

    test('answers payment.not-found (404) and amount.insufficient (403), and requires paymentId, currency and reason', async () => {
      const p = await pay(h, { amount: 1000 });
      const missing = await send('POST', url, JSON_HEADERS, JSON.stringify({ paymentId: 'pay_missing', currency: 'USD', reason: 'other' }));
      assert.deepEqual([missing.status, missing.body.error.code, missing.body.error.param], [404, 'payment.not-found', 'paymentId']);
      const tooMuch = await send('POST', url, JSON_HEADERS, JSON.stringify({ paymentId: p.id, currency: 'USD', reason: 'other', amount: 1001 }));
      assert.deepEqual([tooMuch.status, tooMuch.body.error.code], [403, 'amount.insufficient']);
      await send('POST', url, JSON_HEADERS, JSON.stringify({ paymentId: p.id, currency: 'USD', reason: 'other' }));
      const again = await send('POST', url, JSON_HEADERS, JSON.stringify({ paymentId: p.id, currency: 'USD', reason: 'other' }));
      assert.deepEqual([again.status, again.body.error.code], [403, 'amount.insufficient']);
      const empty = await send('POST', url, {});
      assert.deepEqual([empty.status, empty.body.error.code, empty.body.error.param], [400, 'invalid_param', 'paymentId']);
      for (const [body, param] of [
        [{ currency: 'USD', reason: 'other' }, 'paymentId'],
        [{ paymentId: p.id, reason: 'other' }, 'currency'],
        [{ paymentId: p.id, currency: 'USD' }, 'reason'],
        [{ paymentId: p.id, currency: 'usd', reason: 'other' }, 'currency'],
        [{ paymentId: p.id, currency: 'USD', reason: 'other', description: 'x'.repeat(81) }, 'description'],
        [{ paymentId: p.id, currency: 'USD', reason: 'other', reference: 'x'.repeat(41) }, 'reference'],
      ] as const) {
        const r = await send('POST', url, JSON_HEADERS, JSON.stringify(body));
        assert.deepEqual([r.status, r.body.error.code, r.body.error.param], [400, 'invalid_param', param]);
      }
    });
  });

  describe('primer (seed 003): POST /compat/primer/payments/{id}/refund', () => {
    test('refunds the full amount by default and answers the payment with the refund among its transactions', async () => {
      const p = await pay(h, { amount: 700, order_id: 'order-123', customer_id: 'cust-9' });
      const r = await send('POST', `/compat/primer/payments/${p.id}/refund`, { ...JSON_HEADERS, 'X-Idempotency-Key': randomUUID() }, '{}');
      assert.equal(r.status, 200);
      for (const k of ['id', 'date', 'dateUpdated', 'status', 'orderId', 'currencyCode', 'amount', 'processor', 'transactions']) assert.ok(k in r.body, k);
      assert.deepEqual([r.body.id, r.body.orderId, r.body.currencyCode, r.body.amount, r.body.customerId], [p.id, 'order-123', 'USD', 700, 'cust-9']);
      assert.equal(r.body.processor.name, 'sandbox');
      assert.equal(r.body.processor.amountRefunded, 700);
      const refund = r.body.transactions.find((t: any) => t.transactionType === 'REFUND');
      assert.equal(refund.amount, 700);
      assert.equal(refund.processorStatus, 'SETTLED');
      assert.match(refund.refundId, /^re_/);
      assert.ok(r.body.transactions.some((t: any) => t.transactionType === 'SALE'));
    });

    test('a lesser amount, an orderId and a reason make a partial refund; GET shows the same payment', async () => {
      const p = await pay(h, { amount: 5000, order_id: 'order-1' });
      const r = await send('POST', `/compat/primer/payments/${p.id}/refund`, JSON_HEADERS, JSON.stringify({ amount: 2000, orderId: 'order-1-refund', reason: 'Item damaged' }));
      assert.equal(r.status, 200);
      assert.equal(r.body.processor.amountRefunded, 2000);
      const refunds = await h.call('GET', `/v1/payments/${p.id}/refunds`, { key: key() });
      assert.deepEqual([refunds.body.data[0].order_id, refunds.body.data[0].reason], ['order-1-refund', 'Item damaged']);
      const got = await send('GET', `/compat/primer/payments/${p.id}`, {});
      assert.equal(got.status, 200);
      assert.deepEqual(got.body, r.body);
      const unknown = await send('GET', '/compat/primer/payments/pay_nope', {});
      assert.deepEqual([unknown.status, unknown.body.error.code], [404, 'payment_not_found']);
    });

    test('X-Idempotency-Key replays the first answer byte for byte and refunds once', async () => {
      const p = await pay(h, { amount: 5000 });
      const headers = { ...JSON_HEADERS, 'X-Idempotency-Key': `primer-${randomUUID()}` };
      const first = await send('POST', `/compat/primer/payments/${p.id}/refund`, headers, '{"amount": 1000}');
      const second = await send('POST', `/compat/primer/payments/${p.id}/refund`, headers, '{"amount": 1000}');
      assert.equal(second.status, 200);
      assert.equal(second.headers['idempotent-replayed'], 'true');
      assert.equal(second.raw, first.raw);
      assert.equal((await native(p.id)).body.amount_refunded, 1000);
      const reused = await send('POST', `/compat/primer/payments/${p.id}/refund`, headers, '{"amount": 999}');
      assert.deepEqual([reused.status, reused.body.error.code], [422, 'idempotency_key_reused']);
    });
  });

  describe('elasticpay (seed 004): /compat/elasticpay/api/v1/payment_intents/{id}/refunds', () => {
    const url = (id: string) => `/compat/elasticpay/api/v1/payment_intents/${id}/refunds`;
    const shape = ['amount_cents', 'currency', 'message', 'refund_id', 'status', 'success', 'transaction_id'];

    test('the full refund example answers the documented object', async () => {
      const p = await pay(h, { amount: 5000, currency: 'AUD' });
      const r = await send('POST', url(p.id), JSON_HEADERS, '{"reason": "customer_request"}');
      assert.equal(r.status, 201);
      assert.deepEqual(sortedKeys(r.body), shape);
      assert.deepEqual({ ...r.body, refund_id: undefined }, {
        success: true, status: 'succeeded', transaction_id: p.id, refund_id: undefined,
        message: 'Full refund of 5000 AUD processed', amount_cents: 5000, currency: 'AUD',
      });
      assert.match(r.body.refund_id, /^re_/);
      assert.equal((await native(p.id)).body.status, 'refunded');
    });

    test('the partial refund example, its free-text reason kept, and the list of refunds', async () => {
      const p = await pay(h, { amount: 5000, currency: 'AUD' });
      const r = await send('POST', url(p.id), JSON_HEADERS, '{"amount_cents": 2000, "reason": "partial_return"}');
      assert.equal(r.status, 201);
      assert.deepEqual(sortedKeys(r.body), shape);
      assert.equal(r.body.message, 'Partial refund of 2000 AUD processed');
      assert.equal(r.body.amount_cents, 2000);
      const second = await send('POST', url(p.id), JSON_HEADERS, '{"amount_cents": 3000}');
      assert.equal(second.body.message, 'Full refund of 3000 AUD processed');
      const list = await send('GET', url(p.id), {});
      assert.equal(list.status, 200);
      assert.deepEqual(list.body.data.map((x: any) => [x.refund_id, x.amount_cents, x.reason, x.status]), [
        [second.body.refund_id, 3000, null, 'succeeded'],
        [r.body.refund_id, 2000, 'partial_return', 'succeeded'],
      ]);
      assert.equal(list.body.has_more, false);
      const page = await send('GET', `${url(p.id)}?limit=1`, {});
      assert.equal(page.body.data.length, 1);
      assert.equal(page.body.has_more, true);
    });

    test('a refund the PSP rejects answers success false with status failed', async () => {
      const p = await pay(h, { amount: 5000, currency: 'AUD', payment_method: 'pm_card_refund_fails' });
      const r = await send('POST', url(p.id), JSON_HEADERS, '{"amount_cents": 2000}');
      assert.equal(r.status, 201);
      assert.equal(r.body.success, false);
      assert.equal(r.body.status, 'failed');
      assert.match(r.body.message, /^Refund of 2000 AUD failed/);
      assert.equal((await native(p.id)).body.status, 'succeeded');
    });

    test('refuses more than the charged amount and names amount_cents', async () => {
      const p = await pay(h, { amount: 5000, currency: 'AUD' });
      const r = await send('POST', url(p.id), JSON_HEADERS, '{"amount_cents": 5001}');
      assert.deepEqual([r.status, r.body.error.code, r.body.error.param], [422, 'amount_too_large', 'amount_cents']);
      const bad = await send('POST', url(p.id), JSON_HEADERS, '{"amount_cents": 12.5}');
      assert.deepEqual([bad.status, bad.body.error.code, bad.body.error.param], [400, 'invalid_param', 'amount_cents']);
      const unknown = await send('GET', url('pi_0abc123def456ghi789jkl012mn'), {});
      assert.equal(unknown.status, 404);
    });
  });

  describe('elasticpay webhook dialect', () => {
    test('an endpoint created with dialect elasticpay receives payment_intent.* events, signed, carrying the payment intent', async () => {
      const rx = await startReceiver();
      const only = await startReceiver();
      try {
        const ep = await h.call('POST', '/v1/webhook_endpoints', { key: key(), body: { url: rx.url, enabled_events: ['*'], dialect: 'elasticpay' } });
        assert.equal(ep.status, 201);
        assert.equal(ep.body.dialect, 'elasticpay');
        assert.deepEqual(ep.body.enabled_events, ['payment_intent.refunded', 'payment_intent.partially_refunded', 'payment_intent.refund_failed']);
        const narrow = await h.call('POST', '/v1/webhook_endpoints', { key: key(), body: { url: only.url, enabled_events: ['payment_intent.refunded'], dialect: 'elasticpay' } });
        assert.deepEqual((await h.call('GET', `/v1/webhook_endpoints/${narrow.body.id}`, { key: key() })).body.enabled_events, ['payment_intent.refunded']);

        const p = await pay(h, { amount: 5000, currency: 'AUD' });
        const url = `/compat/elasticpay/api/v1/payment_intents/${p.id}/refunds`;
        const partial = await send('POST', url, JSON_HEADERS, '{"amount_cents": 2000, "reason": "partial_return"}');
        await send('POST', url, JSON_HEADERS, '{"reason": "customer_request"}');
        const failing = await pay(h, { amount: 1000, currency: 'AUD', payment_method: 'pm_card_refund_fails' });
        await send('POST', `/compat/elasticpay/api/v1/payment_intents/${failing.id}/refunds`, JSON_HEADERS, '{}');
        for (let i = 0; i < 20 && (rx.hits.length < 3 || only.hits.length < 1); i++) {
          await h.rt.services.webhooks.deliverDue();
          await new Promise((r) => setTimeout(r, 20));
        }

        const events = rx.hits.map((hit) => constructEvent(hit.raw, hit.signature, ep.body.secret));
        assert.deepEqual(events.map((e) => e.type), ['payment_intent.partially_refunded', 'payment_intent.refunded', 'payment_intent.refund_failed']);
        const [partiallyRefunded, refunded, refundFailed] = events.map((e) => e.data.object as any);
        assert.deepEqual(
          [partiallyRefunded.object, partiallyRefunded.id, partiallyRefunded.status, partiallyRefunded.amount_cents, partiallyRefunded.amount_refunded_cents, partiallyRefunded.currency],
          ['payment_intent', p.id, 'succeeded', 5000, 2000, 'AUD'],
        );
        assert.deepEqual(partiallyRefunded.refunds.map((r: any) => [r.refund_id, r.status, r.amount_cents]), [[partial.body.refund_id, 'succeeded', 2000]]);
        assert.deepEqual([refunded.status, refunded.amount_refunded_cents], ['refunded', 5000]);
        assert.deepEqual([refundFailed.id, refundFailed.status, refundFailed.refunds[0].status], [failing.id, 'succeeded', 'failed']);
        assert.ok(events.every((e) => e.id.startsWith('evt_') && e.test_mode === true));

        const narrowed = only.hits.map((hit) => constructEvent(hit.raw, hit.signature, narrow.body.secret));
        assert.deepEqual(narrowed.map((e) => e.type), ['payment_intent.refunded']);
        // the same events, native, in the events API
        const nativeEvent = await h.call('GET', `/v1/events/${events[1].id}`, { key: key() });
        assert.equal(nativeEvent.body.type, 'payment.refunded');
        for (const id of [ep.body.id, narrow.body.id]) await h.call('DELETE', `/v1/webhook_endpoints/${id}`, { key: key() });
      } finally {
        await rx.close();
        await only.close();
      }
    });

    test('refuses event names the dialect does not have, and dialect names on a native endpoint', async () => {
      const bad = await h.call('POST', '/v1/webhook_endpoints', { key: key(), body: { url: 'http://127.0.0.1:9/x', enabled_events: ['refund.succeeded'], dialect: 'elasticpay' } });
      assert.deepEqual([bad.status, bad.body.error.code, bad.body.error.param], [400, 'invalid_param', 'enabled_events[0]']);
      const native = await h.call('POST', '/v1/webhook_endpoints', { key: key(), body: { url: 'http://127.0.0.1:9/x', enabled_events: ['payment_intent.refunded'] } });
      assert.deepEqual([native.status, native.body.error.param], [400, 'enabled_events[0]']);
      const unknown = await h.call('POST', '/v1/webhook_endpoints', { key: key(), body: { url: 'http://127.0.0.1:9/x', enabled_events: ['*'], dialect: 'stripe' } });
      assert.deepEqual([unknown.status, unknown.body.error.param], [400, 'dialect']);
    });
  });

  describe('one refund engine behind every surface', () => {
    test('a refund through a surface is the same refund through the native API, booked once, ledger balanced', async () => {
      const p = await pay(h, { amount: 6000 });
      const surfaceRefunds = [
        await send('POST', '/compat/gatelithix/v1/payments/refund', JSON_HEADERS, JSON.stringify({ payment_intent_id: p.id, amount: 1000 })),
        await send('POST', `/compat/shiftxpay/v1/payments/${p.id}/refunds`, JSON_HEADERS, '{"amount": 1000}'),
        await send('POST', '/compat/generic/refunds', JSON_HEADERS, JSON.stringify({ paymentId: p.id, currency: 'USD', reason: 'other', amount: 1000 })),
        await send('POST', `/compat/primer/payments/${p.id}/refund`, JSON_HEADERS, '{"amount": 1000}'),
        await send('POST', `/compat/elasticpay/api/v1/payment_intents/${p.id}/refunds`, JSON_HEADERS, '{"amount_cents": 1000}'),
      ];
      for (const r of surfaceRefunds) assert.ok(r.status === 201 || r.status === 200, r.raw);
      const gl = surfaceRefunds[0].body;
      const nativeRefund = await h.call('GET', `/v1/refunds/${gl.id}`, { key: key() });
      assert.deepEqual(
        [nativeRefund.body.payment_id, nativeRefund.body.amount, nativeRefund.body.status, nativeRefund.body.created_at, nativeRefund.body.source],
        [gl.payment_intent_id, gl.amount, gl.status, gl.created_at, 'api'],
      );
      const ep = surfaceRefunds[4].body;
      assert.equal((await h.call('GET', `/v1/refunds/${ep.refund_id}`, { key: key() })).body.amount, 1000);
      const payment = (await native(p.id)).body;
      assert.equal(payment.amount_refunded, 5000);
      assert.equal(payment.transactions.filter((t: any) => t.type === 'refund').length, 5);
      const ledger = await h.call('GET', `/v1/ledger/transactions?payment_id=${p.id}`, { key: key() });
      const refundBookings = ledger.body.data.filter((t: any) => t.type === 'refund');
      assert.equal(refundBookings.length, 5);
      assert.equal(refundBookings.reduce((s: number, t: any) => s + t.entries[0].amount, 0), 5000);
      const events = await h.call('GET', '/v1/events?type=refund.succeeded&limit=100', { key: key() });
      assert.ok(events.body.data.some((e: any) => e.data.object.id === ep.refund_id));
      await verifyLedger();
    });

    test('an Idempotency-Key replays through a surface and never refunds twice', async () => {
      const p = await pay(h, { amount: 5000 });
      const headers = { ...JSON_HEADERS, 'Idempotency-Key': `ep-${randomUUID()}` };
      const first = await send('POST', `/compat/elasticpay/api/v1/payment_intents/${p.id}/refunds`, headers, '{"amount_cents": 2000}');
      const again = await send('POST', `/compat/elasticpay/api/v1/payment_intents/${p.id}/refunds`, headers, '{"amount_cents": 2000}');
      assert.equal(again.status, 201);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.equal(again.raw, first.raw);
      assert.equal((await native(p.id)).body.amount_refunded, 2000);
      // a business error is stored and replayed in the surface's shape too
      const errKey = { ...JSON_HEADERS, 'Idempotency-Key': `gen-${randomUUID()}` };
      const body = JSON.stringify({ paymentId: p.id, currency: 'USD', reason: 'other', amount: 4000 });
      const refused = await send('POST', '/compat/generic/refunds', errKey, body);
      const replayed = await send('POST', '/compat/generic/refunds', errKey, body);
      assert.deepEqual([refused.status, refused.body.error.code], [403, 'amount.insufficient']);
      assert.equal(replayed.raw, refused.raw);
      assert.equal(replayed.headers['idempotent-replayed'], 'true');
      await verifyLedger();
    });

    test('every surface authenticates like the native API and keeps modes apart', async () => {
      const live = await pay(h, {}, h.merchant.liveKey);
      const noKey = await h.call('POST', `/compat/shiftxpay/v1/payments/${live.id}/refunds`, {});
      assert.deepEqual([noKey.status, noKey.body.error.code], [401, 'invalid_api_key']);
      const otherMode = await send('POST', `/compat/shiftxpay/v1/payments/${live.id}/refunds`, {});
      assert.deepEqual([otherMode.status, otherMode.body.error.code], [404, 'not_found']);
      const list = await h.call('GET', `/compat/elasticpay/api/v1/payment_intents/${live.id}/refunds`, { key: null });
      assert.equal(list.status, 401);
    });

    test('a restricted key needs the native route\'s permission on a surface', async () => {
      const p = await pay(h, { amount: 1000 });
      const made = await h.call('POST', '/v1/api_keys', { key: key(), body: { name: 'support', permissions: ['refunds:read'] } });
      assert.equal(made.status, 201);
      const url = `/compat/elasticpay/api/v1/payment_intents/${p.id}/refunds`;
      const refused = await h.call('POST', url, { key: made.body.secret, body: { amount_cents: 100 } });
      assert.deepEqual([refused.status, refused.body.error.code], [403, 'insufficient_permissions']);
      assert.equal((await h.call('GET', url, { key: made.body.secret })).status, 200);
      assert.equal((await native(p.id)).body.amount_refunded, 0);
    });

    test('the surfaces are in /openapi.json under the compatibility tag', async () => {
      const doc = (await h.call('GET', '/openapi.json')).body;
      const tagged = Object.entries(doc.paths as Record<string, Record<string, any>>)
        .flatMap(([path, ops]) => Object.entries(ops).filter(([, op]) => op.tags?.includes('compatibility')).map(([method]) => `${method.toUpperCase()} ${path}`))
        .sort();
      assert.deepEqual(tagged, [
        'GET /compat/elasticpay/api/v1/payment_intents/{id}/refunds',
        'GET /compat/primer/payments/{id}',
        'POST /compat/elasticpay/api/v1/payment_intents/{id}/refunds',
        'POST /compat/gatelithix/v1/payments/refund',
        'POST /compat/generic/refunds',
        'POST /compat/primer/payments/{id}/refund',
        'POST /compat/shiftxpay/v1/payments/{id}/refunds',
      ]);
      assert.ok(doc.tags?.some((t: any) => t.name === 'compatibility' && t.description));
    });
  });
});
