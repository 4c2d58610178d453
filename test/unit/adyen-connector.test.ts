/**
 * The Adyen connector's own logic: where a request may go (a live account never reaches the
 * operator's test base), how notifications are verified (HMAC as Adyen documents it, signed here
 * with node:crypto) and mapped to connector events. The calls over HTTP are covered against the
 * psp-sim's Adyen wire in test/unit/adyen-connector-wire.test.ts and the end-to-end suites.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectorUnknownOutcomeError, type ConnectorContext } from '../../src/connectors/connector.js';
import { ADYEN_ACK, adyenCheckoutEndpoint, createAdyenConnector, parseAdyenNotification } from '../../src/connectors/adyen/adyen.connector.js';
import { adyenDeclineCode } from '../../src/connectors/adyen/adyen.mapping.js';
import { newHmacKey, notification, pspReference } from '../helpers/adyen-notifications.js';
import { newId } from '../../src/lib/ids.js';

const HMAC = newHmacKey();
const MERCHANT = 'SettleUnitECOM';
const ctx = (over: Partial<ConnectorContext> = {}): ConnectorContext => ({
  accountId: 'acct_adyen_unit',
  shortId: 'ca_adyenunit01',
  testMode: true,
  settings: { environment: 'test' },
  credentials: { api_key: 'AQE_unit_key_0123456789', merchant_account: MERCHANT },
  webhookSecret: HMAC,
  ...over,
});
const connector = createAdyenConnector({ checkoutBase: 'http://127.0.0.1:9', timeoutMs: 500 });
const verify = (c: ConnectorContext, rawBody: string) => connector.verifyWebhook(c, { rawBody, headers: {} });

describe('Adyen connector: endpoints', () => {
  it('sends a test account to the operator\'s base (or Adyen\'s test endpoint) and a live account only to its live prefix', () => {
    assert.equal(adyenCheckoutEndpoint(ctx(), 'http://127.0.0.1:4100'), 'http://127.0.0.1:4100/v71');
    assert.equal(adyenCheckoutEndpoint(ctx()), 'https://checkout-test.adyen.com/v71');
    const live = { testMode: false, settings: { environment: 'live', live_url_prefix: '1797a841fbb37ca7-AdyenDemo' } };
    assert.equal(adyenCheckoutEndpoint(live, 'http://127.0.0.1:4100'), 'https://1797a841fbb37ca7-AdyenDemo-checkout-live.adyenpayments.com/checkout/v71');
  });

  it('sends nothing for an account whose environment does not match its mode, or a live one without a valid prefix', () => {
    for (const bad of [
      { testMode: false, settings: { environment: 'test' } },
      { testMode: true, settings: { environment: 'live', live_url_prefix: 'abc' } },
      { testMode: false, settings: { environment: 'live' } },
      { testMode: false, settings: { environment: 'live', live_url_prefix: 'evil.example.com/x' } },
    ]) {
      assert.throws(() => adyenCheckoutEndpoint(bad, 'http://127.0.0.1:4100'), ConnectorUnknownOutcomeError, JSON.stringify(bad));
    }
  });

  it('declines an unknown test token and any live payment method without calling Adyen', async () => {
    const unknown = await connector.authorize(ctx(), { amount: 100, currency: 'EUR', paymentMethod: 'tok_nope', capture: true, idempotencyKey: 'k1', reference: 'pay_1' });
    assert.equal(unknown.outcome, 'declined');
    assert.equal(unknown.outcome === 'declined' && unknown.code, 'invalid_payment_method');
    const live = await connector.authorize(ctx({ testMode: false, settings: { environment: 'live', live_url_prefix: 'abc-Demo' } }),
      { amount: 100, currency: 'EUR', paymentMethod: 'pm_card_visa', capture: true, idempotencyKey: 'k2', reference: 'pay_2' });
    assert.equal(live.outcome === 'declined' && live.code, 'invalid_payment_method');
  });

  it('has no status query: a received refund stays pending, and payment state is unknown, never guessed', async () => {
    assert.deepEqual(await connector.refundStatus(ctx(), { connectorRef: 'ABCDEF0123456789', paymentRef: 'P', idempotencyKey: 'k' }), { status: 'pending', connectorRef: 'ABCDEF0123456789' });
    await assert.rejects(connector.refundStatus(ctx(), { connectorRef: null, paymentRef: 'P', idempotencyKey: 'k' }), ConnectorUnknownOutcomeError);
    assert.deepEqual(await connector.paymentState(ctx(), { paymentRef: 'P' }), { paymentRef: 'P', status: 'unknown', amountCaptured: null, amountRefunded: null, refunds: null });
  });

  it('maps a connection that answers nothing to an unknown outcome, never to a failure', async () => {
    // port 9 (discard) on loopback: nothing listens, the connection is refused
    await assert.rejects(connector.refund(ctx(), { paymentRef: 'P', amount: 100, currency: 'EUR', idempotencyKey: 'settle_re_x', reference: 're_x' }), ConnectorUnknownOutcomeError);
  });
});

describe('Adyen connector: notifications', () => {
  const refund = (over: Record<string, unknown> = {}) => ({
    pspReference: pspReference(), originalReference: pspReference(), merchantAccountCode: MERCHANT,
    merchantReference: newId('re'), value: 1500, eventCode: 'REFUND', ...over,
  });

  it('verifies every item of a batch with the account\'s HMAC key, its merchant account and its mode', () => {
    const body = notification(HMAC, [refund(), refund({ eventCode: 'CAPTURE' })]);
    assert.equal(verify(ctx(), body), true);
    assert.equal(verify(ctx({ webhookSecret: newHmacKey() }), body), false, 'another key');
    assert.equal(verify(ctx({ credentials: { api_key: 'x', merchant_account: 'OtherECOM' } }), body), false, 'another merchant account');
    assert.equal(verify(ctx(), notification(HMAC, [refund()], true)), false, 'a live notification for a test account');
    const tampered = JSON.parse(body);
    tampered.notificationItems[1].NotificationRequestItem.amount.value = 999_999;
    assert.equal(verify(ctx(), JSON.stringify(tampered)), false, 'one tampered item fails the batch');
    const unsigned = JSON.parse(body);
    delete unsigned.notificationItems[0].NotificationRequestItem.additionalData;
    assert.equal(verify(ctx(), JSON.stringify(unsigned)), false, 'an unsigned item');
    assert.equal(verify(ctx(), 'not json'), false);
  });

  it('maps REFUND, REFUND_FAILED and REFUNDED_REVERSED to refund reports, with Settle\'s codes and never Adyen\'s text', () => {
    const ok = refund();
    const [succeeded, rejected, failed, reversed] = parseAdyenNotification(notification(HMAC, [
      ok,
      refund({ success: false, reason: 'Some acquirer text 123' }),
      refund({ eventCode: 'REFUND_FAILED', reason: 'Insufficient balance on payment' }),
      refund({ eventCode: 'REFUNDED_REVERSED' }),
    ]));
    assert.deepEqual(succeeded, {
      id: `${ok.pspReference}:REFUND:true`, type: 'refund.updated', paymentRef: ok.originalReference,
      refund: { connectorRef: ok.pspReference, amount: 1500, status: 'succeeded', reference: ok.merchantReference, failureCode: null, failureMessage: null },
    });
    assert.ok(rejected.type === 'refund.updated' && failed.type === 'refund.updated' && reversed.type === 'refund.updated');
    assert.deepEqual([rejected.refund.status, rejected.refund.failureCode], ['failed', 'refund_rejected']);
    assert.ok(!rejected.refund.failureMessage!.includes('123'), 'Adyen\'s reason text is not passed on');
    assert.deepEqual([failed.refund.status, failed.refund.failureCode], ['failed', 'amount_exceeds_refundable']);
    assert.deepEqual([reversed.refund.status, reversed.refund.failureCode], ['failed', 'refund_reversed']);
  });

  it('names a gateway refund only by a Settle refund id: a Customer Area refund is a dashboard refund', () => {
    const [dashboard] = parseAdyenNotification(notification(HMAC, [refund({ merchantReference: newId('pay') })]));
    assert.ok(dashboard.type === 'refund.updated');
    assert.equal(dashboard.refund.reference, null);
  });

  it('records payment notices (CAPTURE_FAILED, other event codes) without money, and refuses a body it does not understand', () => {
    const [notice] = parseAdyenNotification(notification(HMAC, [refund({ eventCode: 'CAPTURE_FAILED', value: 700 })]));
    assert.equal(notice.type, 'payment.notice');
    assert.ok(notice.type === 'payment.notice');
    assert.deepEqual([notice.notice, notice.success, notice.amount], ['capture_failed', true, 700]);
    const [other] = parseAdyenNotification(notification(HMAC, [refund({ eventCode: 'CHARGEBACK' })]));
    assert.equal(other.type, 'payment.notice', 'another event code is stored and acknowledged, not acted on');
    assert.throws(() => parseAdyenNotification(notification(HMAC, [refund({ originalReference: undefined })])), /originalReference/);
    assert.throws(() => parseAdyenNotification('{"live":"false","notificationItems":[]}'), /notificationItems/);
    assert.equal(connector.webhookAcknowledgement?.body, ADYEN_ACK);
  });
});

describe('Adyen connector: refusal reasons', () => {
  it('maps a refusalReason to its decline_code, also as Adyen\'s OpenAPI document spells it (case, spaces), else generic_decline', () => {
    assert.equal(adyenDeclineCode('Not enough balance'), 'insufficient_funds');
    assert.equal(adyenDeclineCode('Not supported'), 'card_not_supported');
    // CheckoutService-v71.json, additionalData.inferredRefusalReason: "Not Supported", "DeclinedNon Generic"
    assert.equal(adyenDeclineCode('Not Supported'), 'card_not_supported');
    assert.equal(adyenDeclineCode('DeclinedNon Generic'), 'do_not_honor');
    assert.equal(adyenDeclineCode('Declined Non Generic'), 'do_not_honor');
    assert.equal(adyenDeclineCode('Something new'), 'generic_decline');
    assert.equal(adyenDeclineCode(undefined), 'generic_decline');
  });
});
