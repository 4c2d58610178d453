import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Connector, RefundRequest } from '../../src/connectors/connector.js';
import { SandboxPsp } from '../../src/psp-sim/psp-model.js';
import { createSandboxConnector } from '../../src/connectors/sandbox/sandbox.connector.js';
import type { Db, QueryResult, Tx } from '../../src/db/db.js';
import { createLogger } from '../../src/lib/logger.js';
import { syncPendingRefunds } from '../../src/workers/refund-sync.worker.js';
import { postgresOrSkip } from '../helpers/databases.js';
import { BACKENDS, createHarness, pay, type Harness } from '../helpers/harness.js';

/** A sandbox connector whose refund calls can be intercepted (to simulate a crash or a hang). */
function controllableSandbox(psp: SandboxPsp) {
  // stands in for a live PSP too: these tests also refund live-mode payments
  const inner = createSandboxConnector({ psp, liveModeStandIn: true });
  const control: { beforeRefund?: () => Promise<void>; afterRefund?: () => Promise<void>; lastRequest?: RefundRequest } = {};
  const connector: Connector = {
    ...inner,
    name: 'sandbox',
    async refund(ctx, req) {
      control.lastRequest = req;
      await control.beforeRefund?.();
      const result = await inner.refund(ctx, req);
      await control.afterRefund?.();
      return result;
    },
  };
  return { connector, control };
}

/** What the gateway asks of its database while `on`: committed transactions, statements outside one. */
function countingDb() {
  const seen = { on: false, transactions: 0, autocommit: [] as string[] };
  const wrap = (inner: Db): Db => ({
    kind: inner.kind,
    query<T>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>> {
      // the per-second refreshes of the key and kill-switch caches are not the request's
      if (seen.on && !/\b(api_keys|feature_flags)\b/.test(sql)) seen.autocommit.push(sql.replace(/\s+/g, ' ').slice(0, 80));
      return inner.query<T>(sql, params);
    },
    async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
      const out = await inner.transaction(fn);
      if (seen.on) seen.transactions++;
      return out;
    },
    exec: (sql) => inner.exec(sql),
    close: () => inner.close(),
  });
  return { seen, wrap };
}

for (const backend of BACKENDS) {
  describe(`refunds on ${backend}`, () => {
    let h: Harness;
    let skip = false;
    const psp = new SandboxPsp();
    const { connector, control } = controllableSandbox(psp);
    const counting = countingDb();
    before(async (t) => {
      if (backend === 'postgres' && !(await postgresOrSkip(t as never))) {
        skip = true;
        return;
      }
      h = await createHarness(backend, {
        connectors: new Map([['sandbox', connector]]),
        env: { SETTLE_IDEMPOTENCY_LOCK_MS: '2000', SETTLE_REFUND_SYNC_BASE_MS: '10' },
        wrapDb: counting.wrap,
      });
    });
    after(async () => {
      psp.dispose();
      await h?.close();
    });
    const it = (name: string, fn: () => Promise<void>) => test(name, async (t) => (skip ? t.skip('no postgres') : fn()));
    const key = () => h.merchant.testKey;
    const refund = (paymentId: string, body?: unknown, extra: { idempotencyKey?: string; headers?: Record<string, string> } = {}) =>
      h.call('POST', `/v1/payments/${paymentId}/refunds`, { key: key(), body, ...extra });
    const verifyLedger = async () => assert.deepEqual((await h.rt.services.ledger.verify()).violations, []);

    it('refunds the whole remaining balance with an empty body, no body, amount 0 or amount omitted', async () => {
      for (const variant of ['empty', 'none', 'zero', 'omitted'] as const) {
        const p = await pay(h, { amount: 5000 });
        const r =
          variant === 'empty'
            ? await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key(), payload: '', headers: { 'content-type': 'application/json' } })
            : variant === 'none'
              ? await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: key() })
              : await refund(p.id, variant === 'zero' ? { amount: 0 } : { reason: 'customer_request' });
        assert.equal(r.status, 201, `${variant}: ${r.raw}`);
        assert.equal(r.body.object, 'refund');
        assert.equal(r.body.amount, 5000);
        assert.equal(r.body.status, 'succeeded');
        assert.equal(r.body.source, 'api');
        assert.match(r.body.id, /^re_/);
        assert.equal(r.body.payment.status, 'refunded');
        assert.equal(r.body.payment.amount_refunded, 5000);
        assert.equal(r.body.payment.amount_refundable, 0);
        assert.equal(r.body.connector_account_id, h.merchant.testAccount.id);
        assert.equal(r.body.connector_account_short_id, h.merchant.testAccount.short_id);
        assert.match(r.body.connector_ref, /^sbx_re_/);
      }
      await verifyLedger();
    });

    it('seed: partial refund of 1500 through POST /v1/payments/refund with payment_intent_id', async () => {
      const p = await pay(h, { amount: 5000 });
      const r = await h.call('POST', '/v1/payments/refund', {
        key: key(), idempotencyKey: `ref_${p.id}`, body: { payment_intent_id: p.id, amount: 1500 },
      });
      assert.equal(r.status, 201);
      assert.equal(r.body.amount, 1500);
      assert.equal(r.body.payment_id, p.id);
      assert.equal(r.body.payment.status, 'partially_refunded');
      assert.equal(r.body.payment.amount_refundable, 3500);
      const viaRefunds = await h.call('POST', '/v1/refunds', { key: key(), body: { payment_id: p.id, amount: 500 } });
      assert.equal(viaRefunds.status, 201);
      assert.equal(viaRefunds.body.payment.amount_refunded, 2000);
    });

    it('seed: several partial refunds until the total equals the captured amount, then already_refunded', async () => {
      const p = await pay(h, { amount: 10_000 });
      for (const amount of [1000, 2500, 4000]) assert.equal((await refund(p.id, { amount })).status, 201);
      const over = await refund(p.id, { amount: 2501 });
      assert.equal(over.status, 422);
      assert.equal(over.body.error.code, 'amount_too_large');
      assert.equal(over.body.error.param, 'amount');
      assert.match(over.body.error.message, /2500/);
      const exact = await refund(p.id, { amount: 2500 });
      assert.equal(exact.status, 201);
      assert.equal(exact.body.payment.status, 'refunded');
      const more = await refund(p.id, { amount: 1 });
      assert.equal(more.status, 409);
      assert.equal(more.body.error.code, 'already_refunded');
      const got = await h.call('GET', `/v1/payments/${p.id}`, { key: key() });
      assert.equal(got.body.amount_refunded, 10_000);
      const refundTxns = got.body.transactions.filter((t: any) => t.type === 'refund');
      assert.equal(refundTxns.length, 4);
      assert.ok(refundTxns.every((t: any) => t.status === 'succeeded' && t.refund_id.startsWith('re_')));
      const ledger = await h.call('GET', `/v1/ledger/transactions?payment_id=${p.id}&limit=100`, { key: key() });
      const booked = ledger.body.data.filter((t: any) => t.type === 'refund').map((t: any) => t.entries.find((e: any) => e.direction === 'debit').amount);
      assert.deepEqual(booked.sort((a: number, b: number) => a - b), [1000, 2500, 2500, 4000]);
      await verifyLedger();
    });

    it('seed: refuses another connector account in the body or the X-Connector-Account header', async () => {
      const p = await pay(h, { amount: 5000 });
      const other = await h.call('POST', '/v1/connector_accounts', { key: key(), body: { connector: 'sandbox', name: 'other' } });
      const body = await h.call('POST', '/v1/payments/refund', {
        key: key(), idempotencyKey: 'ref_override', body: { payment_intent_id: p.id, amount: 1500, connector_account: other.body.short_id },
      });
      assert.equal(body.status, 400);
      assert.equal(body.body.error.code, 'connector_account_override_forbidden');
      assert.equal(body.body.error.param, 'connector_account');
      assert.equal(body.body.error.message, 'Refund must use the same connector_account as the originating charge.');
      const header = await refund(p.id, { amount: 100 }, { headers: { 'x-connector-account': other.body.id } });
      assert.equal(header.status, 400);
      assert.equal(header.body.error.code, 'connector_account_override_forbidden');
      assert.equal(header.body.error.param, 'X-Connector-Account');
      // naming the originating account, in either form, is allowed
      assert.equal((await refund(p.id, { amount: 100, connector_account: h.merchant.testAccount.short_id })).status, 201);
      assert.equal((await refund(p.id, { amount: 100 }, { headers: { 'x-connector-account': h.merchant.testAccount.id } })).status, 201);
      await h.call('DELETE', `/v1/connector_accounts/${other.body.id}?hard=true`, { key: key() });
    });

    it('routes through the originating account after the default changed; refuses inactive and deleted ones', async () => {
      const second = await h.call('POST', '/v1/connector_accounts', { key: key(), body: { connector: 'sandbox', name: 'B', default: true } });
      assert.equal(second.body.is_default, true);
      const viaB = await pay(h, { amount: 3000 });
      assert.equal(viaB.connector_account_id, second.body.id);
      await h.call('POST', `/v1/connector_accounts/${h.merchant.testAccount.id}/make_default`, { key: key() });
      const r = await refund(viaB.id, { amount: 1000 });
      assert.equal(r.status, 201);
      assert.equal(r.body.connector_account_id, second.body.id);
      const ledger = await h.call('GET', `/v1/ledger/transactions?payment_id=${viaB.id}`, { key: key() });
      assert.ok(ledger.body.data.every((t: any) => t.entries.some((e: any) => e.account === `connector_clearing:${second.body.short_id}`)));

      await h.call('DELETE', `/v1/connector_accounts/${second.body.id}`, { key: key() });
      const inactive = await refund(viaB.id, { amount: 1000 });
      assert.equal(inactive.status, 400);
      assert.equal(inactive.body.error.code, 'connector_account_inactive');
      await h.call('DELETE', `/v1/connector_accounts/${second.body.id}?hard=true`, { key: key() });
      const gone = await refund(viaB.id, { amount: 1000 });
      assert.equal(gone.status, 409);
      assert.equal(gone.body.error.code, 'originating_account_unavailable');
      const kept = await h.call('GET', `/v1/payments/${viaB.id}`, { key: key() });
      assert.equal(kept.body.connector_account_id, second.body.id);
      assert.equal(kept.body.connector_account_short_id, second.body.short_id);
    });

    it('answers every refund error code with its status and param', async () => {
      const base = await pay(h, { amount: 4000, currency: 'EUR', line_items: [{ id: 'li_a', name: 'A', quantity: 2, unit_amount: 1500 }, { id: 'li_b', name: 'B', quantity: 1, unit_amount: 1000 }] });
      const manual = await pay(h, { capture_method: 'manual' });
      const declined = await h.call('POST', '/v1/payments', { key: key(), body: { amount: 100, currency: 'USD', payment_method: 'pm_card_declined' } });
      const full = await pay(h, { amount: 100 });
      await refund(full.id);
      const cases: { name: string; id: string; body?: unknown; status: number; code: string; param?: string }[] = [
        { name: 'float amount', id: base.id, body: { amount: 10.5 }, status: 400, code: 'invalid_param', param: 'amount' },
        { name: 'string amount', id: base.id, body: { amount: '10' }, status: 400, code: 'invalid_param', param: 'amount' },
        { name: 'negative amount', id: base.id, body: { amount: -5 }, status: 400, code: 'invalid_param', param: 'amount' },
        { name: 'huge amount', id: base.id, body: { amount: 2 ** 60 }, status: 400, code: 'invalid_param', param: 'amount' },
        { name: 'empty reason', id: base.id, body: { reason: '' }, status: 400, code: 'invalid_param', param: 'reason' },
        { name: 'reason over 500 characters', id: base.id, body: { reason: 'x'.repeat(501) }, status: 400, code: 'invalid_param', param: 'reason' },
        { name: 'reason not text', id: base.id, body: { reason: 5 }, status: 400, code: 'invalid_param', param: 'reason' },
        { name: 'long description', id: base.id, body: { description: 'x'.repeat(81) }, status: 400, code: 'invalid_param', param: 'description' },
        { name: 'empty description', id: base.id, body: { description: '' }, status: 400, code: 'invalid_param', param: 'description' },
        { name: 'long reference', id: base.id, body: { reference: 'x'.repeat(41) }, status: 400, code: 'invalid_param', param: 'reference' },
        { name: 'metadata value', id: base.id, body: { metadata: { size: 1 } }, status: 400, code: 'invalid_param', param: 'metadata.size' },
        { name: 'metadata key too long', id: base.id, body: { metadata: { ['k'.repeat(41)]: 'v' } }, status: 400, code: 'invalid_param', param: 'metadata' },
        { name: 'unknown field', id: base.id, body: { amount_cents: 5 }, status: 400, code: 'invalid_param', param: 'amount_cents' },
        { name: 'unknown currency', id: base.id, body: { currency: 'ZZZ' }, status: 400, code: 'invalid_param', param: 'currency' },
        { name: 'currency mismatch', id: base.id, body: { currency: 'usd' }, status: 400, code: 'currency_mismatch', param: 'currency' },
        { name: 'unknown line item', id: base.id, body: { line_items: [{ id: 'li_zzz' }] }, status: 400, code: 'invalid_param', param: 'line_items[0].id' },
        { name: 'line item quantity 0', id: base.id, body: { line_items: [{ id: 'li_a', quantity: 0 }] }, status: 400, code: 'invalid_param', param: 'line_items[0].quantity' },
        { name: 'line item over quantity', id: base.id, body: { line_items: [{ id: 'li_b' }, { id: 'li_a', quantity: 3 }] }, status: 422, code: 'line_item_quantity_exceeded', param: 'line_items[1].quantity' },
        { name: 'amount above line items', id: base.id, body: { amount: 1001, line_items: [{ id: 'li_b' }] }, status: 400, code: 'invalid_param', param: 'amount' },
        { name: 'amount too large', id: base.id, body: { amount: 4001 }, status: 422, code: 'amount_too_large', param: 'amount' },
        { name: 'unknown payment', id: 'pay_nope', status: 404, code: 'payment_not_found' },
        { name: 'other mode', id: (await pay(h, {}, h.merchant.liveKey)).id, status: 404, code: 'payment_not_found' },
        { name: 'requires capture', id: manual.id, status: 409, code: 'not_refundable' },
        { name: 'failed payment', id: declined.body.error.payment_id, status: 409, code: 'not_refundable' },
        { name: 'fully refunded', id: full.id, status: 409, code: 'already_refunded' },
      ];
      for (const c of cases) {
        const r = await refund(c.id, c.body);
        assert.equal(r.status, c.status, `${c.name}: ${r.raw}`);
        assert.equal(r.body.error.code, c.code, c.name);
        if (c.param) assert.equal(r.body.error.param, c.param, c.name);
        assert.ok(r.body.error.request_id.startsWith('req_'), c.name);
        assert.ok(!/at .*\.js|SELECT|INSERT/.test(r.raw), `${c.name}: no stack or SQL in the body`);
      }
      const flat = await h.call('POST', '/v1/refunds', { key: key(), body: { amount: 5 } });
      assert.equal(flat.body.error.param, 'payment_id');
      const untouched = await h.call('GET', `/v1/payments/${base.id}`, { key: key() });
      assert.equal(untouched.body.amount_refunded, 0);
      assert.equal(untouched.body.amount_refundable, 4000);
    });

    it('kill switch: platform-wide and per merchant, checked right after authentication', async () => {
      const p = await pay(h, { amount: 2000 });
      const off = await h.admin('PUT', '/v1/admin/features/refunds', { enabled: false });
      assert.equal(off.status, 200);
      assert.equal(off.body.platform, false);
      const r = await refund(p.id, { amount: 'not even valid' });
      assert.equal(r.status, 403);
      assert.equal(r.body.error.code, 'feature_disabled');
      assert.equal(r.body.error.type, 'permission_error');
      assert.equal((await h.call('POST', '/v1/refunds', { key: key(), body: { payment_id: p.id } })).status, 403);
      await h.admin('PUT', '/v1/admin/features/refunds', { enabled: true });
      await h.admin('PUT', '/v1/admin/features/refunds', { enabled: false, merchant_id: h.merchant.id });
      assert.equal((await refund(p.id, { amount: 100 })).status, 403);
      const other = await h.newMerchant('Unaffected');
      const op = await pay(h, {}, other.testKey);
      assert.equal((await h.call('POST', `/v1/payments/${op.id}/refunds`, { key: other.testKey })).status, 201);
      const shown = await h.admin('GET', '/v1/admin/features/refunds');
      assert.equal(shown.body.merchants[h.merchant.id], false);
      await h.admin('PUT', '/v1/admin/features/refunds', { enabled: true, merchant_id: h.merchant.id });
      assert.equal((await refund(p.id, { amount: 100 })).status, 201);
      const unknown = await h.admin('PUT', '/v1/admin/features/refunds', { enabled: false, merchant_id: 'mer_nope' });
      assert.equal(unknown.body.error.code, 'merchant_not_found');
    });

    it('line items: refunds whole lines by default and tracks remaining quantities', async () => {
      const p = await pay(h, { amount: 3500, line_items: [{ id: 'li_1', name: 'Mug', quantity: 3, unit_amount: 1000 }, { id: 'li_2', name: 'Card', quantity: 1, unit_amount: 500 }] });
      const one = await refund(p.id, { line_items: [{ id: 'li_1', quantity: 1 }] });
      assert.equal(one.status, 201);
      assert.equal(one.body.amount, 1000);
      assert.deepEqual(one.body.line_items, [{ id: 'li_1', quantity: 1, amount: 1000 }]);
      const rest = await refund(p.id, { line_items: [{ id: 'li_1' }], amount: 1500 });
      assert.equal(rest.body.amount, 1500);
      assert.deepEqual(rest.body.line_items, [{ id: 'li_1', quantity: 2, amount: 2000 }]);
      const exceeded = await refund(p.id, { line_items: [{ id: 'li_1', quantity: 1 }] });
      assert.equal(exceeded.status, 422);
      assert.equal(exceeded.body.error.code, 'line_item_quantity_exceeded');
      const got = await h.call('GET', `/v1/payments/${p.id}`, { key: key() });
      assert.equal(got.body.line_items.find((l: any) => l.id === 'li_1').quantity_refunded, 3);
    });

    it('stores order_id (defaulting to the payment\'s), reason, description, reference and metadata', async () => {
      const p = await pay(h, { order_id: 'ord_77' });
      const r = await refund(p.id, { amount: 100, reason: 'duplicate', description: 'Sorry!', reference: 'rma-1', metadata: { ticket: 'T-9' } });
      assert.equal(r.body.order_id, 'ord_77');
      assert.equal(r.body.reason, 'duplicate');
      assert.equal(r.body.description, 'Sorry!');
      assert.equal(r.body.reference, 'rma-1');
      assert.deepEqual(r.body.metadata, { ticket: 'T-9' });
      const own = await refund(p.id, { amount: 100, order_id: 'ord_override' });
      assert.equal(own.body.order_id, 'ord_override');
    });

    it('keeps a free-text reason as given and sends it to the PSP as "other" with its text', async () => {
      const p = await pay(h);
      const text = 'partial return — 2 of 3 items, customer kept the box';
      const r = await refund(p.id, { amount: 100, reason: text });
      assert.equal(r.status, 201);
      assert.equal(r.body.reason, text);
      assert.equal(control.lastRequest?.reason, 'other');
      assert.equal(control.lastRequest?.reasonText, text);
      const read = await h.call('GET', `/v1/refunds/${r.body.id}`, { key: key() });
      assert.equal(read.body.reason, text);
      const long = await refund(p.id, { amount: 100, reason: 'é'.repeat(500) });
      assert.equal(long.status, 201);
      assert.equal(long.body.reason, 'é'.repeat(500));
    });

    it('sends a well-known reason spelling to the PSP as its canonical code and keeps the spelling', async () => {
      const p = await pay(h);
      for (const [given, code] of [['customer_request', 'customer_request'], ['requested_by_customer', 'customer_request'], ['fraud', 'fraudulent'], ['duplicate', 'duplicate']]) {
        const r = await refund(p.id, { amount: 100, reason: given });
        assert.equal(r.body.reason, given);
        assert.equal(control.lastRequest?.reason, code);
        assert.equal(control.lastRequest?.reasonText, null);
      }
    });

    it('a PSP rejection answers 201 failed, releases the hold and leaves the payment alone', async () => {
      const p = await pay(h, { amount: 2000, payment_method: 'pm_card_refund_fails' });
      const r = await refund(p.id, { amount: 500 });
      assert.equal(r.status, 201);
      assert.equal(r.body.status, 'failed');
      assert.equal(r.body.failure_code, 'refund_rejected');
      assert.ok(r.body.failure_message);
      assert.equal(r.body.payment.status, 'succeeded');
      assert.equal(r.body.payment.amount_refundable, 2000);
      const events = await h.db.query<{ type: string }>('SELECT type FROM events WHERE object_id IN ($1, $2) ORDER BY id', [r.body.id, p.id]);
      assert.ok(events.rows.some((e) => e.type === 'refund.failed'));
      assert.ok(events.rows.some((e) => e.type === 'payment.refund_failed'));
      await verifyLedger();
    });

    it('a PSP pending refund answers 201 pending, holds its amount, and the sync worker finishes it', async () => {
      await h.call('POST', `/v1/connector_accounts/${h.merchant.testAccount.id}/make_default`, { key: key() });
      const p = await pay(h, { amount: 2000, payment_method: 'pm_card_refund_pending' });
      const r = await refund(p.id, { amount: 800 });
      assert.equal(r.status, 201);
      assert.equal(r.body.status, 'pending');
      assert.equal(r.body.payment.amount_refundable, 1200, 'the pending amount is held');
      const over = await refund(p.id, { amount: 1201 });
      assert.equal(over.body.error.code, 'amount_too_large');
      assert.match(over.body.error.message, /refundable balance of 1200/);
      // the rest held too: a full refund finds nothing left, and says why
      const rest = await refund(p.id, { amount: 1200 });
      assert.equal(rest.body.status, 'pending');
      const nothing = await refund(p.id, {});
      assert.equal(nothing.status, 422, nothing.raw);
      assert.equal(nothing.body.error.code, 'amount_too_large');
      assert.equal(nothing.body.error.param, 'amount');
      assert.match(nothing.body.error.message, /pending refunds hold the remaining 2000/);
      psp.settlePending();
      const log = createLogger('silent');
      for (let i = 0; i < 50; i++) {
        await syncPendingRefunds(h.db, h.rt.services.refunds, log, { syncBaseMs: 10, syncMaxMs: 50 });
        const now = await h.call('GET', `/v1/refunds/${r.body.id}`, { key: key() });
        if (now.body.status !== 'pending') break;
        await new Promise((res) => setTimeout(res, 20));
      }
      const done = await h.call('GET', `/v1/refunds/${r.body.id}`, { key: key() });
      assert.equal(done.body.status, 'succeeded');
      for (let i = 0; i < 50 && (await h.call('GET', `/v1/refunds/${rest.body.id}`, { key: key() })).body.status === 'pending'; i++) {
        await syncPendingRefunds(h.db, h.rt.services.refunds, log, { syncBaseMs: 10, syncMaxMs: 50 });
        await new Promise((res) => setTimeout(res, 20));
      }
      const after = await h.call('GET', `/v1/refunds/${r.body.id}`, { key: key() });
      assert.equal(after.body.payment.amount_refunded, 2000);
      assert.equal(after.body.payment.status, 'refunded');
      await verifyLedger();
    });

    it('idempotency: replays byte for byte, refuses reuse with another request, accepts both header names', async () => {
      const p = await pay(h, { amount: 3000 });
      const first = await refund(p.id, { amount: 1000 }, { idempotencyKey: `k-${p.id}` });
      const again = await refund(p.id, { amount: 1000 }, { idempotencyKey: `k-${p.id}` });
      assert.equal(again.status, first.status);
      assert.equal(again.raw, first.raw);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.equal(first.headers['idempotent-replayed'], undefined);
      const reordered = await h.call('POST', `/v1/payments/${p.id}/refunds`, {
        key: key(), idempotencyKey: `k-${p.id}`, payload: '{ "amount" : 1000 }', headers: { 'content-type': 'application/json' },
      });
      assert.equal(reordered.raw, first.raw, 'semantically equal JSON replays');
      const reused = await refund(p.id, { amount: 999 }, { idempotencyKey: `k-${p.id}` });
      assert.equal(reused.status, 422);
      assert.equal(reused.body.error.code, 'idempotency_key_reused');
      const otherPath = await h.call('POST', '/v1/refunds', { key: key(), idempotencyKey: `k-${p.id}`, body: { payment_id: p.id, amount: 1000 } });
      assert.equal(otherPath.body.error.code, 'idempotency_key_reused');
      const alias = await refund(p.id, { amount: 500 }, { headers: { 'x-idempotency-key': `x-${p.id}` } });
      const aliasAgain = await refund(p.id, { amount: 500 }, { headers: { 'x-idempotency-key': `x-${p.id}` } });
      assert.equal(aliasAgain.raw, alias.raw);
      const refunds = await h.call('GET', `/v1/payments/${p.id}/refunds`, { key: key() });
      assert.equal(refunds.body.data.length, 2, 'replays created nothing');
      const badKey = await refund(p.id, { amount: 1 }, { idempotencyKey: 'x'.repeat(256) });
      assert.equal(badKey.body.error.param, 'Idempotency-Key');
      // a key is scoped to merchant + mode: the same key in live mode is a different request
      const live = await pay(h, {}, h.merchant.liveKey);
      const liveR = await h.call('POST', `/v1/payments/${live.id}/refunds`, { key: h.merchant.liveKey, idempotencyKey: `k-${p.id}`, body: { amount: 1000 } });
      assert.equal(liveR.status, 201);
    });

    it('idempotency: a keyed refund claims its key in its first transaction and stores its answer in its last', async () => {
      const p = await pay(h, { amount: 3000 });
      const observe = async <T>(fn: () => Promise<T>) => {
        Object.assign(counting.seen, { on: true, transactions: 0, autocommit: [] });
        try {
          return { out: await fn(), transactions: counting.seen.transactions, autocommit: counting.seen.autocommit };
        } finally {
          counting.seen.on = false;
        }
      };
      const first = await observe(() => refund(p.id, { amount: 1000 }, { idempotencyKey: `tx-${p.id}` }));
      assert.equal(first.out.status, 201, first.out.raw);
      assert.equal(first.out.body.status, 'succeeded');
      assert.equal(first.transactions, 2, 'two commits: the hold with the claim, the outcome with the answer');
      assert.deepEqual(first.autocommit, [], 'no statement of its own for the key');
      const stored = await h.db.query<{ state: string; response_status: number; response_body: string; locked_until: Date | null }>(
        'SELECT state, response_status, response_body, locked_until FROM idempotency_keys WHERE key = $1', [`tx-${p.id}`]);
      assert.equal(stored.rows.length, 1);
      assert.equal(stored.rows[0].state, 'done');
      assert.equal(stored.rows[0].response_status, 201);
      assert.equal(stored.rows[0].locked_until, null);
      assert.equal(stored.rows[0].response_body, first.out.raw, 'the stored answer is the body sent');

      // what any write of a replay would change: the payment row's version, and the rows it would add
      const footprint = async () => (await h.db.query(
        `SELECT (SELECT xmin::text FROM payments WHERE id = $1) AS payment_version,
                (SELECT count(*) FROM refunds)::int AS refunds, (SELECT count(*) FROM events)::int AS events,
                (SELECT count(*) FROM idempotency_keys)::int AS keys, (SELECT count(*) FROM ledger_transactions)::int AS bookings`, [p.id])).rows[0];
      const before = await footprint();
      const replay = await observe(() => refund(p.id, { amount: 1000 }, { idempotencyKey: `tx-${p.id}` }));
      assert.equal(replay.out.raw, first.out.raw);
      assert.equal(replay.out.headers['idempotent-replayed'], 'true');
      assert.equal(replay.transactions, 1, 'a replay runs phase 1 once: its claim finds the key taken');
      assert.deepEqual(await footprint(), before, 'a replay writes nothing');

      // a failed refund is answered in its last transaction too
      const f = await pay(h, { amount: 2000, payment_method: 'pm_card_refund_fails' });
      const failed = await observe(() => refund(f.id, { amount: 500 }, { idempotencyKey: `txf-${f.id}` }));
      assert.equal(failed.out.body.status, 'failed');
      assert.equal(failed.transactions, 2);
      assert.deepEqual(failed.autocommit, []);
      assert.equal((await refund(f.id, { amount: 500 }, { idempotencyKey: `txf-${f.id}` })).raw, failed.out.raw);

      // a refund without a key commits twice as well
      const plain = await observe(() => refund(p.id, { amount: 100 }));
      assert.equal(plain.transactions, 2);
      assert.deepEqual(plain.autocommit, []);
      const list = await h.call('GET', `/v1/payments/${p.id}/refunds`, { key: key() });
      assert.equal(list.body.data.length, 2);
      await verifyLedger();
    });

    it('idempotency: a keyed refund the PSP leaves pending is answered when sent, and replays as pending', async () => {
      const p = await pay(h, { amount: 2000, payment_method: 'pm_card_refund_pending' });
      const r = await refund(p.id, { amount: 300 }, { idempotencyKey: `txp-${p.id}` });
      assert.equal(r.status, 201, r.raw);
      assert.equal(r.body.status, 'pending');
      const again = await refund(p.id, { amount: 300 }, { idempotencyKey: `txp-${p.id}` });
      assert.equal(again.raw, r.raw, 'the pending answer is replayed');
      assert.equal(again.headers['idempotent-replayed'], 'true');
    });

    it('idempotency: a key taken by a refund on another payment answers 422 before anything is written', async () => {
      const p = await pay(h, { amount: 3000 });
      const q = await pay(h, { amount: 3000 });
      const first = await refund(p.id, { amount: 100 }, { idempotencyKey: `tk-${p.id}` });
      assert.equal(first.status, 201);
      const other = await refund(q.id, { amount: 100 }, { idempotencyKey: `tk-${p.id}` });
      assert.equal(other.status, 422);
      assert.equal(other.body.error.code, 'idempotency_key_reused');
      const qAfter = await h.call('GET', `/v1/payments/${q.id}`, { key: key() });
      assert.equal(qAfter.body.amount_refunded, 0);
      assert.equal(qAfter.body.amount_refundable, 3000, 'nothing held on the other payment');
      const events = await h.db.query('SELECT 1 FROM events WHERE type = $1 AND body LIKE $2', ['refund.created', `%${q.id}%`]);
      assert.equal(events.rows.length, 0, 'no refund.created event for the refused attempt');
    });

    it('idempotency: business errors are replayed, validation errors are not stored', async () => {
      const p = await pay(h, { amount: 1000 });
      const tooMuch = await refund(p.id, { amount: 5000 }, { idempotencyKey: `e-${p.id}` });
      assert.equal(tooMuch.status, 422);
      const replay = await refund(p.id, { amount: 5000 }, { idempotencyKey: `e-${p.id}` });
      assert.equal(replay.raw, tooMuch.raw);
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      const invalid = await refund(p.id, { amount: 'x' }, { idempotencyKey: `v-${p.id}` });
      assert.equal(invalid.status, 400);
      const fixed = await refund(p.id, { amount: 100 }, { idempotencyKey: `v-${p.id}` });
      assert.equal(fixed.status, 201, 'a 400 is not stored, so the corrected request runs under the same key');
      // a 400 found by the route itself (no payment named), with a key the refund would claim
      const unnamed = await h.call('POST', '/v1/refunds', { key: key(), idempotencyKey: `u-${p.id}`, body: { amount: 100 } });
      assert.equal(unnamed.status, 400, unnamed.raw);
      assert.equal(unnamed.body.error.code, 'invalid_param');
      assert.equal(unnamed.body.error.param, 'payment_id');
      const named = await h.call('POST', '/v1/refunds', { key: key(), idempotencyKey: `u-${p.id}`, body: { amount: 100, payment_id: p.id } });
      assert.equal(named.status, 201, 'the key was left free');
    });

    it('idempotency: 409 while in flight; after the owner died the retry resumes without a second PSP refund', async () => {
      const p = await pay(h, { amount: 3000 });
      const stats0 = psp.stats();
      let release!: () => void;
      // wait for the first request to reach the PSP call, however long a loaded machine takes
      const reachedPsp = new Promise<void>((reached) => {
        control.beforeRefund = () => new Promise<void>((res) => { release = res; reached(); });
      });
      const hung = refund(p.id, { amount: 1200 }, { idempotencyKey: `hang-${p.id}` });
      await reachedPsp;
      control.beforeRefund = undefined;
      const busy = await refund(p.id, { amount: 1200 }, { idempotencyKey: `hang-${p.id}` });
      assert.equal(busy.status, 409);
      assert.equal(busy.body.error.code, 'idempotency_key_in_use');
      await new Promise((res) => setTimeout(res, 2200)); // the lease (2 s) runs out: the owner is presumed dead
      const resumed = await refund(p.id, { amount: 1200 }, { idempotencyKey: `hang-${p.id}` });
      assert.equal(resumed.status, 201);
      assert.equal(resumed.body.status, 'succeeded');
      release();
      const late = await hung;
      assert.equal(late.body.id, resumed.body.id, 'the original request finished the same refund');
      const stats1 = psp.stats();
      assert.equal(stats1.refunds_created - stats0.refunds_created, 1);
      assert.equal(stats1.duplicate_applications, 0);
      const list = await h.call('GET', `/v1/payments/${p.id}/refunds`, { key: key() });
      assert.equal(list.body.data.length, 1);
      await verifyLedger();
    });

    it('idempotency: a crash between the PSP call and the final commit resumes on retry; the PSP refunds once', async () => {
      const p = await pay(h, { amount: 3000 });
      const stats0 = psp.stats();
      control.afterRefund = async () => {
        control.afterRefund = undefined;
        throw new Error('simulated crash after the PSP applied the refund');
      };
      const crashed = await refund(p.id, { amount: 700 }, { idempotencyKey: `crash-${p.id}` });
      assert.equal(crashed.status, 500);
      assert.equal(crashed.body.error.code, 'internal_error');
      assert.ok(!crashed.raw.includes('simulated crash'), 'no internals in the body');
      const mid = await h.call('GET', `/v1/payments/${p.id}`, { key: key() });
      assert.equal(mid.body.amount_refundable, 2300, 'the refund is recorded and its amount held');
      const retry = await refund(p.id, { amount: 700 }, { idempotencyKey: `crash-${p.id}` });
      assert.equal(retry.status, 201);
      assert.equal(retry.body.status, 'succeeded');
      assert.equal(retry.body.payment.amount_refunded, 700);
      const stats1 = psp.stats();
      assert.equal(stats1.refunds_created - stats0.refunds_created, 1, 'the sandbox records exactly one refund');
      assert.equal(stats1.duplicate_applications, 0);
      assert.equal(psp.totals(p.connector_ref).amount_refunded, 700);
      await verifyLedger();
    });

    it('lists and retrieves refunds with filters; other merchants and modes see nothing', async () => {
      const p = await pay(h, { amount: 3000 });
      const a = await refund(p.id, { amount: 1000 });
      const b = await refund(p.id, { amount: 1000 });
      const list = await h.call('GET', `/v1/refunds?payment_id=${p.id}`, { key: key() });
      assert.deepEqual(list.body.data.map((r: any) => r.id), [b.body.id, a.body.id]);
      const page = await h.call('GET', `/v1/payments/${p.id}/refunds?limit=1`, { key: key() });
      assert.equal(page.body.has_more, true);
      assert.equal((await h.call('GET', `/v1/refunds?status=failed&payment_id=${p.id}`, { key: key() })).body.data.length, 0);
      const other = await h.newMerchant('Snoop');
      for (const k of [other.testKey, h.merchant.liveKey]) {
        assert.equal((await h.call('GET', `/v1/refunds/${a.body.id}`, { key: k })).body.error.code, 'refund_not_found');
        assert.equal((await h.call('GET', `/v1/payments/${p.id}/refunds`, { key: k })).status, 404);
        assert.equal((await h.call('POST', `/v1/payments/${p.id}/refunds`, { key: k })).status, 404);
        assert.equal((await h.call('GET', `/v1/refunds?payment_id=${p.id}`, { key: k })).body.data.length, 0);
      }
    });

    it('writes refund.created, refund.succeeded and payment.* events in the refund\'s transaction', async () => {
      const p = await pay(h, { amount: 2000 });
      const r1 = await refund(p.id, { amount: 500 });
      const r2 = await refund(p.id);
      const rows = await h.db.query<{ type: string; body: string; object_id: string }>(
        'SELECT type, body, object_id FROM events WHERE object_id = ANY ($1::text[]) ORDER BY created_at, id', [[p.id, r1.body.id, r2.body.id]]);
      const types = rows.rows.map((e) => e.type);
      for (const t of ['payment.succeeded', 'refund.created', 'refund.succeeded', 'payment.partially_refunded', 'payment.refunded']) {
        assert.ok(types.includes(t), `missing ${t} in ${types}`);
      }
      const ev = JSON.parse(rows.rows.find((e) => e.type === 'payment.refunded')!.body);
      assert.equal(ev.object, 'event');
      assert.equal(ev.data.object.status, 'refunded');
      assert.equal(ev.test_mode, true);
    });
  });
}
