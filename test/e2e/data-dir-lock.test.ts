import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ADMIN_KEY, ENCRYPTION_KEY } from '../helpers/harness.js';
import { client, runSettle, spawnSettle } from '../helpers/processes.js';

const READY = /Settle is running at (http:\/\/\S+)/;
/** A first start initialises the embedded database: slow on a loaded machine. */
const START_MS = 120_000;

describe('one process per embedded data directory', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'settle-lock-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = { PORT: '0', SETTLE_DATA_DIR: dataDir, SETTLE_ADMIN_KEY: ADMIN_KEY, SETTLE_ENCRYPTION_KEY: ENCRYPTION_KEY, LOG_LEVEL: 'warn' };
  const lockFile = join(dataDir, 'pgdata.lock');

  test('a second serve and every CLI command that opens the directory refuse, naming the running gateway', async () => {
    const first = await spawnSettle(['serve'], env, READY, START_MS);
    try {
      const pid = first.proc.pid!;
      const commands = [['serve'], ['migrate'], ['ledger', 'verify'], ['merchants', 'create', '--name', 'Second']];
      // all at once: each must refuse on its own, whatever the others do
      // (a second serve that did not refuse would keep running: give it 60 s, then call it a failure)
      const results = await Promise.all(commands.map((args) => runSettle(args, env, { timeoutMs: 60_000 })));
      for (const [i, args] of commands.entries()) {
        const r = results[i];
        assert.equal(r.timedOut, false, `settle ${args.join(' ')} kept running beside the first gateway:\n${r.output}`);
        assert.notEqual(r.code, 0, `settle ${args.join(' ')} must fail:\n${r.output}`);
        assert.match(r.stderr, new RegExp(`in use by process ${pid} \\(settle serve, since `), r.output);
        assert.match(r.stderr, /stop that process first/);
      }
      // the first gateway is unaffected
      assert.equal((await client(first.url)('GET', '/readyz')).status, 200);
    } finally {
      assert.equal(await first.kill('SIGTERM'), 0);
    }
    assert.equal(existsSync(lockFile), false, 'a clean stop removes the lock');
    const verify = await runSettle(['ledger', 'verify'], env);
    assert.equal(verify.code, 0, verify.output);
  });

  test('a lock left by a killed gateway does not block the next start, and its data is there', async () => {
    const crashed = await spawnSettle(['serve'], env, READY, START_MS);
    const made = await client(crashed.url, ADMIN_KEY)('POST', '/v1/admin/merchants', { name: 'Before the crash' });
    assert.equal(made.status, 201);
    await crashed.kill('SIGKILL');
    assert.equal(JSON.parse(readFileSync(lockFile, 'utf8')).pid, crashed.proc.pid, 'the killed process left its lock behind');

    const next = await spawnSettle(['serve'], env, READY, START_MS);
    try {
      const holder = JSON.parse(readFileSync(lockFile, 'utf8'));
      assert.equal(holder.pid, next.proc.pid, 'the new gateway holds the lock');
      // the merchant made before the crash is there: it can be given a new key
      const key = await client(next.url, ADMIN_KEY)('POST', `/v1/admin/merchants/${made.body.id}/api_keys`, { mode: 'test' });
      assert.equal(key.status, 201, key.raw);
    } finally {
      assert.equal(await next.kill('SIGTERM'), 0);
    }
  });
});
