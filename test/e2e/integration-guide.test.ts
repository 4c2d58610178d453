/**
 * docs/integration.md, run as written against a real gateway started as the quick start does:
 * its `curl` steps in order (one shell state carried from step to step, as in a terminal), its
 * webhook receiver as a real process, its Node programs with the client package. Blocks are
 * marked in the guide with `<!-- run: name; prints: text -->`, `<!-- file: name -->` and
 * `<!-- output: name -->` comments; a marked block that is wrong fails here.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { spawnGateway, type Proc } from '../helpers/processes.js';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const GUIDE = readFileSync(join(ROOT, 'docs/integration.md'), 'utf8');

interface Block { kind: 'run' | 'file' | 'output'; name: string; prints?: string; code: string }

/** The guide's marked code blocks, in order. */
function blocks(markdown: string): Block[] {
  const out: Block[] = [];
  for (const m of markdown.matchAll(/<!-- (run|file|output): ([^>]*?) -->\n```\w*\n([\s\S]*?)\n```/g)) {
    const [name, prints] = m[2].split(/;\s*prints:\s*/);
    out.push({ kind: m[1] as Block['kind'], name: name.trim(), prints: prints?.trim(), code: m[3] });
  }
  return out;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/** A Node program of the guide, started in the work directory, with its output kept. */
function start(dir: string, file: string, env: Record<string, string>) {
  const proc: ChildProcess = spawn(process.execPath, [file], { cwd: dir, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  return { proc, output: () => out };
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('docs/integration.md against a real gateway', { timeout: 400_000 }, () => {
  let gw: Proc | undefined;
  let skip = false;
  const dir = join(ROOT, 'test-artifacts', 'integration-guide', `run-${process.pid}`);
  const receivers: ReturnType<typeof start>[] = [];
  let key = '';

  before(async (t) => {
    const jq = await run('jq', ['--version']).then(() => true, () => false);
    if (!jq) {
      if (process.env.CI === 'true') throw new Error('jq is missing: apt-get install -y jq');
      skip = true;
      return (t as { skip: (msg: string) => void }).skip('no jq');
    }
    mkdirSync(dir, { recursive: true });
    gw = await spawnGateway({ env: { SETTLE_WORKER_POLL_MS: '50' }, readyTimeoutMs: 120_000 });
    // the key a newcomer copies from the terminal
    await waitFor('the printed test key', () => /Test secret key \(shown once\): sk_test_\w+/.test(gw!.output()), 30_000);
    key = /Test secret key \(shown once\): (sk_test_\w+)/.exec(gw.output())![1];
  });
  after(async () => {
    for (const r of receivers) r.proc.kill();
    await gw?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the guide is marked up: its steps, files and printed output are all found', () => {
    const all = blocks(GUIDE);
    assert.deepEqual(all.filter((b) => b.kind === 'run').map((b) => b.name), ['register', 'pay', 'refund', 'replay', 'too-much', 'declined', 'events']);
    assert.deepEqual(all.filter((b) => b.kind === 'file').map((b) => b.name), ['receiver.mjs', 'register-endpoint.mjs', 'integrate.mjs']);
    // the shell set-up a reader types is what the steps are run with
    assert.match(GUIDE, /export SETTLE=http:\/\/localhost:8080\nexport KEY=sk_test_…[^\n]*\nexport RECEIVER=http:\/\/localhost:4242\/webhooks\n/);
    assert.match(GUIDE, /SETTLE_WHSEC=\$WHSEC node receiver\.mjs/);
    assert.match(GUIDE, /npm install && npm start/);
  });

  test('the curl steps and the receiver: a payment, a partial refund, its replay, the errors, verified deliveries', async (t) => {
    if (skip) return t.skip('no jq');
    const all = blocks(GUIDE);
    for (const b of all.filter((x) => x.kind === 'file')) writeFileSync(join(dir, b.name), b.code);
    const port = await freePort();
    const state = join(dir, 'state.sh');
    writeFileSync(state, `export SETTLE=${gw!.url}\nexport KEY=${key}\nexport RECEIVER=http://127.0.0.1:${port}/webhooks\n`);
    /** One step, in a shell that starts from the variables the steps before it left. */
    const step = async (b: Block) => {
      const script = `set -euo pipefail\nset -a\nsource ${state}\n${b.code}\nexport -p > ${state}.next\n`;
      const { stdout } = await run('bash', ['-c', script], { cwd: dir, env: { PATH: process.env.PATH ?? '', HOME: dir }, timeout: 60_000 })
        .catch((err) => assert.fail(`step "${b.name}" failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`));
      renameSync(`${state}.next`, state);
      if (b.prints) assert.ok(stdout.includes(b.prints), `step "${b.name}" prints ${b.prints}; it printed:\n${stdout}`);
      return stdout;
    };
    const variable = async (name: string) => (await run('bash', ['-c', `source ${state}; printf %s "$${name}"`])).stdout;

    const outputs = new Map<string, string>();
    for (const b of all.filter((x) => x.kind === 'run')) {
      outputs.set(b.name, await step(b));
      if (b.name === 'register') {
        const secret = await variable('WHSEC');
        assert.match(secret, /^whsec_/);
        const receiver = start(dir, 'receiver.mjs', { SETTLE_WHSEC: secret, PORT: String(port) });
        receivers.push(receiver);
        await waitFor('the receiver', () => receiver.output().includes(`listening on ${port}`));
      }
    }
    const paymentId = await variable('PAYMENT_ID');
    assert.match(paymentId, /^pay_/);
    const refund = JSON.parse(outputs.get('refund')!);
    assert.equal(refund.status, 'succeeded');
    assert.equal(refund.amount, 4000);
    assert.deepEqual({ refunded: refund.payment.amount_refunded, refundable: refund.payment.amount_refundable }, { refunded: 4000, refundable: 8500 });
    assert.match(outputs.get('too-much')!, /"param": "amount"/);

    // the gateway agrees: one refund of 4000, whatever was retried
    const payment = await (await fetch(`${gw!.url}/v1/payments/${paymentId}`, { headers: { authorization: `Bearer ${key}` } })).json() as any;
    assert.equal(payment.amount_refunded, 4000);
    const refunds = await (await fetch(`${gw!.url}/v1/payments/${paymentId}/refunds`, { headers: { authorization: `Bearer ${key}` } })).json() as any;
    assert.equal(refunds.data.length, 1, 'the replayed refund was not made twice');

    // the receiver verified both signatures of each delivery
    const receiver = receivers[0];
    await waitFor('the refund events at the receiver', () =>
      new RegExp(`verified refund\\.succeeded evt_\\w+ for ${escape(refund.id)}`).test(receiver.output())
      && new RegExp(`verified payment\\.partially_refunded evt_\\w+ for ${escape(paymentId)}`).test(receiver.output())
      && new RegExp(`verified payment\\.succeeded evt_\\w+ for ${escape(paymentId)}`).test(receiver.output()));
    assert.doesNotMatch(receiver.output(), /rejected/);
  });

  test('the Node client programs: an endpoint, a payment, a partial refund, its retry and typed errors, with verified deliveries', async (t) => {
    if (skip) return t.skip('no jq');
    const all = blocks(GUIDE);
    for (const b of all.filter((x) => x.kind === 'file')) writeFileSync(join(dir, b.name), b.code);
    assert.ok(existsSync(join(ROOT, 'node_modules/@settle-gateway/node/dist/index.js')), 'the client package is built (npm run build)');
    const port = await freePort();
    const env = { SETTLE: gw!.url, KEY: key, RECEIVER: `http://127.0.0.1:${port}/webhooks` };

    const registered = await run(process.execPath, ['register-endpoint.mjs'], { cwd: dir, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 60_000 });
    const secret = /SETTLE_WHSEC=(whsec_\S+)/.exec(registered.stdout)?.[1];
    assert.ok(secret, registered.stdout);
    const receiver = start(dir, 'receiver.mjs', { SETTLE_WHSEC: secret, PORT: String(port) });
    receivers.push(receiver);
    await waitFor('the receiver', () => receiver.output().includes(`listening on ${port}`));

    const { stdout } = await run(process.execPath, ['integrate.mjs'], { cwd: dir, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 120_000 });
    // what the guide says it prints, `…` standing for an id
    const expected = all.find((b) => b.kind === 'output' && b.name === 'integrate.mjs')!.code.split('\n');
    const lines = stdout.trim().split('\n');
    assert.equal(lines.length, expected.length, stdout);
    expected.forEach((line, i) => assert.match(lines[i], new RegExp(`^${escape(line).replace(/…/g, '\\w+')}$`), `line ${i + 1}`));
    const refundId = /refund (re_\w+) succeeded/.exec(stdout)![1];
    assert.equal(/retry: refund (re_\w+)/.exec(stdout)![1], refundId, 'the retry answered the same refund');
    const paymentId = /payment (pay_\w+) succeeded/.exec(stdout)![1];
    const declinedId = /declined: 402 card_declined, payment (pay_\w+)/.exec(stdout)![1];
    assert.notEqual(declinedId, paymentId);

    await waitFor('the refund event at the receiver', () =>
      new RegExp(`verified refund\\.succeeded evt_\\w+ for ${escape(refundId)}`).test(receiver.output())
      && new RegExp(`verified payment\\.partially_refunded evt_\\w+ for ${escape(paymentId)}`).test(receiver.output()));
    assert.doesNotMatch(receiver.output(), /rejected/);
  });
  test('the client program is strict TypeScript as it stands', async () => {
    const code = blocks(GUIDE).find((b) => b.kind === 'file' && b.name === 'integrate.mjs')!.code;
    const check = join(dir, 'tscheck');
    mkdirSync(check, { recursive: true });
    // the environment's variables asserted present, as a TypeScript reader writes them
    writeFileSync(join(check, 'integrate.ts'), code.replace(/process\.env\.(KEY|SETTLE)\b/g, 'process.env.$1!'));
    writeFileSync(join(check, 'package.json'), '{"type": "module"}');
    writeFileSync(join(check, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true, skipLibCheck: true, types: ['node'] },
      files: ['integrate.ts'],
    }));
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    await run(process.execPath, [tsc, '-p', check], { cwd: check, timeout: 120_000 })
      .catch((err) => assert.fail(`integrate.mjs does not compile as TypeScript:\n${err.stdout}${err.stderr}`));
  });
});
