import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createTempDatabase, postgresOrSkip, type TempDatabase } from '../helpers/databases.js';
import { ADMIN_KEY } from '../helpers/harness.js';
import { client, runSettle, spawnSettle } from '../helpers/processes.js';
import { keyFingerprint } from '../../src/lib/crypto.js';

const READY = /Settle is running at (http:\/\/\S+)/;
/** A first start initialises the embedded database: slow on a loaded machine. */
const START_MS = 120_000;
const KEY_A = 'aa'.repeat(32);
const KEY_B = 'bb'.repeat(32);
const short = (hex: string) => keyFingerprint(Buffer.from(hex, 'hex')).slice(0, 16);

/** A payment and a refund with `key` on the gateway at `url`: its connector account's secrets must open. */
async function payAndRefund(url: string, key: string) {
  const api = client(url, key);
  const payment = await api('POST', '/v1/payments', { amount: 2000, currency: 'EUR', payment_method: 'pm_card_visa' });
  assert.equal(payment.status, 201, payment.raw);
  const refund = await api('POST', `/v1/payments/${payment.body.id}/refunds`, { amount: 500 });
  assert.equal(refund.status, 201, refund.raw);
  assert.equal(refund.body.status, 'succeeded');
}

// The embedded database's suite and PostgreSQL's share nothing and mostly wait on processes: they
// run at once, each one's tests one after the other (a describe hands its concurrency down).
describe('encryption keys', { concurrency: true }, () => {
  describe('the encryption key cannot silently change', { concurrency: 1 }, () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'settle-keys-'));
    after(() => rmSync(dataDir, { recursive: true, force: true }));
    const base = { PORT: '0', SETTLE_DATA_DIR: dataDir, SETTLE_ADMIN_KEY: ADMIN_KEY, LOG_LEVEL: 'warn' };
    const withKeys = (key: string, previous?: string) => ({ ...base, SETTLE_ENCRYPTION_KEY: key, ...(previous ? { SETTLE_ENCRYPTION_KEY_PREVIOUS: previous } : {}) });
    let testKey = '';

    test('a gateway or CLI command started with another key is refused, naming both fingerprints', async () => {
      const first = await spawnSettle(['serve'], withKeys(KEY_A), READY, START_MS);
      try {
        testKey = first.output().match(/Test secret key \(shown once\): (sk_test_\w+)/)![1];
        await payAndRefund(first.url, testKey);
      } finally {
        assert.equal(await first.kill('SIGTERM'), 0);
      }
      for (const args of [['serve'], ['merchants', 'create', '--name', 'Other'], ['keys', 'check']]) {
        const r = await runSettle(args, withKeys(KEY_B), { timeoutMs: 90_000 });
        assert.equal(r.timedOut, false, `settle ${args.join(' ')} started with the wrong key:\n${r.output}`);
        assert.notEqual(r.code, 0, r.output);
        assert.match(r.stderr, /encryption key is not the one this database's secrets are sealed with/, r.output);
        assert.ok(r.stderr.includes(`database: key fingerprint ${short(KEY_A)}`), r.output);
        assert.ok(r.stderr.includes(`this process: ${short(KEY_B)}`), r.output);
        assert.ok(!r.output.includes(KEY_A) && !r.output.includes(KEY_B), 'the keys themselves are never printed');
      }
    });

    test('rotation: both keys while re-sealing, then the old key removed, and everything still opens', async () => {
      // 1. the gateway runs with the new key, the old one accepted for reading
      const during = await spawnSettle(['serve'], withKeys(KEY_B, KEY_A), READY, START_MS);
      try {
        await payAndRefund(during.url, testKey); // the demo account's secrets are still sealed with A
        const api = client(during.url, testKey);
        const account = await api('POST', '/v1/connector_accounts', { connector: 'sandbox', name: 'made during rotation', credentials: { api_key: 'psp_secret_1' } });
        assert.equal(account.status, 201, account.raw);
        const endpoint = await api('POST', '/v1/webhook_endpoints', { url: 'http://127.0.0.1:9/hook', enabled_events: ['*'] });
        assert.equal(endpoint.status, 201, endpoint.raw);
      } finally {
        assert.equal(await during.kill('SIGTERM'), 0);
      }
      // the old key cannot be dropped before the rotation
      const early = await runSettle(['keys', 'check'], withKeys(KEY_B), { timeoutMs: 90_000 });
      assert.notEqual(early.code, 0, early.output);

      // 2. re-seal everything with B; the fingerprint moves to B
      const rotated = await runSettle(['keys', 'rotate'], withKeys(KEY_B, KEY_A), { timeoutMs: 120_000 });
      assert.equal(rotated.code, 0, rotated.output);
      // sealed with A: the demo merchant's accounts' webhook secrets (every other secret was made
      // during the rotation, with B)
      const resealed = Number(rotated.stdout.match(/re-sealed with SETTLE_ENCRYPTION_KEY: (\d+)/)?.[1]);
      const accounts = Number(rotated.stdout.match(/(\d+) connector webhook secret/)?.[1]);
      assert.ok(resealed >= 1, `the demo accounts' webhook secrets were re-sealed:\n${rotated.output}`);
      assert.equal(resealed, accounts - 1, rotated.output);
      assert.ok(rotated.stdout.includes(`database key fingerprint: ${short(KEY_B)}`), rotated.output);
      const again = await runSettle(['keys', 'rotate'], withKeys(KEY_B, KEY_A), { timeoutMs: 120_000 });
      assert.match(again.stdout, /re-sealed with SETTLE_ENCRYPTION_KEY: 0/, 'a second rotation has nothing left to do');

      // 3. the old key removed: every secret opens with B alone, and the gateway works
      const check = await runSettle(['keys', 'check'], withKeys(KEY_B), { timeoutMs: 90_000 });
      assert.equal(check.code, 0, check.output);
      assert.match(check.stdout, /keys check: OK/);
      assert.ok(check.stdout.includes(`1 connector credentials, ${accounts} connector webhook secret, 1 webhook endpoint secret`), check.output);
      const after = await spawnSettle(['serve'], withKeys(KEY_B), READY, START_MS);
      try {
        await payAndRefund(after.url, testKey);
      } finally {
        assert.equal(await after.kill('SIGTERM'), 0);
      }
      // and the old key alone is now the wrong one
      const old = await runSettle(['serve'], withKeys(KEY_A), { timeoutMs: 90_000 });
      assert.equal(old.timedOut, false);
      assert.notEqual(old.code, 0, old.output);
      assert.ok(old.stderr.includes(`database: key fingerprint ${short(KEY_B)}`), old.output);
    });
  });

  describe('with DATABASE_URL and no SETTLE_ENCRYPTION_KEY', { concurrency: 1 }, () => {
    let temp: TempDatabase | undefined;
    const dirs = [mkdtempSync(join(tmpdir(), 'settle-keys-a-')), mkdtempSync(join(tmpdir(), 'settle-keys-b-'))];
    after(async () => {
      await temp?.drop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    test('a restart from another folder is refused instead of generating a key that cannot read the database', async (t) => {
      if (!(await postgresOrSkip(t))) return;
      temp = await createTempDatabase();
      const env = (dir: string) => ({ PORT: '0', DATABASE_URL: temp!.url, SETTLE_DATA_DIR: dir, SETTLE_ADMIN_KEY: ADMIN_KEY, LOG_LEVEL: 'warn' });
      const first = await spawnSettle(['serve'], env(dirs[0]), READY, START_MS);
      const testKey = first.output().match(/Test secret key \(shown once\): (sk_test_\w+)/)![1];
      assert.equal(await first.kill('SIGTERM'), 0, first.output());
      assert.ok(existsSync(join(dirs[0], 'encryption.key')), 'the first start generated its key into its folder');

      const elsewhere = await runSettle(['serve'], env(dirs[1]), { timeoutMs: 90_000 });
      assert.equal(elsewhere.timedOut, false, `started from another folder:\n${elsewhere.output}`);
      assert.notEqual(elsewhere.code, 0);
      assert.match(elsewhere.stderr, /sealed with an encryption key, and this process has none/, elsewhere.output);
      assert.equal(existsSync(join(dirs[1], 'encryption.key')), false, 'no key was generated for a database that has one');

      const back = await spawnSettle(['serve'], env(dirs[0]), READY, START_MS);
      try {
        await payAndRefund(back.url, testKey);
      } finally {
        await back.kill('SIGTERM');
      }
    });
  });
});
