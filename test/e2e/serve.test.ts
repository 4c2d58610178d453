import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { client, runSettle, spawnSettle } from '../helpers/processes.js';

describe('settle serve on the embedded database, as a newcomer runs it', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'settle-first-run-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = { PORT: '0', SETTLE_DATA_DIR: dataDir, LOG_LEVEL: 'warn' };

  test('first run seeds a demo merchant, prints its test key and a curl; payments and refunds work over HTTP', async () => {
    const gw = await spawnSettle(['serve'], env, /Settle is running at (http:\/\/\S+)/);
    try {
      await new Promise((r) => setTimeout(r, 200));
      const out = gw.output();
      const testKey = out.match(/Test secret key \(shown once\): (sk_test_\w+)/)?.[1];
      const adminKey = out.match(/Admin key \(generated[^)]*\): (sk_admin_\w+)/)?.[1];
      assert.ok(testKey, `test key printed:\n${out}`);
      assert.ok(adminKey, 'a generated admin key is printed when SETTLE_ADMIN_KEY is unset');
      assert.match(out, /curl -s http:\/\/127\.0\.0\.1:\d+\/v1\/payments/);
      assert.ok(existsSync(join(dataDir, 'encryption.key')));

      const api = client(gw.url, testKey);
      const payment = await api('POST', '/v1/payments', { amount: 5000, currency: 'USD', payment_method: 'pm_card_visa', capture_method: 'manual' });
      assert.equal(payment.status, 201);
      assert.match(payment.headers.get('request-id') ?? '', /^req_/);
      const captured = await api('POST', `/v1/payments/${payment.body.id}/capture`);
      assert.equal(captured.status, 200);
      assert.equal(captured.body.status, 'succeeded');
      const refund = await api('POST', `/v1/payments/${payment.body.id}/refunds`, { amount: 1500 }, { 'Idempotency-Key': 'first-run-1' });
      assert.equal(refund.status, 201);
      assert.equal(refund.body.status, 'succeeded');
      const admin = client(gw.url, adminKey);
      assert.equal((await admin('GET', '/v1/admin/features/refunds')).status, 200);
      assert.equal((await client(gw.url)('GET', '/readyz')).body.database, 'pglite');
    } finally {
      assert.equal(await gw.kill('SIGTERM'), 0, 'exits cleanly on SIGTERM');
    }

    // a restart keeps the data and does not seed again
    const again = await spawnSettle(['serve'], env, /Settle is running at (http:\/\/\S+)/);
    try {
      assert.doesNotMatch(again.output(), /Test secret key/);
      assert.doesNotMatch(again.output(), /Admin key \(generated/);
    } finally {
      await again.kill();
    }
    const verify = await runSettle(['ledger', 'verify'], env);
    assert.equal(verify.code, 0, verify.output);
    assert.match(verify.output, /ledger verify: OK \(0 violations\)/);
    assert.match(verify.output, /2 payments|1 payments/);
  });

  test('settle merchants create prints keys; settle migrate reports an up-to-date database', async () => {
    const made = await runSettle(['merchants', 'create', '--name', 'Acme'], env);
    assert.equal(made.code, 0, made.output);
    const parsed = JSON.parse(made.output.slice(made.output.indexOf('{')));
    assert.equal(parsed.name, 'Acme');
    assert.match(parsed.api_keys.test, /^sk_test_/);
    const migrated = await runSettle(['migrate'], env);
    assert.equal(migrated.code, 0);
    assert.match(migrated.output, /up to date/);
  });

  test('invalid configuration exits listing every bad key', async () => {
    const r = await runSettle(['serve'], { ...env, PORT: 'eighty', LOG_LEVEL: 'loud', SETTLE_ENCRYPTION_KEY: 'short', DATABASE_URL: 'mysql://x' });
    assert.equal(r.code, 78);
    for (const k of ['PORT', 'LOG_LEVEL', 'SETTLE_ENCRYPTION_KEY', 'DATABASE_URL']) assert.match(r.output, new RegExp(k));
  });
});
