import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { buildPspSim } from '../../src/psp-sim/server.js';
import { SandboxPsp } from '../../src/psp-sim/psp-model.js';
import { SimFaultState } from '../../src/psp-sim/faults.js';
import { verifySandboxSignature } from '../../src/connectors/sandbox/sandbox-signature.js';
import type { SandboxWebhookEvent } from '../../src/connectors/sandbox/sandbox-webhook.js';

const apps: FastifyInstance[] = [];
after(async () => {
  await Promise.all(apps.map((a) => a.close()));
});

function sim(opts: Parameters<typeof buildPspSim>[0] = {}): { app: FastifyInstance; psp: SandboxPsp } {
  const psp = opts.psp ?? new SandboxPsp();
  const app = buildPspSim({ ...opts, psp });
  apps.push(app);
  return { app, psp };
}

const auth = { authorization: 'Bearer sk_test', 'sandbox-account': 'acct_sim' };
let n = 0;

async function authorize(app: FastifyInstance, payment_method = 'pm_card_visa', amount = 1000) {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/payments',
    headers: { ...auth, 'idempotency-key': `auth_${++n}` },
    payload: { amount, currency: 'INR', payment_method, reference: 'pay_x' },
  });
  return res;
}

function refund(app: FastifyInstance, payment_ref: string, amount: number, key = `re_${++n}`) {
  return app.inject({
    method: 'POST',
    url: '/v1/refunds',
    headers: { ...auth, 'idempotency-key': key },
    payload: { payment_ref, amount, currency: 'INR', reference: `gw_${key}` },
  });
}

describe('psp-sim PSP API', () => {
  it('refuses calls without an sk_ bearer key, and POSTs without an idempotency key', async () => {
    const { app } = sim();
    const noAuth = await app.inject({ method: 'POST', url: '/v1/payments', payload: {} });
    assert.equal(noAuth.statusCode, 401);
    assert.equal(noAuth.json().error.code, 'invalid_api_key');
    const noKey = await app.inject({ method: 'POST', url: '/v1/payments', headers: auth, payload: { amount: 1, currency: 'INR', payment_method: 'pm_card_visa' } });
    assert.equal(noKey.statusCode, 400);
    assert.equal(noKey.json().error.code, 'idempotency_key_required');
  });

  it('authorizes, declines with 402, and refuses unknown body fields', async () => {
    const { app } = sim();
    const ok = await authorize(app);
    assert.equal(ok.statusCode, 200);
    assert.equal(ok.json().status, 'captured');
    const declined = await authorize(app, 'pm_card_declined');
    assert.equal(declined.statusCode, 402);
    assert.equal(declined.json().error.code, 'card_declined');
    assert.match(declined.json().error.payment_ref, /^sbx_pay_1000_INR_declined_/);
    const extra = await app.inject({
      method: 'POST',
      url: '/v1/payments',
      headers: { ...auth, 'idempotency-key': 'x' },
      payload: { amount: 1, currency: 'INR', payment_method: 'pm_card_visa', surprise: true },
    });
    assert.equal(extra.statusCode, 400);
    assert.equal(extra.json().error.code, 'invalid_request');
  });

  it('cancels with an empty JSON body', async () => {
    const { app } = sim();
    const res = await app.inject({
      method: 'POST',
      url: '/v1/payments',
      headers: { ...auth, 'idempotency-key': 'manual' },
      payload: { amount: 500, currency: 'INR', payment_method: 'pm_card_visa', capture: false },
    });
    assert.equal(res.json().status, 'authorized');
    const cancel = await app.inject({
      method: 'POST',
      url: `/v1/payments/${res.json().id}/cancel`,
      headers: { ...auth, 'idempotency-key': 'cancel', 'content-type': 'application/json' },
      payload: '',
    });
    assert.equal(cancel.statusCode, 200);
    assert.equal(cancel.json().status, 'canceled');
  });

  it('refunds, replays a key, answers 400 over the refundable amount, and looks refunds up', async () => {
    const { app } = sim();
    const ref = (await authorize(app)).json().id as string;
    const first = await refund(app, ref, 600, 'same');
    assert.equal(first.statusCode, 200);
    assert.equal(first.json().reference, 'gw_same');
    const replay = await refund(app, ref, 999, 'same');
    assert.equal(replay.json().id, first.json().id);
    const over = await refund(app, ref, 401);
    assert.equal(over.statusCode, 400);
    assert.equal(over.json().error.code, 'amount_exceeds_refundable');
    const byKey = await app.inject({ method: 'GET', url: `/v1/refunds?idempotency_key=same&payment_ref=${ref}`, headers: auth });
    assert.equal(byKey.json().id, first.json().id);
    const byRef = await app.inject({ method: 'GET', url: `/v1/refunds/${first.json().id}`, headers: auth });
    assert.equal(byRef.json().amount, 600);
    const none = await app.inject({ method: 'GET', url: `/v1/refunds?idempotency_key=nope&payment_ref=${ref}`, headers: auth });
    assert.equal(none.statusCode, 404);
    assert.equal(none.json().error.code, 'refund_not_found');
    const totals = await app.inject({ method: 'GET', url: `/_sim/payments/${ref}` });
    assert.equal(totals.json().amount_refunded, 600);
  });
});

describe('psp-sim faults', () => {
  it('validates the fault body and replaces the whole configuration on PUT', async () => {
    const { app } = sim();
    for (const payload of [{ error_rate: 1.5 }, { unknown: 1 }, { webhook: { loud: true } }, { ops: ['teleport'] }, { latency_ms: -1 }]) {
      const res = await app.inject({ method: 'PUT', url: '/_sim/faults', payload });
      assert.equal(res.statusCode, 400, JSON.stringify(payload));
    }
    await app.inject({ method: 'PUT', url: '/_sim/faults', payload: { error_rate: 0.25, webhook: { duplicate: true } } });
    const second = await app.inject({ method: 'PUT', url: '/_sim/faults', payload: { latency_ms: 5 } });
    assert.equal(second.json().error_rate, 0, 'PUT replaced the previous error_rate');
    assert.equal(second.json().webhook.duplicate, false);
    assert.equal((await app.inject({ method: 'GET', url: '/_sim/faults' })).json().latency_ms, 5);
    assert.equal((await app.inject({ method: 'DELETE', url: '/_sim/faults' })).json().latency_ms, 0);
  });

  it('draws each request\'s latency from latency_ms … latency_max_ms, for the targeted operations only', async () => {
    const { app } = sim();
    const refused = await app.inject({ method: 'PUT', url: '/_sim/faults', payload: { latency_ms: 300, latency_max_ms: 200 } });
    assert.equal(refused.statusCode, 400);
    assert.equal(refused.json().error.code, 'invalid_request');
    const set = await app.inject({ method: 'PUT', url: '/_sim/faults', payload: { latency_ms: 200, latency_max_ms: 400, ops: ['refund'] } });
    assert.equal(set.statusCode, 200);
    assert.equal(set.json().latency_max_ms, 400);

    const state = new SimFaultState();
    state.set({ latency_ms: 200, latency_max_ms: 400, ops: ['refund'], seed: 7 });
    const draws = Array.from({ length: 2000 }, () => state.latency('refund'));
    assert.ok(draws.every((d) => Number.isInteger(d) && d >= 200 && d <= 400), 'every draw inside the range');
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    assert.ok(mean > 285 && mean < 315, `uniform: mean ${mean}`);
    assert.ok(Math.min(...draws) < 210 && Math.max(...draws) > 390, 'the whole range is drawn');
    assert.equal(state.latency('capture'), 0, 'an operation not targeted waits nothing');
    state.set({ latency_ms: 25 });
    assert.deepEqual([state.latency('refund'), state.latency('capture')], [25, 25], 'without a range: always latency_ms');
  });

  it('answers 500 without applying when error_rate is 1, only for the targeted operations', async () => {
    const { app, psp } = sim();
    await app.inject({ method: 'PUT', url: '/_sim/faults', payload: { error_rate: 1, ops: ['refund'] } });
    const auth1 = await authorize(app);
    assert.equal(auth1.statusCode, 200, 'authorize is not targeted');
    const ref = auth1.json().id as string;
    const res = await refund(app, ref, 100, 'err');
    assert.equal(res.statusCode, 500);
    assert.equal(psp.totals(ref).refunds.length, 0);
    await app.inject({ method: 'DELETE', url: '/_sim/faults' });
    assert.equal((await refund(app, ref, 100, 'err')).json().status, 'succeeded', 'the key was not consumed');
  });

  it('replays the same fault sequence for the same seed', async () => {
    async function run(): Promise<number[]> {
      const { app } = sim();
      await app.inject({ method: 'PUT', url: '/_sim/faults', payload: { error_rate: 0.5, seed: 42 } });
      const codes: number[] = [];
      for (let i = 0; i < 16; i += 1) codes.push((await authorize(app)).statusCode);
      return codes;
    }
    const a = await run();
    assert.deepEqual(await run(), a);
    assert.ok(a.includes(500) && a.includes(200), `a 50% rate over 16 calls hit both: ${a.join(',')}`);
  });

  it('makes refunds pending with force_pending and the fault pending delay', async () => {
    const { app, psp } = sim();
    await app.inject({ method: 'PUT', url: '/_sim/faults', payload: { force_pending: true, pending_delay_ms: 30 } });
    const ref = (await authorize(app)).json().id as string;
    const res = await refund(app, ref, 100);
    assert.equal(res.json().status, 'pending');
    await sleep(60);
    assert.equal(psp.totals(ref).amount_refunded, 100);
  });
});

describe('psp-sim operator API and webhooks', () => {
  it('keeps events in memory when the account has no webhook target', async () => {
    const { app } = sim();
    const ref = (await authorize(app)).json().id as string;
    const dash = await app.inject({ method: 'POST', url: `/_sim/payments/${ref}/refunds`, payload: { amount: 250 } });
    assert.equal(dash.statusCode, 201);
    assert.equal(dash.json().reference, null);
    const events = (await app.inject({ method: 'GET', url: `/_sim/events?payment_ref=${ref}` })).json().data;
    assert.equal(events.length, 1);
    assert.equal(events[0].status, 'no_target');
    assert.equal(events[0].account_id, 'acct_sim');
    assert.equal(events[0].event.data.refunds[0].reference, null);
  });

  it('fails a capture the PSP had accepted, then captures another amount from the dashboard; refused while a refund holds the money', async () => {
    const { app } = sim();
    const ref = (await authorize(app)).json().id as string;
    const failed = await app.inject({ method: 'POST', url: `/_sim/payments/${ref}/capture_failed` });
    assert.equal(failed.statusCode, 200, failed.body);
    assert.deepEqual([failed.json().status, failed.json().amount_captured], ['authorized', 0]);
    const again = await app.inject({ method: 'POST', url: `/_sim/payments/${ref}/capture`, payload: { amount: 600 } });
    assert.equal(again.json().amount_captured, 600);
    assert.equal((await refund(app, ref, 100)).statusCode, 200);
    const held = await app.inject({ method: 'POST', url: `/_sim/payments/${ref}/capture_failed` });
    assert.deepEqual([held.statusCode, held.json().error.code], [409, 'payment_has_refunds']);
  });

  it('fails and completes refunds, and reports stats', async () => {
    const { app } = sim();
    const ref = (await authorize(app, 'pm_card_refund_pending')).json().id as string;
    const pending = (await refund(app, ref, 300)).json();
    assert.equal(pending.status, 'pending');
    const completed = await app.inject({ method: 'POST', url: `/_sim/refunds/${pending.id}/complete` });
    assert.equal(completed.json().status, 'succeeded');
    const failed = await app.inject({ method: 'POST', url: `/_sim/refunds/${pending.id}/fail`, payload: { code: 'account_closed' } });
    assert.equal(failed.json().failure_code, 'account_closed');
    const again = await app.inject({ method: 'POST', url: `/_sim/refunds/${pending.id}/complete` });
    assert.equal(again.statusCode, 409);
    const missing = await app.inject({ method: 'POST', url: '/_sim/refunds/sbx_re_missing/fail' });
    assert.equal(missing.statusCode, 404);
    assert.deepEqual((await app.inject({ method: 'GET', url: '/_sim/stats' })).json(), {
      refund_calls: 1,
      refunds_created: 1,
      duplicate_applications: 0,
    });
  });

  it('signs webhooks, retries a failing target, and reverses held batches when reordering', async () => {
    const received: Array<{ event: SandboxWebhookEvent; verified: boolean }> = [];
    let failuresLeft = 1;
    const fetch = (async (_url: string | URL | Request, init?: RequestInit) => {
      if (failuresLeft-- > 0) return new Response('nope', { status: 503 });
      const body = String(init!.body);
      const signature = new Headers(init!.headers).get('sandbox-signature') ?? undefined;
      received.push({ event: JSON.parse(body), verified: verifySandboxSignature('whsec_sim', body, signature) });
      return new Response('ok');
    }) as typeof globalThis.fetch;
    const { app } = sim({ fetch });
    await app.inject({ method: 'PUT', url: '/_sim/accounts/acct_sim/webhook', payload: { url: 'http://hooks.test/in', secret: 'whsec_sim' } });
    const ref = (await authorize(app)).json().id as string;

    await refund(app, ref, 100);
    await waitFor(() => received.length === 1);
    assert.equal(received[0].verified, true);
    const events = (await app.inject({ method: 'GET', url: `/_sim/events?payment_ref=${ref}` })).json().data;
    assert.equal(events[0].status, 'delivered');
    assert.equal(events[0].attempts, 2, 'one 503, then success');

    await app.inject({ method: 'PUT', url: '/_sim/faults', payload: { webhook: { reorder: true } } });
    for (const amount of [1, 2]) await app.inject({ method: 'POST', url: `/_sim/payments/${ref}/refunds`, payload: { amount } });
    assert.equal(received.length, 1, 'held, not sent');
    assert.deepEqual((await app.inject({ method: 'POST', url: '/_sim/webhooks/flush' })).json(), { released: 2 });
    await waitFor(() => received.length === 3);
    const cumulative = received.slice(1).map((r) => (r.event.type === 'payment.refunded' ? r.event.data.amount_refunded : -1));
    assert.deepEqual(cumulative, [103, 101], 'newest first');
  });
});

async function waitFor(predicate: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}
