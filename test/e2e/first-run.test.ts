import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { client, runSettle, spawnSettle } from '../helpers/processes.js';

const READY = /Settle is running at (http:\/\/\S+)/;
/** A first start initialises the embedded database: slow on a loaded machine. */
const START_MS = 120_000;

describe('first run and operator commands on the embedded database', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'settle-first-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = { SETTLE_DATA_DIR: dataDir, LOG_LEVEL: 'info' };

  test('a port in use creates nothing; the next start makes the demo merchant and prints its keys on stderr, never in the JSON log on stdout', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const refused = await runSettle(['serve'], { ...env, PORT: String(port) }, { timeoutMs: 90_000 });
      assert.equal(refused.timedOut, false, refused.output);
      assert.notEqual(refused.code, 0);
      assert.ok(refused.stderr.includes(`Cannot listen on 127.0.0.1:${port} (EADDRINUSE)`), refused.output);
      assert.doesNotMatch(refused.output, /sk_test_|sk_live_/, 'no key was made, so none was shown and lost');
    } finally {
      blocker.close();
    }

    const gw = await spawnSettle(['serve'], { ...env, PORT: '0' }, READY, START_MS);
    try {
      const testKey = gw.output().match(/Test secret key \(shown once\): (sk_test_\w+)/)?.[1];
      assert.ok(testKey, `the demo merchant was made on this start:\n${gw.output()}`);
      assert.equal((await client(gw.url, testKey)('GET', '/v1/payments')).status, 200);
    } finally {
      assert.equal(await gw.kill('SIGTERM'), 0);
    }
    // everything on stdout is the JSON log stream, and it never carries a key
    const all = gw.output();
    const keys = all.match(/sk_(test|live|admin)_\w+/g) ?? [];
    assert.ok(keys.length >= 3, 'test, live and admin keys were printed');
    const stdout = gw.stdout();
    const logLines = stdout.split('\n').filter(Boolean);
    assert.ok(logLines.length > 0, 'the log stream has lines at LOG_LEVEL=info');
    for (const line of logLines) assert.doesNotThrow(() => JSON.parse(line), `not a JSON log line on stdout: ${line}`);
    for (const key of keys) assert.ok(!stdout.includes(key), 'a key reached the log stream');
  });

  test('a first start on a new data directory holds no more memory than a restart on it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'settle-first-rss-'));
    const rssMb = (pid: number) => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
    try {
      const startAndMeasure = async () => {
        const gw = await spawnSettle(['serve'], { SETTLE_DATA_DIR: dir, PORT: '0' }, READY, START_MS);
        try {
          return rssMb(gw.proc.pid!);
        } finally {
          assert.equal(await gw.kill('SIGTERM'), 0);
        }
      };
      const first = await startAndMeasure();
      const restart = await startAndMeasure();
      // initdb's WebAssembly memory (~700 MB) would stay with a first start that kept its instance
      assert.ok(first < restart + 150, `RSS after the first start ${first.toFixed(0)} MB, after a restart ${restart.toFixed(0)} MB`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a merchant made by the CLI gets a new key and a connector account from the CLI; the 409 says how', async () => {
    const made = await runSettle(['merchants', 'create', '--name', 'Made by the CLI'], env, { timeoutMs: 90_000 });
    assert.equal(made.code, 0, made.output);
    const merchant = JSON.parse(made.stdout.slice(made.stdout.indexOf('{')));

    const unknown = await runSettle(['api-keys', 'create', '--merchant', 'mer_nope'], env, { timeoutMs: 90_000 });
    assert.equal(unknown.code, 1, unknown.output);
    assert.match(unknown.stderr, /merchant_not_found: No such merchant: mer_nope/);

    const minted = await runSettle(['api-keys', 'create', '--merchant', merchant.id, '--mode', 'test'], env, { timeoutMs: 90_000 });
    assert.equal(minted.code, 0, minted.output);
    const key = JSON.parse(minted.stdout.slice(minted.stdout.indexOf('{')));
    assert.match(key.secret, /^sk_test_/);
    assert.notEqual(key.secret, merchant.api_keys.test, 'a new key, not the one made with the merchant');

    const payment = { amount: 1000, currency: 'EUR', payment_method: 'pm_card_visa' };
    let gw = await spawnSettle(['serve'], { ...env, PORT: '0' }, READY, START_MS);
    try {
      const refused = await client(gw.url, key.secret)('POST', '/v1/payments', payment);
      assert.equal(refused.status, 409, refused.raw);
      assert.equal(refused.body.error.code, 'no_default_connector_account');
      assert.ok(refused.body.error.message.includes(`settle connector-accounts create --merchant ${merchant.id} --mode test`), refused.raw);
      assert.match(refused.body.error.message, /POST \/v1\/connector_accounts/);
    } finally {
      assert.equal(await gw.kill('SIGTERM'), 0);
    }

    const account = await runSettle(['connector-accounts', 'create', '--merchant', merchant.id, '--mode', 'test', '--name', 'Sandbox'], env, { timeoutMs: 90_000 });
    assert.equal(account.code, 0, account.output);
    const created = JSON.parse(account.stdout.slice(account.stdout.indexOf('{')));
    assert.equal(created.connector, 'sandbox');
    assert.equal(created.test_mode, true);
    assert.equal(created.is_default, true);
    assert.match(created.webhook_secret, /^whsec_/);

    gw = await spawnSettle(['serve'], { ...env, PORT: '0' }, READY, START_MS);
    try {
      const paid = await client(gw.url, key.secret)('POST', '/v1/payments', payment);
      assert.equal(paid.status, 201, paid.raw);
      assert.equal(paid.body.connector_account_id, created.id);
    } finally {
      assert.equal(await gw.kill('SIGTERM'), 0);
    }
  });
});
