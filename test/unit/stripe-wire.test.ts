/**
 * The psp-sim's Stripe wire, checked against sources nobody here wrote: the official `stripe` SDK
 * talks to it unmodified (its own request encoding, error classes and webhook verification), and
 * the objects it serves keep the fields and JSON types of Stripe's published fixtures.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Stripe from 'stripe';
import { startPspSim, type PspSimHandle } from '../../src/psp-sim/server.js';

/** Stripe's published fixtures (stripe/openapi, MIT), kept unmodified beside their licence. */
const FIXTURES = new URL('../../../test/psp-specs/stripe/fixtures3.json', import.meta.url);
const KEY = 'sk_test_wire_suite';
const WEBHOOK_SECRET = 'whsec_wire_suite';

function fixture(name: string): Record<string, unknown> {
  return (JSON.parse(readFileSync(FIXTURES, 'utf8')) as { resources: Record<string, Record<string, unknown>> }).resources[name];
}

const jsonType = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/**
 * Every field of Stripe's fixture object is present in ours, and where both values are set they
 * have the same JSON type, recursively for nested objects. (Null is allowed either way: the
 * fixture shows one example, and the SDK's types say which fields may be null.)
 */
function assertShapeOf(ours: unknown, theirs: unknown, path: string): void {
  if (jsonType(ours) === 'null' || jsonType(theirs) === 'null') return;
  assert.equal(jsonType(ours), jsonType(theirs), `${path}: ${jsonType(ours)} where Stripe has ${jsonType(theirs)}`);
  if (jsonType(theirs) === 'array') {
    const [t] = theirs as unknown[];
    for (const [i, o] of (ours as unknown[]).entries()) if (t !== undefined) assertShapeOf(o, t, `${path}[${i}]`);
  } else if (jsonType(theirs) === 'object') {
    const o = ours as Record<string, unknown>;
    const t = theirs as Record<string, unknown>;
    const top = !path.includes('.');
    for (const key of Object.keys(t)) {
      // Nested objects that Stripe documents as polymorphic (the fixture shows another variant)
      // are compared on the keys both have; top-level objects must have every key.
      if (top) assert.ok(key in o, `${path} lacks Stripe's field ${key}`);
      if (key in o) assertShapeOf(o[key], t[key], `${path}.${key}`);
    }
  }
}

let sim: PspSimHandle;
let stripe: Stripe;
let receiver: Server;
const received: Array<{ body: string; signature: string }> = [];

before(async () => {
  sim = await startPspSim({ port: 0, wire: 'stripe' });
  const url = new URL(sim.url);
  stripe = new Stripe(KEY, { host: url.hostname, port: Number(url.port), protocol: 'http', maxNetworkRetries: 0, telemetry: false });
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ body, signature: String(req.headers['stripe-signature']) });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const port = (receiver.address() as AddressInfo).port;
  const res = await fetch(`${sim.url}/_sim/accounts/${KEY}/webhook`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url: `http://127.0.0.1:${port}/`, secret: WEBHOOK_SECRET }),
  });
  assert.equal(res.status, 200);
});

after(async () => {
  await sim.close();
  await new Promise((resolve) => receiver.close(resolve));
});

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('psp-sim Stripe wire, through the official stripe SDK', () => {
  it('creates and confirms a PaymentIntent shaped like Stripe\'s fixture', async () => {
    const intent: Stripe.PaymentIntent = await stripe.paymentIntents.create(
      { amount: 2000, currency: 'eur', payment_method: 'pm_card_visa', confirm: true, metadata: { settle_payment_id: 'pay_1' } },
      { idempotencyKey: 'wire-pi-1' },
    );
    assert.equal(intent.status, 'succeeded');
    assert.equal(intent.amount_received, 2000);
    assert.match(intent.id, /^pi_/);
    assert.equal(intent.currency, 'eur');
    assert.deepEqual(intent.metadata, { settle_payment_id: 'pay_1' });
    assertShapeOf(intent, fixture('payment_intent'), 'payment_intent');
  });

  it('replays an idempotent request and refuses the key with other parameters', async () => {
    const params = { amount: 500, currency: 'usd', payment_method: 'pm_card_visa', confirm: true };
    const first = await stripe.paymentIntents.create(params, { idempotencyKey: 'wire-idem' });
    const again = await stripe.paymentIntents.create(params, { idempotencyKey: 'wire-idem' });
    assert.equal(again.id, first.id);
    assert.equal(again.lastResponse.headers['idempotent-replayed'], 'true');
    await assert.rejects(
      stripe.paymentIntents.create({ ...params, amount: 501 }, { idempotencyKey: 'wire-idem' }),
      (err: unknown) => err instanceof Stripe.errors.StripeIdempotencyError && err.statusCode === 400,
    );
  });

  it('declines a declining test card with a card_error, its decline_code and the PaymentIntent', async () => {
    await assert.rejects(
      stripe.paymentIntents.create({ amount: 700, currency: 'eur', payment_method: 'pm_card_chargeDeclinedInsufficientFunds', confirm: true }, { idempotencyKey: 'wire-decline' }),
      (err: unknown) => {
        assert.ok(err instanceof Stripe.errors.StripeCardError);
        assert.equal(err.statusCode, 402);
        assert.equal(err.code, 'card_declined');
        assert.equal(err.decline_code, 'insufficient_funds');
        assert.equal(err.payment_intent?.status, 'requires_payment_method');
        return true;
      },
    );
  });

  it('captures part of a manual PaymentIntent and cancels another', async () => {
    const intent = await stripe.paymentIntents.create(
      { amount: 1000, currency: 'eur', payment_method: 'pm_card_visa', confirm: true, capture_method: 'manual' },
      { idempotencyKey: 'wire-manual' },
    );
    assert.equal(intent.status, 'requires_capture');
    assert.equal(intent.amount_capturable, 1000);
    const captured = await stripe.paymentIntents.capture(intent.id, { amount_to_capture: 600 }, { idempotencyKey: 'wire-cap' });
    assert.equal(captured.status, 'succeeded');
    assert.equal(captured.amount_received, 600);
    await assert.rejects(stripe.paymentIntents.capture(intent.id, {}, { idempotencyKey: 'wire-cap-2' }), (err: unknown) =>
      err instanceof Stripe.errors.StripeInvalidRequestError && err.code === 'payment_intent_unexpected_state');

    const other = await stripe.paymentIntents.create(
      { amount: 800, currency: 'eur', payment_method: 'pm_card_visa', confirm: true, capture_method: 'manual' },
      { idempotencyKey: 'wire-manual-2' },
    );
    const canceled = await stripe.paymentIntents.cancel(other.id, {}, { idempotencyKey: 'wire-cancel' });
    assert.equal(canceled.status, 'canceled');
    assert.equal(typeof canceled.canceled_at, 'number');
  });

  it('refunds with reason and metadata, retrieves and lists the refund, shaped like Stripe\'s fixture', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 3000, currency: 'eur', payment_method: 'pm_card_visa', confirm: true }, { idempotencyKey: 'wire-pi-refund' });
    const refund: Stripe.Refund = await stripe.refunds.create(
      { payment_intent: intent.id, amount: 1200, reason: 'requested_by_customer', metadata: { settle_refund_id: 're_settle_1' } },
      { idempotencyKey: 'wire-refund-1' },
    );
    assert.equal(refund.status, 'succeeded');
    assert.equal(refund.amount, 1200);
    assert.equal(refund.payment_intent, intent.id);
    assert.equal(refund.reason, 'requested_by_customer');
    assert.deepEqual(refund.metadata, { settle_refund_id: 're_settle_1' });
    assertShapeOf(refund, fixture('refund'), 'refund');

    const retrieved = await stripe.refunds.retrieve(refund.id);
    assert.equal(retrieved.id, refund.id);
    const listed: Stripe.Refund[] = [];
    for await (const r of stripe.refunds.list({ payment_intent: intent.id, limit: 1 })) listed.push(r);
    assert.deepEqual(listed.map((r) => r.id), [refund.id]);

    await assert.rejects(
      stripe.refunds.create({ payment_intent: intent.id, amount: 1801 }, { idempotencyKey: 'wire-refund-over' }),
      (err: unknown) => err instanceof Stripe.errors.StripeInvalidRequestError && err.code === 'amount_too_large',
    );
  });

  it('sends charge.refunded and refund.failed events that the SDK verifies, shaped like Stripe\'s fixtures', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 900, currency: 'eur', payment_method: 'pm_card_visa', confirm: true }, { idempotencyKey: 'wire-pi-events' });
    const refund = await stripe.refunds.create({ payment_intent: intent.id, amount: 400, metadata: { settle_refund_id: 're_settle_ev' } }, { idempotencyKey: 'wire-refund-ev' });
    const events = (): Stripe.Event[] =>
      received.map((r) => Stripe.webhooks.constructEvent(r.body, r.signature, WEBHOOK_SECRET));

    const refunded = await waitFor('charge.refunded', () =>
      events().find((e): e is Stripe.ChargeRefundedEvent => e.type === 'charge.refunded' && e.data.object.payment_intent === intent.id));
    assert.equal(refunded.data.object.amount_refunded, 400);
    assert.deepEqual(refunded.data.object.refunds?.data.map((r) => r.id), [refund.id]);
    assertShapeOf(refunded, fixture('event'), 'event');
    assertShapeOf(refunded.data.object, fixture('charge'), 'charge');

    // the bank rejects it later: Stripe's refund.failed, with the refund's failure_reason
    const fail = await fetch(`${sim.url}/_sim/refunds/${refund.id}/fail`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: 'insufficient_funds' }),
    });
    assert.equal(fail.status, 200);
    const failed = await waitFor('refund.failed', () =>
      events().find((e): e is Stripe.RefundFailedEvent => e.type === 'refund.failed' && e.data.object.id === refund.id));
    assert.equal(failed.data.object.status, 'failed');
    assert.equal(failed.data.object.failure_reason, 'insufficient_funds');
    assert.deepEqual(failed.data.object.metadata, { settle_refund_id: 're_settle_ev' });

    // a tampered body fails the SDK's verification
    const { body, signature } = received[0];
    assert.throws(() => Stripe.webhooks.constructEvent(body.replace('"livemode":false', '"livemode":true'), signature, WEBHOOK_SECRET));
  });

  it('answers an injected fault with Stripe\'s api_error, which the SDK raises as a StripeAPIError', async () => {
    await fetch(`${sim.url}/_sim/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error_rate: 1, ops: ['authorize'] }) });
    try {
      await assert.rejects(
        stripe.paymentIntents.create({ amount: 100, currency: 'eur', payment_method: 'pm_card_visa', confirm: true }, { idempotencyKey: 'wire-fault' }),
        (err: unknown) => err instanceof Stripe.errors.StripeAPIError && err.statusCode === 500,
      );
    } finally {
      await fetch(`${sim.url}/_sim/faults`, { method: 'DELETE' });
    }
    // nothing was applied, so the retry under the same key does the work
    const intent = await stripe.paymentIntents.create({ amount: 100, currency: 'eur', payment_method: 'pm_card_visa', confirm: true }, { idempotencyKey: 'wire-fault' });
    assert.equal(intent.status, 'succeeded');
  });

  it('refuses a request without a Stripe secret key', async () => {
    const res = await fetch(`${sim.url}/v1/payment_intents`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'amount=1' });
    assert.equal(res.status, 401);
    const body = (await res.json()) as { error: { type: string } };
    assert.equal(body.error.type, 'invalid_request_error');
  });
});
