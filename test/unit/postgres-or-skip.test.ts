import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const FIXTURE = resolve(dirname(fileURLToPath(import.meta.url)), '../fixtures/postgres-hook.fixture.js');
/** Nothing listens on port 1 of loopback: connecting is refused at once. */
const CLOSED = 'postgres://postgres@127.0.0.1:1/postgres';

function runSuite(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const proc = spawn(process.execPath, ['--test', '--test-reporter=tap', FIXTURE], {
    env: { PATH: process.env.PATH ?? '', TEST_DATABASE_URL: CLOSED, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  return new Promise((r) => proc.on('exit', (code) => r({ code, output })));
}

describe('PostgreSQL-backed tests without a PostgreSQL server', () => {
  it('are skipped, and the run passes, when CI is not set', async () => {
    const { code, output } = await runSuite({});
    assert.equal(code, 0, output);
    assert.match(output, /^# skipped 1$/m, output);
    assert.match(output, /^# fail 0$/m, output);
    assert.doesNotMatch(output, /is not a function/);
  });

  it('fail under CI=true, naming the unreachable server', async () => {
    const { code, output } = await runSuite({ CI: 'true' });
    assert.notEqual(code, 0, output);
    assert.match(output, /CI=true but PostgreSQL is unreachable at postgres:\/\/postgres@127\.0\.0\.1:1\/postgres/);
  });
});
