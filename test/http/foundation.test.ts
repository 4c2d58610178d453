import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { BACKENDS, harnessFor, pay, type Harness } from '../helpers/harness.js';

for (const backend of BACKENDS) {
  describe(`foundation on ${backend}`, () => {
    let h: Harness;
    const it = harnessFor(backend, (opened) => (h = opened));

    it('answers health, readiness, metrics and the OpenAPI document', async () => {
      assert.equal((await h.call('GET', '/healthz')).status, 200);
      const ready = await h.call('GET', '/readyz');
      assert.equal(ready.status, 200);
      assert.equal(ready.body.database, backend);
      const metrics = await h.call('GET', '/metrics');
      assert.equal(metrics.status, 200);
      assert.match(metrics.raw, /settle_http_requests_total/);
      assert.match(metrics.raw, /settle_http_request_duration_seconds_bucket/);
      assert.match(metrics.raw, /^settle_refund_db_transactions_total \d+$/m);
      assert.match(metrics.raw, /^settle_refund_db_transaction_members_total \d+$/m);
      assert.match(metrics.raw, /^settle_refund_db_groups_rolled_back_total \d+$/m);
      const doc = await h.call('GET', '/openapi.json');
      assert.equal(doc.body.openapi, '3.1.0');
      assert.ok(doc.body.paths['/v1/payments/{id}/refunds'].post, 'refund route documented');
      assert.ok(doc.body.paths['/v1/refunds'].post.requestBody);
      const docs = await h.app.inject({ method: 'GET', url: '/docs/' });
      assert.equal(docs.statusCode, 200);
      assert.match(docs.body, /<script src="\/docs\/redoc\.standalone\.js">/);
      assert.match(String(docs.headers['content-security-policy']), /default-src 'none'/);
    });

    it('puts a Request-Id on every response and repeats it in error bodies', async () => {
      const ok = await h.call('GET', '/healthz');
      assert.match(String(ok.headers['request-id']), /^req_/);
      const missing = await h.call('GET', '/v1/nope', { key: h.merchant.testKey });
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.code, 'not_found');
      assert.equal(missing.body.error.request_id, missing.headers['request-id']);
    });

    it('refuses missing, malformed, unknown and revoked keys with 401', async () => {
      for (const auth of [undefined, 'Bearer', 'Basic abc', 'Bearer sk_test_short', `Bearer sk_test_${'x'.repeat(32)}`]) {
        const r = await h.call('GET', '/v1/payments', { headers: auth ? { authorization: auth } : {} });
        assert.equal(r.status, 401, `auth header ${auth}`);
        assert.equal(r.body.error.code, 'invalid_api_key');
        assert.equal(r.body.error.type, 'authentication_error');
      }
      const m = await h.newMerchant('Revocable');
      assert.equal((await h.call('GET', '/v1/payments', { key: m.testKey })).status, 200);
      const prefix = m.testKey.slice(0, 'sk_test_'.length + 8);
      const revoked = await h.admin('DELETE', `/v1/admin/api_keys/${prefix}`);
      assert.equal(revoked.status, 200);
      assert.equal(revoked.body.revoked, true);
      await new Promise((r) => setTimeout(r, 1100)); // other processes' caches expire within 1 s
      assert.equal((await h.call('GET', '/v1/payments', { key: m.testKey })).status, 401);
    });

    it('keeps admin routes to the admin key and merchant routes to merchant keys', async () => {
      const r = await h.call('POST', '/v1/admin/merchants', { key: h.merchant.testKey, body: { name: 'x' } });
      assert.equal(r.status, 401);
      const newKey = await h.admin('POST', `/v1/admin/merchants/${h.merchant.id}/api_keys`, { mode: 'live' });
      assert.equal(newKey.status, 201);
      assert.match(newKey.body.secret, /^sk_live_[A-Za-z0-9]{32}$/);
      assert.equal((await h.call('GET', '/v1/payments', { key: newKey.body.secret })).status, 200);
      const unknown = await h.admin('POST', '/v1/admin/merchants/mer_nope/api_keys', { mode: 'test' });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error.code, 'merchant_not_found');
      const badMode = await h.admin('POST', `/v1/admin/merchants/${h.merchant.id}/api_keys`, { mode: 'prod' });
      assert.equal(badMode.status, 400);
      assert.equal(badMode.body.error.param, 'mode');
    });

    it('stores keys hashed, never in clear', async () => {
      const rows = await h.db.query<{ prefix: string; key_hash: Uint8Array }>('SELECT prefix, key_hash FROM api_keys');
      for (const row of rows.rows) {
        assert.equal(Buffer.from(row.key_hash).length, 32);
        assert.ok(!Buffer.from(row.key_hash).toString('utf8').includes('sk_'));
      }
      const dump = JSON.stringify((await h.db.query('SELECT * FROM api_keys')).rows);
      assert.ok(!dump.includes(h.merchant.testKey));
    });

    it('manages connector accounts: default, make_default, soft and hard delete, either id form', async () => {
      const key = h.merchant.testKey;
      const first = h.merchant.testAccount;
      assert.equal(first.is_default, true);
      assert.match(first.short_id, /^ca_[0-9a-z]{10}$/);
      assert.match(first.webhook_secret, /^whsec_/);
      assert.equal(first.credentials, undefined);
      const second = await h.call('POST', '/v1/connector_accounts', {
        key, body: { connector: 'sandbox', name: 'second', credentials: { api_key: 'psp_secret_123' } },
      });
      assert.equal(second.status, 201);
      assert.equal(second.body.is_default, false);
      assert.equal(JSON.stringify(second.body).includes('psp_secret_123'), false);
      const sealed = await h.db.query<{ credentials_sealed: string }>('SELECT credentials_sealed FROM connector_accounts WHERE id = $1', [second.body.id]);
      assert.ok(sealed.rows[0].credentials_sealed.startsWith('v1.'));
      assert.ok(!sealed.rows[0].credentials_sealed.includes('psp_secret_123'));

      const byShort = await h.call('GET', `/v1/connector_accounts/${second.body.short_id}`, { key });
      assert.equal(byShort.body.id, second.body.id);
      const made = await h.call('POST', `/v1/connector_accounts/${second.body.short_id}/make_default`, { key });
      assert.equal(made.status, 200);
      assert.equal(made.body.is_default, true);
      const list = await h.call('GET', '/v1/connector_accounts?limit=1', { key });
      assert.equal(list.body.object, 'list');
      assert.equal(list.body.data.length, 1);
      assert.equal(list.body.has_more, true);
      const page2 = await h.call('GET', `/v1/connector_accounts?limit=1&cursor=${list.body.next_cursor}`, { key });
      assert.notEqual(page2.body.data[0].id, list.body.data[0].id);

      const soft = await h.call('DELETE', `/v1/connector_accounts/${second.body.id}`, { key });
      assert.equal(soft.status, 200);
      assert.equal(soft.body.status, 'inactive');
      assert.ok(soft.body.deleted_at);
      const noDefault = await h.call('POST', '/v1/payments', { key, body: { amount: 100, currency: 'USD', payment_method: 'pm_card_visa' } });
      assert.equal(noDefault.status, 409);
      assert.equal(noDefault.body.error.code, 'no_default_connector_account');
      const viaInactive = await h.call('POST', '/v1/payments', {
        key, body: { amount: 100, currency: 'USD', payment_method: 'pm_card_visa', connector_account: second.body.short_id },
      });
      assert.equal(viaInactive.status, 400);
      assert.equal(viaInactive.body.error.code, 'connector_account_inactive');
      await h.call('POST', `/v1/connector_accounts/${first.id}/make_default`, { key });
      const hard = await h.call('DELETE', `/v1/connector_accounts/${second.body.id}?hard=true`, { key });
      assert.deepEqual(hard.body, { id: second.body.id, short_id: second.body.short_id, object: 'connector_account', deleted: true });
      assert.equal((await h.call('GET', `/v1/connector_accounts/${second.body.id}`, { key })).status, 404);
      const bad = await h.call('POST', '/v1/connector_accounts', { key, body: { connector: 'paypal' } });
      assert.equal(bad.body.error.param, 'connector');
    });

    it('takes, captures (fully and partially) and cancels payments, booking captures in the ledger', async () => {
      const key = h.merchant.testKey;
      const auto = await pay(h, { amount: 5000, currency: 'inr', metadata: { order: '42' } });
      assert.equal(auto.status, 'succeeded');
      assert.equal(auto.currency, 'INR');
      assert.equal(auto.amount_captured, 5000);
      assert.equal(auto.amount_refundable, 5000);
      assert.equal(auto.connector_account_id, h.merchant.testAccount.id);
      assert.deepEqual(auto.transactions.map((t: any) => t.type), ['authorization', 'capture']);

      const manual = await pay(h, { amount: 8000, capture_method: 'manual' });
      assert.equal(manual.status, 'requires_capture');
      assert.equal(manual.amount_capturable, 8000);
      const over = await h.call('POST', `/v1/payments/${manual.id}/capture`, { key, body: { amount: 9000 } });
      assert.equal(over.status, 422);
      assert.equal(over.body.error.code, 'amount_too_large');
      const cap = await h.call('POST', `/v1/payments/${manual.id}/capture`, { key, body: { amount: 6000 } });
      assert.equal(cap.status, 200);
      assert.equal(cap.body.status, 'succeeded');
      assert.equal(cap.body.amount_captured, 6000);
      assert.equal(cap.body.amount_capturable, 0);
      const again = await h.call('POST', `/v1/payments/${manual.id}/capture`, { key });
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, 'not_capturable');

      const toCancel = await pay(h, { capture_method: 'manual' });
      const canceled = await h.call('POST', `/v1/payments/${toCancel.id}/cancel`, { key });
      assert.equal(canceled.body.status, 'canceled');
      assert.equal((await h.call('POST', `/v1/payments/${toCancel.id}/cancel`, { key })).body.error.code, 'not_cancelable');
      assert.equal((await h.call('POST', `/v1/payments/${auto.id}/cancel`, { key })).status, 409);

      const ledger = await h.call('GET', `/v1/ledger/transactions?payment_id=${manual.id}`, { key });
      assert.equal(ledger.body.data.length, 1);
      assert.equal(ledger.body.data[0].type, 'capture');
      const entries = ledger.body.data[0].entries;
      assert.deepEqual(entries.map((e: any) => [e.direction, e.amount]).sort(), [['credit', 6000], ['debit', 6000]]);
      const accounts = await h.call('GET', '/v1/ledger/accounts', { key });
      const balance = accounts.body.data.find((a: any) => a.account === 'merchant_balance' && a.currency === 'INR');
      assert.equal(balance.balance, 5000);
      const verify = await h.rt.services.ledger.verify();
      assert.deepEqual(verify.violations, []);
    });

    it('stores a declined payment and answers 402 with its id', async () => {
      const r = await h.call('POST', '/v1/payments', {
        key: h.merchant.testKey, body: { amount: 1000, currency: 'USD', payment_method: 'pm_card_declined' },
      });
      assert.equal(r.status, 402);
      assert.equal(r.body.error.code, 'card_declined');
      const stored = await h.call('GET', `/v1/payments/${r.body.error.payment_id}`, { key: h.merchant.testKey });
      assert.equal(stored.body.status, 'failed');
      assert.equal(stored.body.amount_captured, 0);
    });

    it('handles line items: generated ids, and the sum must equal the amount', async () => {
      const p = await pay(h, { amount: 2500, line_items: [{ name: 'Tee', quantity: 2, unit_amount: 1000 }, { id: 'li_sock', name: 'Sock', quantity: 1, unit_amount: 500 }] });
      assert.match(p.line_items[0].id, /^li_/);
      assert.equal(p.line_items[1].id, 'li_sock');
      assert.equal(p.line_items[0].amount, 2000);
      assert.equal(p.line_items[0].quantity_refunded, 0);
      const bad = await h.call('POST', '/v1/payments', {
        key: h.merchant.testKey,
        body: { amount: 999, currency: 'USD', payment_method: 'pm_card_visa', line_items: [{ name: 'Tee', quantity: 1, unit_amount: 1000 }] },
      });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.param, 'line_items');
      const badQty = await h.call('POST', '/v1/payments', {
        key: h.merchant.testKey,
        body: { amount: 1000, currency: 'USD', payment_method: 'pm_card_visa', line_items: [{ name: 'Tee', quantity: 0, unit_amount: 1000 }] },
      });
      assert.equal(badQty.body.error.param, 'line_items[0].quantity');
    });

    it('lists payments newest first with cursors and filters', async () => {
      const key = (await h.newMerchant('Lister')).testKey;
      const made = [];
      for (let i = 0; i < 5; i++) made.push(await pay(h, { order_id: i % 2 ? 'odd' : 'even', customer_id: 'cus_1' }, key));
      const page1 = await h.call('GET', '/v1/payments?limit=2', { key });
      assert.deepEqual(page1.body.data.map((p: any) => p.id), [made[4].id, made[3].id]);
      const page2 = await h.call('GET', `/v1/payments?limit=2&cursor=${page1.body.next_cursor}`, { key });
      assert.deepEqual(page2.body.data.map((p: any) => p.id), [made[2].id, made[1].id]);
      const page3 = await h.call('GET', `/v1/payments?limit=2&cursor=${page2.body.next_cursor}`, { key });
      assert.equal(page3.body.has_more, false);
      assert.equal(page3.body.next_cursor, null);
      const odd = await h.call('GET', '/v1/payments?order_id=odd', { key });
      assert.equal(odd.body.data.length, 2);
      assert.equal((await h.call('GET', '/v1/payments?status=refunded', { key })).body.data.length, 0);
      const bad = await h.call('GET', '/v1/payments?limit=101', { key });
      assert.equal(bad.body.error.param, 'limit');
      const badCursor = await h.call('GET', '/v1/payments?cursor=zzz', { key });
      assert.equal(badCursor.body.error.param, 'cursor');
    });

    it('pages through rows created in the same millisecond without skipping or repeating any', async () => {
      const m = await h.newMerchant('Burst');
      // one transaction: every row gets the same now()
      await h.db.transaction(async (tx) => {
        for (let i = 0; i < 23; i++) {
          await tx.query(
            `INSERT INTO connector_accounts (id, short_id, merchant_id, test_mode, connector, status, webhook_secret_sealed)
             VALUES (gen_random_uuid(), $1, $2, true, 'sandbox', 'inactive', 'x')`,
            [`ca_burst${String(i).padStart(5, '0')}`.slice(0, 13), m.id],
          );
        }
      });
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: any = await h.call('GET', `/v1/connector_accounts?limit=7${cursor ? `&cursor=${cursor}` : ''}`, { key: m.testKey });
        seen.push(...page.body.data.map((a: any) => a.id));
        cursor = page.body.next_cursor;
      } while (cursor);
      assert.equal(seen.length, 24);
      assert.equal(new Set(seen).size, 24);
    });

    it('isolates merchants and modes: other objects are 404', async () => {
      const p = await pay(h);
      const other = await h.newMerchant('Other');
      for (const key of [h.merchant.liveKey, other.testKey]) {
        assert.equal((await h.call('GET', `/v1/payments/${p.id}`, { key })).body.error.code, 'payment_not_found');
        assert.equal((await h.call('POST', `/v1/payments/${p.id}/capture`, { key })).status, 404);
        assert.equal((await h.call('GET', `/v1/connector_accounts/${h.merchant.testAccount.id}`, { key })).status, 404);
        assert.ok(!(await h.call('GET', '/v1/payments?limit=100', { key })).body.data.some((x: any) => x.id === p.id));
      }
      const live = await pay(h, {}, h.merchant.liveKey);
      assert.equal(live.test_mode, false);
      assert.equal(p.test_mode, true);
    });

    it('rejects bad input with invalid_param naming the parameter, and writes nothing', async () => {
      const key = h.merchant.testKey;
      const before = (await h.db.query<{ n: number }>('SELECT count(*)::int AS n FROM payments')).rows[0].n;
      const cases: [unknown, string][] = [
        [{ currency: 'USD', payment_method: 'pm_card_visa' }, 'amount'],
        [{ amount: 10.5, currency: 'USD', payment_method: 'pm_card_visa' }, 'amount'],
        [{ amount: '100', currency: 'USD', payment_method: 'pm_card_visa' }, 'amount'],
        [{ amount: -1, currency: 'USD', payment_method: 'pm_card_visa' }, 'amount'],
        [{ amount: 1_000_000_000_000, currency: 'USD', payment_method: 'pm_card_visa' }, 'amount'],
        [{ amount: 100, currency: 'XYZ', payment_method: 'pm_card_visa' }, 'currency'],
        [{ amount: 100, currency: 'USD', payment_method: 'pm_card_bogus' }, 'payment_method'],
        [{ amount: 100, currency: 'USD', payment_method: 'pm_card_visa', surprise: 1 }, 'surprise'],
        [{ amount: 100, currency: 'USD', payment_method: 'pm_card_visa', metadata: { k: 5 } }, 'metadata.k'],
        [{ amount: 100, currency: 'USD', payment_method: 'pm_card_visa', metadata: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, 'v'])) }, 'metadata'],
        [{ amount: 100, currency: 'USD', payment_method: 'pm_card_visa', capture_method: 'later' }, 'capture_method'],
        [[1, 2], 'body'],
      ];
      for (const [body, param] of cases) {
        const r = await h.call('POST', '/v1/payments', { key, body });
        assert.equal(r.status, 400, JSON.stringify(body));
        assert.equal(r.body.error.code, 'invalid_param');
        assert.equal(r.body.error.param, param, JSON.stringify(body));
        assert.equal(r.body.error.type, 'invalid_request_error');
      }
      const badJson = await h.call('POST', '/v1/payments', { key, payload: '{"amount": ', headers: { 'content-type': 'application/json' } });
      assert.equal(badJson.status, 400);
      assert.equal(badJson.body.error.code, 'invalid_json');
      // nesting deep enough to overflow a recursive walk: 400 before anything recurses on it
      const nested = (n: number) => `{"metadata":${'['.repeat(n)}${']'.repeat(n)}}`;
      const deep = await h.call('POST', '/v1/payments', { key, payload: nested(20_000), headers: { 'content-type': 'application/json' } });
      assert.equal(deep.status, 400, deep.raw);
      assert.equal(deep.body.error.code, 'invalid_json');
      const inbound = await h.call('POST', `/v1/connectors/sandbox/webhooks/${h.merchant.testAccount.id}`, { key: null, payload: nested(20_000), headers: { 'content-type': 'application/json' } });
      assert.equal(inbound.status, 400, 'the unauthenticated inbound route refuses it too');
      assert.equal(inbound.body.error.code, 'invalid_json');
      // at the limit, and with brackets inside strings, the body is parsed and judged on its fields
      const atLimit = await h.call('POST', '/v1/payments', { key, payload: nested(63), headers: { 'content-type': 'application/json' } });
      assert.equal(atLimit.status, 400);
      assert.notEqual(atLimit.body.error.code, 'invalid_json', atLimit.raw);
      const bracketsInText = await h.call('POST', '/v1/payments', { key, body: { description: '['.repeat(500) + '\\"{'.repeat(100) } });
      assert.notEqual(bracketsInText.body.error.code, 'invalid_json', bracketsInText.raw);
      const huge = await h.call('POST', '/v1/payments', { key, payload: JSON.stringify({ description: 'x'.repeat(70_000) }), headers: { 'content-type': 'application/json' } });
      assert.equal(huge.status, 413);
      assert.equal(huge.body.error.code, 'payload_too_large');
      const after = (await h.db.query<{ n: number }>('SELECT count(*)::int AS n FROM payments')).rows[0].n;
      assert.equal(after, before);
    });

    it('accepts an empty body, no body and no Content-Type on optional-body POSTs', async () => {
      const key = h.merchant.testKey;
      const a = await pay(h, { capture_method: 'manual' });
      const r1 = await h.call('POST', `/v1/payments/${a.id}/capture`, { key, payload: '', headers: { 'content-type': 'application/json' } });
      assert.equal(r1.status, 200);
      const b = await pay(h, { capture_method: 'manual' });
      const r2 = await h.call('POST', `/v1/payments/${b.id}/capture`, { key });
      assert.equal(r2.status, 200);
      const c = await pay(h, { capture_method: 'manual' });
      const r3 = await h.call('POST', `/v1/payments/${c.id}/capture`, { key, payload: '{"amount": 100}' });
      assert.equal(r3.status, 200);
      assert.equal(r3.body.amount_captured, 100);
    });

    it('refuses UPDATE and DELETE on ledger entries at the database', async () => {
      await pay(h);
      await assert.rejects(h.db.query("UPDATE ledger_entries SET amount = amount + 1"), /append-only/);
      await assert.rejects(h.db.query('DELETE FROM ledger_entries'), /append-only/);
      await assert.rejects(h.db.query('DELETE FROM ledger_transactions'), /append-only/);
    });
  });
}
