/**
 * The Adyen connector over HTTP to the psp-sim's Adyen wire: the production code path, with only
 * the test endpoint (the operator's SETTLE_ADYEN_CHECKOUT_BASE) pointing at loopback.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConnectorUnknownOutcomeError, type Connector, type ConnectorContext } from '../../src/connectors/connector.js';
import { createAdyenConnector } from '../../src/connectors/adyen/adyen.connector.js';
import { startPspSim, type PspSimHandle } from '../../src/psp-sim/server.js';

let sim: PspSimHandle;
let connector: Connector;

const ctx = (over: Partial<ConnectorContext> = {}): ConnectorContext => ({
  accountId: 'acct_adyen_wire',
  shortId: 'ca_adyenwire01',
  testMode: true,
  settings: { environment: 'test' },
  credentials: { api_key: 'AQE_wire_unit_key_0123456789', merchant_account: 'SettleWireECOM' },
  webhookSecret: 'AB'.repeat(32),
  ...over,
});

before(async () => {
  sim = await startPspSim({ port: 0, wire: 'adyen' });
  connector = createAdyenConnector({ checkoutBase: sim.url, timeoutMs: 2000 });
});
after(() => sim.close());

const setFaults = (faults: object) =>
  fetch(`${sim.url}/_sim/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(faults) });
const simPayment = async (ref: string) => (await fetch(`${sim.url}/_sim/payments/${ref}`)).json() as Promise<any>;

async function captured(key: string, amount = 1000) {
  const auth = await connector.authorize(ctx(), { amount, currency: 'EUR', paymentMethod: 'pm_card_visa', capture: true, idempotencyKey: key, reference: `pay_${key}` });
  assert.equal(auth.outcome, 'captured');
  return auth.connectorRef!;
}

describe('Adyen connector over the wire', () => {
  it('authorizes and captures at once, reporting Adyen\'s pspReference and amount', async () => {
    const auth = await connector.authorize(ctx(), { amount: 1234, currency: 'EUR', paymentMethod: 'pm_card_mastercard', capture: true, idempotencyKey: 'w-auto', reference: 'pay_auto' });
    assert.ok(auth.outcome === 'captured');
    assert.equal(auth.amount, 1234);
    assert.match(auth.connectorRef!, /^[A-Z0-9]{16}$/);
    assert.equal((await simPayment(auth.connectorRef!)).amount_captured, 1234);
  });

  it('maps a refusal to a decline code and Settle\'s message, never Adyen\'s text', async () => {
    const auth = await connector.authorize(ctx(), { amount: 500, currency: 'EUR', paymentMethod: 'pm_card_declined_insufficient_funds', capture: true, idempotencyKey: 'w-decline', reference: 'pay_decline' });
    assert.ok(auth.outcome === 'declined');
    assert.deepEqual([auth.code, auth.message], ['insufficient_funds', 'The card has insufficient funds.']);
  });

  it('captures part of a manual authorization, and cancels another', async () => {
    const auth = await connector.authorize(ctx(), { amount: 1000, currency: 'EUR', paymentMethod: 'pm_card_visa', capture: false, idempotencyKey: 'w-manual', reference: 'pay_manual' });
    assert.equal(auth.outcome, 'authorized');
    // the capture's own pspReference (a later CAPTURE_FAILED names it), not the payment's
    const cap = await connector.capture(ctx(), { connectorRef: auth.connectorRef!, amount: 400, currency: 'EUR', idempotencyKey: 'w-cap' });
    assert.ok(cap.outcome === 'succeeded');
    assert.equal(cap.amountCaptured, 400);
    assert.match(cap.connectorRef!, /^[A-Z0-9]{16}$/);
    assert.notEqual(cap.connectorRef, auth.connectorRef);
    assert.deepEqual(await connector.capture(ctx(), { connectorRef: auth.connectorRef!, amount: 400, currency: 'EUR', idempotencyKey: 'w-cap' }), cap, 'a replay names the same capture');
    const other = await connector.authorize(ctx(), { amount: 700, currency: 'EUR', paymentMethod: 'pm_card_visa', capture: false, idempotencyKey: 'w-manual2', reference: 'pay_manual2' });
    assert.deepEqual(await connector.cancel(ctx(), { connectorRef: other.connectorRef!, idempotencyKey: 'w-cancel' }), { outcome: 'succeeded', connectorRef: other.connectorRef });
    assert.equal((await simPayment(other.connectorRef!)).status, 'canceled');
  });

  it('answers a refund pending (received) with its pspReference; a replay under the key is the same refund, once', async () => {
    const ref = await captured('w-refund');
    const req = { paymentRef: ref, amount: 300, currency: 'EUR', reason: 'duplicate' as const, idempotencyKey: 'settle_re_w1', reference: 're_w1' };
    const first = await connector.refund(ctx(), req);
    assert.equal(first.status, 'pending');
    assert.match(first.connectorRef!, /^[A-Z0-9]{16}$/);
    assert.deepEqual(await connector.refund(ctx(), req), first);
    const psp = await simPayment(ref);
    assert.equal(psp.amount_refunded, 300, 'refunded once');
    assert.equal(psp.refunds[0].reference, 're_w1');
    // the same key with another body: Adyen refuses it as in progress/conflicting — not a failure
    await assert.rejects(connector.refund(ctx(), { ...req, amount: 301 }), ConnectorUnknownOutcomeError);
  });

  it('reports an unknown payment as a definite failure, and a PSP error or a lost answer as an unknown outcome', async () => {
    const missing = await connector.refund(ctx(), { paymentRef: 'ZZZZZZZZZZZZZZZZ', amount: 100, currency: 'EUR', idempotencyKey: 'settle_re_w2', reference: 're_w2' });
    assert.deepEqual(missing, { status: 'failed', code: 'payment_not_found', message: 'The payment service provider does not know this payment.' });
    const ref = await captured('w-faults');
    await setFaults({ error_rate: 1, ops: ['refund'] });
    await assert.rejects(connector.refund(ctx(), { paymentRef: ref, amount: 100, currency: 'EUR', idempotencyKey: 'settle_re_w3', reference: 're_w3' }), ConnectorUnknownOutcomeError);
    await setFaults({ drop_response_rate: 1, ops: ['refund'] });
    await assert.rejects(connector.refund(ctx(), { paymentRef: ref, amount: 100, currency: 'EUR', idempotencyKey: 'settle_re_w4', reference: 're_w4' }), ConnectorUnknownOutcomeError);
    await setFaults({});
    // the lost answer's refund was applied: sent again under its key, Adyen answers with it
    const again = await connector.refund(ctx(), { paymentRef: ref, amount: 100, currency: 'EUR', idempotencyKey: 'settle_re_w4', reference: 're_w4' });
    assert.equal(again.status, 'pending');
    assert.equal((await simPayment(ref)).amount_refunded, 100);
  });

  it('sends nothing for an account without an API key', async () => {
    const ref = await captured('w-auth');
    const r = await connector.refund(ctx({ credentials: { api_key: '', merchant_account: 'SettleWireECOM' } }), { paymentRef: ref, amount: 100, currency: 'EUR', idempotencyKey: 'settle_re_w5', reference: 're_w5' })
      .catch((err) => err);
    assert.ok(r instanceof ConnectorUnknownOutcomeError);
    assert.equal((await simPayment(ref)).amount_refunded, 0, 'nothing happened at the PSP');
  });
});
