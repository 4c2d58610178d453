/**
 * The psp-sim as a real child process, driven through the sandbox connector over real HTTP:
 * lost responses, 5xx, timeouts and signed webhooks are real network events here.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectorUnknownOutcomeError, type ConnectorContext, type ConnectorEvent } from '../../src/connectors/connector.js';
import { createSandboxConnector } from '../../src/connectors/sandbox/sandbox.connector.js';
import { verifySandboxSignature } from '../../src/connectors/sandbox/sandbox-signature.js';

const CLI = fileURLToPath(new URL('../../src/psp-sim/cli.js', import.meta.url));
const SECRET = 'whsec_e2e_secret';

let child: ChildProcess;
let simUrl: string;
let childStderr = '';
let hooks: Server;
let hooksUrl: string;
const received: Array<{ rawBody: string; signature: string | undefined; event: ConnectorEvent }> = [];

before(async () => {
  child = spawn(process.execPath, [CLI, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.on('data', (d: Buffer) => (childStderr += d.toString()));
  simUrl = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`psp-sim did not start; stderr: ${childStderr}`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /psp-sim listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`psp-sim exited early (${code}); stderr: ${childStderr}`)));
  });

  // The gateway's side of the webhooks: records every delivery, answers 200.
  hooks = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const sig = req.headers['sandbox-signature'];
      received.push({ rawBody: body, signature: typeof sig === 'string' ? sig : undefined, event: connector.parseWebhook(body) });
      res.writeHead(200).end('ok');
    });
  });
  hooks.listen(0, '127.0.0.1');
  await once(hooks, 'listening');
  hooksUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hooks`;
});

after(async () => {
  hooks?.close();
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, `psp-sim shuts down cleanly on SIGTERM; stderr: ${childStderr}`);
  }
});

beforeEach(async () => {
  await sim('DELETE', '/_sim/faults');
});

const connector = createSandboxConnector();
let accounts = 0;

function account(): ConnectorContext {
  return {
    accountId: `acct_e2e_${++accounts}`,
    shortId: 'ca_e2etest000',
    testMode: true,
    settings: { base_url: simUrl },
    credentials: { api_key: 'sk_sandbox_e2e' },
    webhookSecret: SECRET,
  };
}

async function sim(method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${simUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  assert.ok(res.ok, `${method} ${path} → ${res.status} ${JSON.stringify(json)}`);
  return json;
}

let keys = 0;
async function capturedPayment(ctx: ConnectorContext, paymentMethod = 'pm_card_visa', amount = 10_000): Promise<string> {
  const result = await connector.authorize(ctx, {
    amount,
    currency: 'INR',
    paymentMethod,
    capture: true,
    idempotencyKey: `settle_pay_${++keys}`,
    reference: `pay_${keys}`,
  });
  assert.equal(result.outcome, 'captured');
  return result.connectorRef!;
}

function refundReq(paymentRef: string, amount: number, id = `re_e2e_${++keys}`) {
  return { paymentRef, amount, currency: 'INR', reason: null, idempotencyKey: `settle_${id}`, reference: id };
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('psp-sim over HTTP through the sandbox connector', () => {
  it('authorizes and refunds, and reports the refund by key and by ref', async () => {
    const ctx = account();
    const ref = await capturedPayment(ctx);
    const req = refundReq(ref, 2500);
    const refund = await connector.refund(ctx, req);
    assert.equal(refund.status, 'succeeded');
    assert.deepEqual(await connector.refundStatus(ctx, { paymentRef: ref, idempotencyKey: req.idempotencyKey }), refund);
    assert.deepEqual(await connector.refundStatus(ctx, { connectorRef: refund.connectorRef, paymentRef: ref, idempotencyKey: req.idempotencyKey }), refund);
    const totals = await sim('GET', `/_sim/payments/${ref}`);
    assert.equal(totals.amount_refunded, 2500);
    assert.equal(totals.refunds[0].reference, req.reference);
  });

  it('gets definite answers for a decline and an over-refund', async () => {
    const ctx = account();
    const declined = await connector.authorize(ctx, {
      amount: 100,
      currency: 'INR',
      paymentMethod: 'pm_card_declined',
      capture: true,
      idempotencyKey: `settle_pay_${++keys}`,
      reference: 'pay_declined',
    });
    assert.equal(declined.outcome === 'declined' && declined.code, 'card_declined');
    const ref = await capturedPayment(ctx, 'pm_card_visa', 1000);
    const over = await connector.refund(ctx, refundReq(ref, 1001));
    assert.equal(over.status === 'failed' && over.code, 'amount_exceeds_refundable');
  });

  it('lost response: unknown outcome, yet the retry with the same key returns the one refund applied', async () => {
    const ctx = account();
    await sim('PUT', '/_sim/faults', { drop_response_rate: 1, ops: ['refund'] });
    const ref = await capturedPayment(ctx); // authorizations are not targeted
    const req = refundReq(ref, 4000);
    await assert.rejects(connector.refund(ctx, req), ConnectorUnknownOutcomeError);
    await assert.rejects(connector.refund(ctx, req), ConnectorUnknownOutcomeError, 'still lost, still no second refund');

    const applied = await sim('GET', `/_sim/payments/${ref}`);
    assert.equal(applied.amount_refunded, 4000, 'the PSP did refund');
    assert.equal(applied.refunds.length, 1);

    await sim('DELETE', '/_sim/faults');
    const retry = await connector.refund(ctx, req);
    assert.equal(retry.status, 'succeeded');
    assert.equal(retry.connectorRef, applied.refunds[0].refund_ref);
    const totals = await sim('GET', `/_sim/payments/${ref}`);
    assert.deepEqual(
      totals.refunds.map((r: { idempotency_key: string }) => r.idempotency_key),
      [req.idempotencyKey],
    );
    assert.equal(totals.amount_refunded, 4000);
    assert.equal((await sim('GET', '/_sim/stats')).duplicate_applications, 0);
  });

  it('5xx: unknown outcome and nothing applied', async () => {
    const ctx = account();
    const ref = await capturedPayment(ctx);
    await sim('PUT', '/_sim/faults', { error_rate: 1, ops: ['refund'] });
    const req = refundReq(ref, 1000);
    await assert.rejects(connector.refund(ctx, req), ConnectorUnknownOutcomeError);
    await sim('DELETE', '/_sim/faults');
    assert.equal((await sim('GET', `/_sim/payments/${ref}`)).refunds.length, 0);
    const status = await connector.refundStatus(ctx, { paymentRef: ref, idempotencyKey: req.idempotencyKey });
    assert.equal(status.status === 'failed' && status.code, 'refund_not_found');
  });

  it('timeout: the connector gives up after timeoutMs with an unknown outcome', async () => {
    const ctx = account();
    const ref = await capturedPayment(ctx);
    await sim('PUT', '/_sim/faults', { timeout_rate: 1, ops: ['refund'] });
    const impatient = createSandboxConnector({ timeoutMs: 300 });
    const started = Date.now();
    await assert.rejects(
      impatient.refund(ctx, refundReq(ref, 1000)),
      (err: unknown) => err instanceof ConnectorUnknownOutcomeError && /timed out/.test(err.message),
    );
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 290 && elapsed < 3000, `gave up after ${elapsed} ms`);
  });

  it('a connection refused is an unknown outcome too', async () => {
    const ctx = { ...account(), settings: { base_url: 'http://127.0.0.1:1' } };
    await assert.rejects(connector.refund(ctx, refundReq('sbx_pay_1_INR_visa_x', 1)), ConnectorUnknownOutcomeError);
  });
});

describe('psp-sim webhooks', () => {
  it('delivers a signed payment.refunded that the connector verifies and parses', async () => {
    const ctx = account();
    await sim('PUT', `/_sim/accounts/${ctx.accountId}/webhook`, { url: hooksUrl, secret: SECRET });
    const ref = await capturedPayment(ctx);
    const req = refundReq(ref, 1500);
    const refund = await connector.refund(ctx, req);

    const hook = await waitFor('payment.refunded webhook', () =>
      received.find((h) => h.event.type === 'payment.refunded' && h.event.paymentRef === ref),
    );
    assert.equal(verifySandboxSignature(SECRET, hook.rawBody, hook.signature), true);
    assert.equal(connector.verifyWebhook(ctx, { rawBody: hook.rawBody, headers: { 'sandbox-signature': hook.signature } }), true);
    assert.equal(connector.verifyWebhook({ ...ctx, webhookSecret: 'whsec_wrong' }, { rawBody: hook.rawBody, headers: { 'sandbox-signature': hook.signature } }), false);
    assert.ok(hook.event.type === 'payment.refunded');
    assert.equal(hook.event.amountRefunded, 1500);
    assert.deepEqual(hook.event.refunds, [
      { connectorRef: refund.connectorRef, amount: 1500, status: 'succeeded', reference: req.reference, failureCode: null, failureMessage: null },
    ]);
  });

  it('delivers every webhook twice in duplicate mode, with the same event id', async () => {
    const ctx = account();
    await sim('PUT', `/_sim/accounts/${ctx.accountId}/webhook`, { url: hooksUrl, secret: SECRET });
    const ref = await capturedPayment(ctx);
    await sim('PUT', '/_sim/faults', { webhook: { duplicate: true } });
    await connector.refund(ctx, refundReq(ref, 700));
    const copies = await waitFor('two deliveries', () => {
      const mine = received.filter((h) => h.event.type === 'payment.refunded' && h.event.paymentRef === ref);
      return mine.length >= 2 ? mine : undefined;
    });
    await sleep(100);
    const all = received.filter((h) => h.event.type === 'payment.refunded' && h.event.paymentRef === ref);
    assert.equal(all.length, 2, 'exactly twice');
    assert.equal(copies[0].event.id, copies[1].event.id);
    assert.ok(copies.every((c) => verifySandboxSignature(SECRET, c.rawBody, c.signature)));
  });

  it('reports a dashboard refund with reference null', async () => {
    const ctx = account();
    await sim('PUT', `/_sim/accounts/${ctx.accountId}/webhook`, { url: hooksUrl, secret: SECRET });
    const ref = await capturedPayment(ctx, 'pm_card_visa', 5000);
    const dash = await sim('POST', `/_sim/payments/${ref}/refunds`, { amount: 1200 });
    assert.equal(dash.reference, null);
    const hook = await waitFor('dashboard refund webhook', () =>
      received.find((h) => h.event.type === 'payment.refunded' && h.event.paymentRef === ref),
    );
    assert.ok(hook.event.type === 'payment.refunded');
    assert.equal(hook.event.amountRefunded, 1200);
    assert.equal(hook.event.refunds.length, 1);
    assert.equal(hook.event.refunds[0].connectorRef, dash.id);
    assert.equal(hook.event.refunds[0].reference, null);
  });

  it('announces a pending refund, then its success after the pending delay', async () => {
    const ctx = { ...account(), settings: { base_url: simUrl, pending_delay_ms: 150 } };
    await sim('PUT', `/_sim/accounts/${ctx.accountId}/webhook`, { url: hooksUrl, secret: SECRET });
    const ref = await capturedPayment(ctx, 'pm_card_refund_pending');
    const req = refundReq(ref, 300);
    const refund = await connector.refund(ctx, req);
    assert.equal(refund.status, 'pending');
    const done = await waitFor('refund.updated succeeded', () =>
      received.find((h) => h.event.type === 'refund.updated' && h.event.refund.connectorRef === refund.connectorRef && h.event.refund.status === 'succeeded'),
    );
    assert.ok(done.event.type === 'refund.updated' && done.event.refund.reference === req.reference);
    assert.equal((await connector.refundStatus(ctx, { paymentRef: ref, idempotencyKey: req.idempotencyKey })).status, 'succeeded');
  });

  it('keeps events in memory when no webhook target is registered', async () => {
    const ctx = account();
    const ref = await capturedPayment(ctx);
    await connector.refund(ctx, refundReq(ref, 100));
    const { data } = await sim('GET', `/_sim/events?account_id=${ctx.accountId}`);
    assert.equal(data.length, 1);
    assert.equal(data[0].status, 'no_target');
    assert.equal(received.some((h) => h.event.type === 'payment.refunded' && h.event.paymentRef === ref), false);
  });
});
