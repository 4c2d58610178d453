/**
 * The Stripe connector over HTTP to the psp-sim's Stripe wire: the production code path, with only
 * the API base (the operator's SETTLE_STRIPE_API_BASE) pointing at loopback.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Stripe from 'stripe';
import { ConnectorUnknownOutcomeError, type Connector, type ConnectorContext } from '../../src/connectors/connector.js';
import { createStripeConnector, parseStripeWebhook } from '../../src/connectors/stripe/stripe.connector.js';
import { startPspSim, type PspSimHandle } from '../../src/psp-sim/server.js';

let sim: PspSimHandle;
let connector: Connector;

const ctx = (over: Partial<ConnectorContext> = {}): ConnectorContext => ({
  accountId: 'acct_stripe_unit',
  shortId: 'ca_stripeunit01',
  testMode: true,
  settings: {},
  credentials: { secret_key: 'sk_test_connector_unit' },
  webhookSecret: 'whsec_connector_unit',
  ...over,
});

before(async () => {
  sim = await startPspSim({ port: 0, wire: 'stripe' });
  connector = createStripeConnector({ apiBase: sim.url, timeoutMs: 2000 });
});
after(() => sim.close());

const setFaults = (faults: object) =>
  fetch(`${sim.url}/_sim/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(faults) });

async function captured(key: string, amount = 1000) {
  const auth = await connector.authorize(ctx(), { amount, currency: 'EUR', paymentMethod: 'pm_card_visa', capture: true, idempotencyKey: key, reference: `pay_${key}` });
  assert.equal(auth.outcome, 'captured');
  return auth.connectorRef!;
}

describe('Stripe connector', () => {
  it('authorizes and captures in one step, reporting the amount Stripe received', async () => {
    const auth = await connector.authorize(ctx(), { amount: 1234, currency: 'EUR', paymentMethod: 'pm_card_visa', capture: true, idempotencyKey: 'c-auto', reference: 'pay_auto' });
    assert.deepEqual({ outcome: auth.outcome, amount: auth.outcome !== 'declined' && auth.amount }, { outcome: 'captured', amount: 1234 });
    assert.match(auth.connectorRef!, /^pi_/);
  });

  it('maps a decline to card_declined details with Stripe\'s decline_code and Settle\'s own message', async () => {
    const auth = await connector.authorize(ctx(), { amount: 500, currency: 'EUR', paymentMethod: 'pm_card_chargeDeclinedInsufficientFunds', capture: true, idempotencyKey: 'c-decline', reference: 'pay_decline' });
    assert.equal(auth.outcome, 'declined');
    assert.ok(auth.outcome === 'declined');
    assert.equal(auth.code, 'insufficient_funds');
    assert.equal(auth.message, 'The card has insufficient funds.');
    assert.match(auth.connectorRef!, /^pi_/);
  });

  it('captures part of an authorization and refuses a second capture with Settle\'s message, not Stripe\'s', async () => {
    const auth = await connector.authorize(ctx(), { amount: 1000, currency: 'EUR', paymentMethod: 'pm_card_visa', capture: false, idempotencyKey: 'c-manual', reference: 'pay_manual' });
    assert.equal(auth.outcome, 'authorized');
    const cap = await connector.capture(ctx(), { connectorRef: auth.connectorRef!, amount: 400, currency: 'EUR', idempotencyKey: 'c-cap' });
    assert.deepEqual(cap, { outcome: 'succeeded', connectorRef: auth.connectorRef, amountCaptured: 400 });
    const again = await connector.capture(ctx(), { connectorRef: auth.connectorRef!, amount: 400, currency: 'EUR', idempotencyKey: 'c-cap-other' });
    assert.equal(again.outcome, 'rejected');
    assert.ok(again.outcome === 'rejected');
    assert.equal(again.code, 'payment_unexpected_state');
    assert.doesNotMatch(again.message, /PaymentIntent|pi_/);
  });

  it('refuses a capture retried under its key with another amount instead of booking it', async () => {
    const auth = await connector.authorize(ctx(), { amount: 1000, currency: 'EUR', paymentMethod: 'pm_card_visa', capture: false, idempotencyKey: 'c-manual-2', reference: 'pay_manual_2' });
    await connector.capture(ctx(), { connectorRef: auth.connectorRef!, amount: 300, currency: 'EUR', idempotencyKey: 'c-cap-2' });
    const retry = await connector.capture(ctx(), { connectorRef: auth.connectorRef!, amount: 700, currency: 'EUR', idempotencyKey: 'c-cap-2' });
    assert.equal(retry.outcome, 'rejected');
  });

  it('cancels an authorization', async () => {
    const auth = await connector.authorize(ctx(), { amount: 900, currency: 'EUR', paymentMethod: 'pm_card_visa', capture: false, idempotencyKey: 'c-void', reference: 'pay_void' });
    assert.deepEqual(await connector.cancel(ctx(), { connectorRef: auth.connectorRef!, idempotencyKey: 'c-void-1' }), { outcome: 'succeeded', connectorRef: auth.connectorRef });
  });

  it('refunds with the mapped reason and the Settle refund id in metadata; replays under the same key', async () => {
    const ref = await captured('c-refund');
    const req = { paymentRef: ref, amount: 300, currency: 'EUR', reason: 'customer_request' as const, idempotencyKey: 'settle_re_unit1', reference: 're_unit1' };
    const first = await connector.refund(ctx(), req);
    const again = await connector.refund(ctx(), req);
    assert.equal(first.status, 'succeeded');
    assert.equal(again.connectorRef, first.connectorRef);
    const stripe = new Stripe('sk_test_connector_unit', { host: '127.0.0.1', port: Number(new URL(sim.url).port), protocol: 'http' });
    const atStripe = await stripe.refunds.retrieve(first.connectorRef!);
    assert.equal(atStripe.reason, 'requested_by_customer');
    assert.equal(atStripe.metadata?.settle_refund_id, 're_unit1');
  });

  it('finds a refund whose answer was lost by its idempotency key, and reports an unknown key as refund_not_found', async () => {
    const ref = await captured('c-lost');
    await setFaults({ drop_response_rate: 1, ops: ['refund'] });
    try {
      await assert.rejects(
        connector.refund(ctx(), { paymentRef: ref, amount: 250, currency: 'EUR', idempotencyKey: 'settle_re_lost', reference: 're_lost' }),
        ConnectorUnknownOutcomeError,
      );
    } finally {
      await fetch(`${sim.url}/_sim/faults`, { method: 'DELETE' });
    }
    const status = await connector.refundStatus(ctx(), { paymentRef: ref, idempotencyKey: 'settle_re_lost' });
    assert.equal(status.status, 'succeeded');
    const none = await connector.refundStatus(ctx(), { paymentRef: ref, idempotencyKey: 'settle_re_never' });
    assert.deepEqual(none.status === 'failed' && none.code, 'refund_not_found');
  });

  it('treats an injected 500 as an unknown outcome', async () => {
    const ref = await captured('c-500');
    await setFaults({ error_rate: 1, ops: ['refund'] });
    try {
      await assert.rejects(connector.refund(ctx(), { paymentRef: ref, amount: 1, currency: 'EUR', idempotencyKey: 'settle_re_500', reference: 're_500' }), ConnectorUnknownOutcomeError);
    } finally {
      await fetch(`${sim.url}/_sim/faults`, { method: 'DELETE' });
    }
  });

  it('refuses a refund above what is left with Settle\'s code and message', async () => {
    const ref = await captured('c-over', 500);
    const res = await connector.refund(ctx(), { paymentRef: ref, amount: 501, currency: 'EUR', idempotencyKey: 'settle_re_over', reference: 're_over' });
    assert.equal(res.status, 'failed');
    assert.ok(res.status === 'failed');
    assert.equal(res.code, 'amount_too_large');
    assert.doesNotMatch(res.message, /unrefunded|pi_|ch_/);
  });

  it('reads what Stripe did for a payment: captured, refunded, every refund with its reference', async () => {
    const ref = await captured('c-state');
    const api = await connector.refund(ctx(), { paymentRef: ref, amount: 200, currency: 'EUR', idempotencyKey: 'settle_re_state', reference: 're_state' });
    const dash = await fetch(`${sim.url}/_sim/payments/${ref}/refunds`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amount: 100 }) });
    assert.equal(dash.status, 201);
    const state = await connector.paymentState(ctx(), { paymentRef: ref });
    assert.equal(state.status, 'captured');
    assert.equal(state.amountCaptured, 1000);
    assert.equal(state.amountRefunded, 300);
    assert.deepEqual(state.refunds?.map((r) => [r.connectorRef === api.connectorRef, r.amount, r.reference]), [[true, 200, 're_state'], [false, 100, null]]);
    const missing = await connector.paymentState(ctx(), { paymentRef: 'pi_doesnotexist' });
    assert.equal(missing.status, 'not_found');
  });

  it('never uses a live key in test mode', async () => {
    await assert.rejects(
      connector.authorize(ctx({ credentials: { secret_key: 'sk_live_x' } }), { amount: 1, currency: 'EUR', paymentMethod: 'pm_card_visa', capture: true, idempotencyKey: 'c-live', reference: 'pay_live' }),
      ConnectorUnknownOutcomeError,
    );
  });

  it('verifies Stripe-Signature with the account\'s secret and maps refund events', () => {
    const refund = { id: 're_1', object: 'refund', amount: 300, status: 'failed', failure_reason: 'lost_or_stolen_card', payment_intent: 'pi_1', metadata: { settle_refund_id: 're_settle' } };
    const body = JSON.stringify({ id: 'evt_1', object: 'event', type: 'refund.failed', created: 1, data: { object: refund } });
    const header = Stripe.webhooks.generateTestHeaderString({ payload: body, secret: 'whsec_connector_unit' });
    assert.equal(connector.verifyWebhook(ctx(), { rawBody: body, headers: { 'stripe-signature': header } }), true);
    assert.equal(connector.verifyWebhook(ctx({ webhookSecret: 'whsec_other' }), { rawBody: body, headers: { 'stripe-signature': header } }), false);
    assert.equal(connector.verifyWebhook(ctx(), { rawBody: body, headers: {} }), false);
    const old = Stripe.webhooks.generateTestHeaderString({ payload: body, secret: 'whsec_connector_unit', timestamp: Math.floor(Date.now() / 1000) - 3600 });
    assert.equal(connector.verifyWebhook(ctx(), { rawBody: body, headers: { 'stripe-signature': old } }), false);
    assert.deepEqual(parseStripeWebhook(body), {
      id: 'evt_1',
      type: 'refund.updated',
      paymentRef: 'pi_1',
      refund: { connectorRef: 're_1', amount: 300, status: 'failed', reference: 're_settle', failureCode: 'card_lost_or_stolen', failureMessage: 'The card was reported lost or stolen; the refund could not be sent.' },
    });
    assert.throws(() => parseStripeWebhook(JSON.stringify({ id: 'evt_2', object: 'event', type: 'customer.created', data: { object: {} } })), /unexpected event type/);
  });
});
