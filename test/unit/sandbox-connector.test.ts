import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectorUnknownOutcomeError, type ConnectorContext } from '../../src/connectors/connector.js';
import { createSandboxConnector, sharedSandboxPsp } from '../../src/connectors/sandbox/sandbox.connector.js';
import { SandboxPsp } from '../../src/psp-sim/psp-model.js';
import { signSandboxWebhook } from '../../src/connectors/sandbox/sandbox-signature.js';

function ctx(settings: Record<string, unknown> = {}, credentials: Record<string, unknown> = {}): ConnectorContext {
  return {
    accountId: 'acct_conn',
    shortId: 'ca_0123456789',
    testMode: true,
    settings,
    credentials,
    webhookSecret: 'whsec_conn',
  };
}

const refundReq = (paymentRef: string, idempotencyKey: string, amount = 100) => ({
  paymentRef,
  amount,
  currency: 'INR',
  reason: null,
  idempotencyKey,
  reference: `re_${idempotencyKey}`,
});

describe('sandbox connector, in process', () => {
  it('authorizes and refunds through the given SandboxPsp', async () => {
    const psp = new SandboxPsp();
    const connector = createSandboxConnector({ psp });
    assert.equal(connector.name, 'sandbox');
    const auth = await connector.authorize(ctx(), {
      amount: 1000,
      currency: 'INR',
      paymentMethod: 'pm_card_visa',
      capture: true,
      idempotencyKey: 'a1',
      reference: 'pay_1',
    });
    assert.equal(auth.outcome, 'captured');
    const ref = auth.connectorRef!;
    assert.equal(psp.paymentView(ref)?.reference, 'pay_1');
    const r = await connector.refund(ctx(), refundReq(ref, 'k1', 400));
    assert.equal(r.status, 'succeeded');
    assert.deepEqual(psp.totals(ref).refunds.map((x) => [x.reference, x.idempotency_key]), [['re_k1', 'k1']]);
    assert.deepEqual(await connector.refundStatus(ctx(), { paymentRef: ref, idempotencyKey: 'k1' }), r);
  });

  it('takes the pending delay from settings.pending_delay_ms', async () => {
    const psp = new SandboxPsp();
    const connector = createSandboxConnector({ psp });
    const auth = await connector.authorize(ctx(), {
      amount: 1000,
      currency: 'INR',
      paymentMethod: 'pm_card_refund_pending',
      capture: true,
      idempotencyKey: 'a2',
      reference: 'pay_2',
    });
    const c = ctx({ pending_delay_ms: 40 });
    assert.equal((await connector.refund(c, refundReq(auth.connectorRef!, 'p1'))).status, 'pending');
    await sleep(80);
    assert.equal((await connector.refundStatus(c, { paymentRef: auth.connectorRef!, idempotencyKey: 'p1' })).status, 'succeeded');
  });

  it('shares one PSP per process by default', async () => {
    const auth = await createSandboxConnector().authorize(ctx(), {
      amount: 1000,
      currency: 'INR',
      paymentMethod: 'pm_card_visa',
      capture: false,
      idempotencyKey: 'shared-1',
      reference: 'pay_3',
    });
    assert.equal(sharedSandboxPsp().paymentView(auth.connectorRef!)?.status, 'authorized');
    const cap = await createSandboxConnector().capture(ctx(), { connectorRef: auth.connectorRef!, amount: 1000, currency: 'INR', idempotencyKey: 'c1' });
    assert.equal(cap.outcome, 'succeeded');
  });

  it('verifies webhooks with the account secret, whatever the header case', () => {
    const connector = createSandboxConnector({ psp: new SandboxPsp() });
    const rawBody = '{"id":"sbevt_x"}';
    const header = signSandboxWebhook('whsec_conn', rawBody);
    assert.equal(connector.verifyWebhook(ctx(), { rawBody, headers: { 'sandbox-signature': header } }), true);
    assert.equal(connector.verifyWebhook(ctx(), { rawBody, headers: { 'Sandbox-Signature': header } }), true);
    assert.equal(connector.verifyWebhook({ ...ctx(), webhookSecret: 'whsec_other' }, { rawBody, headers: { 'sandbox-signature': header } }), false);
    assert.equal(connector.verifyWebhook(ctx(), { rawBody, headers: {} }), false);
  });
});

interface Seen {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
}

/** A fetch that records requests and answers with `respond` (or throws what it throws). */
function fakeFetch(respond: (seen: Seen, signal: AbortSignal) => Promise<Response> | Response): { fetch: typeof fetch; seen: Seen[] } {
  const seen: Seen[] = [];
  const f = (async (input: string | URL | Request, init?: RequestInit) => {
    const s: Seen = {
      url: String(input),
      method: init?.method ?? 'GET',
      headers: Object.fromEntries(new Headers(init?.headers).entries()),
      body: typeof init?.body === 'string' ? JSON.parse(init.body) : undefined,
    };
    seen.push(s);
    return respond(s, init!.signal!);
  }) as typeof fetch;
  return { fetch: f, seen };
}

const json = (status: number, body: unknown): Response =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

const refundObject = (status: string, extra: Record<string, unknown> = {}) => ({
  object: 'refund',
  id: 'sbx_re_1',
  payment_ref: 'sbx_pay_1',
  amount: 100,
  currency: 'INR',
  status,
  ...extra,
});

describe('sandbox connector, over HTTP', () => {
  const http = ctx({ base_url: 'http://psp.test/' }, { api_key: 'sk_sandbox_acct' });

  it('sends the key, account and credentials, and maps a refund object', async () => {
    const { fetch, seen } = fakeFetch(() => json(200, refundObject('succeeded')));
    const connector = createSandboxConnector({ fetch });
    assert.deepEqual(await connector.refund(http, refundReq('sbx_pay_1', 'settle_re_1')), { status: 'succeeded', connectorRef: 'sbx_re_1' });
    assert.equal(seen[0].url, 'http://psp.test/v1/refunds');
    assert.equal(seen[0].method, 'POST');
    assert.equal(seen[0].headers['idempotency-key'], 'settle_re_1');
    assert.equal(seen[0].headers['sandbox-account'], 'acct_conn');
    assert.equal(seen[0].headers.authorization, 'Bearer sk_sandbox_acct');
    assert.deepEqual(seen[0].body, {
      payment_ref: 'sbx_pay_1',
      amount: 100,
      currency: 'INR',
      reason: null,
      reference: 're_settle_re_1',
      pending_delay_ms: 2000,
    });
  });

  it("uses 'sk_sandbox' when the account has no api_key", async () => {
    const { fetch, seen } = fakeFetch(() => json(200, refundObject('pending')));
    const r = await createSandboxConnector({ fetch }).refund(ctx({ base_url: 'http://psp.test' }), refundReq('sbx_pay_1', 'k'));
    assert.equal(r.status, 'pending');
    assert.equal(seen[0].headers.authorization, 'Bearer sk_sandbox');
  });

  it('maps a failed refund object and a 4xx PSP error to definite failures', async () => {
    const failed = fakeFetch(() => json(200, refundObject('failed', { failure_code: 'refund_rejected', failure_message: 'no' })));
    assert.deepEqual(await createSandboxConnector({ fetch: failed.fetch }).refund(http, refundReq('sbx_pay_1', 'k')), {
      status: 'failed',
      connectorRef: 'sbx_re_1',
      code: 'refund_rejected',
      message: 'The card issuer rejected the refund.', // Settle's words, not the server's
    });
    const refused = fakeFetch(() => json(400, { error: { code: 'amount_exceeds_refundable', message: 'too much' } }));
    assert.deepEqual(await createSandboxConnector({ fetch: refused.fetch }).refund(http, refundReq('sbx_pay_1', 'k')), {
      status: 'failed',
      code: 'amount_exceeds_refundable',
      message: 'The amount exceeds what the payment service provider can still refund.',
    });
  });

  it('maps a 402 decline to a declined authorization with its payment ref', async () => {
    const { fetch } = fakeFetch(() => json(402, { error: { code: 'card_declined', message: 'Your card was declined.', payment_ref: 'sbx_pay_9' } }));
    const r = await createSandboxConnector({ fetch }).authorize(http, {
      amount: 1,
      currency: 'INR',
      paymentMethod: 'pm_card_declined',
      capture: true,
      idempotencyKey: 'a',
      reference: 'p',
    });
    assert.deepEqual(r, { outcome: 'declined', code: 'card_declined', message: 'The card was declined.', connectorRef: 'sbx_pay_9' });
  });

  it('asks for refund status by ref when it has one, else by key', async () => {
    const { fetch, seen } = fakeFetch(() => json(404, { error: { code: 'refund_not_found', message: 'none' } }));
    const connector = createSandboxConnector({ fetch });
    const byKey = await connector.refundStatus(http, { paymentRef: 'sbx_pay_1', idempotencyKey: 'settle re/1' });
    assert.deepEqual(byKey, { status: 'failed', code: 'refund_not_found', message: 'The payment service provider has no such refund.' });
    assert.equal(seen[0].url, 'http://psp.test/v1/refunds?payment_ref=sbx_pay_1&idempotency_key=settle%20re%2F1');
    assert.equal(seen[0].method, 'GET');
    await connector.refundStatus(http, { connectorRef: 'sbx_re_7', paymentRef: 'sbx_pay_1', idempotencyKey: 'k' });
    assert.match(seen[1].url, /^http:\/\/psp\.test\/v1\/refunds\/sbx_re_7\?/);
  });

  const unknowns: Array<[string, () => Promise<Response> | Response]> = [
    ['a 500', () => json(500, { error: { code: 'internal_error', message: 'x' } })],
    ['a 503 without body', () => new Response('', { status: 503 })],
    ['a 429', () => json(429, { error: { code: 'rate_limited', message: 'slow down' } })],
    ['a 404 that is not the PSP speaking', () => new Response('<html>Not Found</html>', { status: 404 })],
    ['a 2xx with an unreadable body', () => new Response('ok', { status: 200 })],
    ['a 2xx with an unexpected object', () => json(200, { object: 'payment', id: 'x', status: 'captured' })],
    ['a connection error', () => Promise.reject(new TypeError('fetch failed', { cause: new Error('ECONNREFUSED') }))],
  ];
  for (const [name, respond] of unknowns) {
    it(`treats ${name} as an unknown outcome`, async () => {
      const { fetch } = fakeFetch(respond);
      await assert.rejects(createSandboxConnector({ fetch }).refund(http, refundReq('sbx_pay_1', 'k')), ConnectorUnknownOutcomeError);
    });
  }

  it('gives up after timeoutMs with an unknown outcome', async () => {
    const { fetch } = fakeFetch(
      (_seen, signal) => new Promise<Response>((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
    );
    // AbortSignal.timeout is unref'd; a real socket would keep the loop alive, this fake does not.
    const keepAlive = setTimeout(() => {}, 5000);
    const started = Date.now();
    await assert.rejects(
      createSandboxConnector({ fetch, timeoutMs: 50 }).refund(http, refundReq('sbx_pay_1', 'k')),
      (err: unknown) => err instanceof ConnectorUnknownOutcomeError && /timed out after 50 ms/.test(err.message),
    );
    clearTimeout(keepAlive);
    assert.ok(Date.now() - started >= 45);
  });

  it('maps capture and cancel answers', async () => {
    // The PSP's amount_captured is what is reported, not the amount asked for.
    const ok = fakeFetch(() => json(200, { object: 'payment', id: 'sbx_pay_1', status: 'captured', amount_captured: 4 }));
    const connector = createSandboxConnector({ fetch: ok.fetch });
    assert.deepEqual(await connector.capture(http, { connectorRef: 'sbx_pay_1', amount: 5, currency: 'INR', idempotencyKey: 'c' }), {
      outcome: 'succeeded',
      connectorRef: 'sbx_pay_1',
      amountCaptured: 4,
    });
    const unreadable = fakeFetch(() => json(200, { object: 'payment', id: 'sbx_pay_1', status: 'captured' }));
    await assert.rejects(
      createSandboxConnector({ fetch: unreadable.fetch }).capture(http, { connectorRef: 'sbx_pay_1', amount: 5, currency: 'INR', idempotencyKey: 'c' }),
      ConnectorUnknownOutcomeError,
    );
    assert.equal(ok.seen[0].url, 'http://psp.test/v1/payments/sbx_pay_1/capture');
    const no = fakeFetch(() => json(409, { error: { code: 'payment_already_captured', message: 'm' } }));
    assert.deepEqual(await createSandboxConnector({ fetch: no.fetch }).cancel(http, { connectorRef: 'sbx_pay_1', idempotencyKey: 'x' }), {
      outcome: 'rejected',
      code: 'payment_already_captured',
      message: 'The payment is already captured at the payment service provider.',
    });
  });
});
