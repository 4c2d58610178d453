import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { SANDBOX_TEST_TOKENS, SandboxPsp, SandboxPspError } from '../../src/psp-sim/psp-model.js';
import { signSandboxWebhook, verifySandboxSignature } from '../../src/connectors/sandbox/sandbox-signature.js';
import { parseSandboxWebhook, type SandboxWebhookEvent } from '../../src/connectors/sandbox/sandbox-webhook.js';

let seq = 0;
const key = (prefix = 'k'): string => `${prefix}_${++seq}`;

function pay(psp: SandboxPsp, paymentMethod = 'pm_card_visa', amount = 10_000, capture = true): string {
  const result = psp.authorize({
    amount,
    currency: 'inr',
    paymentMethod,
    capture,
    idempotencyKey: key('auth'),
    reference: 'pay_test',
    accountId: 'acct_1',
  });
  assert.ok(result.connectorRef, `authorize ${paymentMethod} gave no ref: ${JSON.stringify(result)}`);
  return result.connectorRef;
}

function refund(psp: SandboxPsp, paymentRef: string, amount: number, extra: Partial<Parameters<SandboxPsp['refund']>[0]> = {}) {
  return psp.refund({
    paymentRef,
    amount,
    currency: 'INR',
    idempotencyKey: key('re'),
    reference: `re_${seq}`,
    accountId: 'acct_1',
    ...extra,
  });
}

describe('SandboxPsp test tokens', () => {
  it('lists the documented tokens', () => {
    assert.deepEqual([...SANDBOX_TEST_TOKENS].sort(), [
      'pm_card_declined',
      'pm_card_declined_expired_card',
      'pm_card_declined_fraudulent',
      'pm_card_declined_insufficient_funds',
      'pm_card_mastercard',
      'pm_card_refund_fails',
      'pm_card_refund_pending',
      'pm_card_refund_reverses',
      'pm_card_visa',
    ]);
  });

  it('declines each declining card with its decline code, as Stripe names them', () => {
    const psp = new SandboxPsp();
    const codes = ['pm_card_declined', 'pm_card_declined_insufficient_funds', 'pm_card_declined_expired_card', 'pm_card_declined_fraudulent'].map((card) => {
      const r = psp.authorize({ amount: 500, currency: 'USD', paymentMethod: card, capture: true, idempotencyKey: `k_${card}` });
      assert.equal(r.outcome, 'declined');
      return r.outcome === 'declined' ? r.code : '';
    });
    assert.deepEqual(codes, ['card_declined', 'insufficient_funds', 'expired_card', 'fraudulent']);
  });

  it('lets a pm_card_refund_reverses refund succeed, then has the bank reject it after the delay', async () => {
    const psp = new SandboxPsp();
    const events: SandboxWebhookEvent[] = [];
    psp.onEvent((e) => events.push(e));
    const ref = pay(psp, 'pm_card_refund_reverses', 1000);
    const r = psp.refund({ paymentRef: ref, amount: 400, currency: 'INR', idempotencyKey: 'rev', accountId: 'acct_1', pendingDelayMs: 300 });
    assert.equal(r.status, 'succeeded');
    assert.equal(psp.totals(ref).amount_refunded, 400);
    await sleep(600);
    // the timer fired: the refund failed and the amount is refundable again
    assert.deepEqual(events.map((e) => e.type), ['payment.refunded', 'refund.updated']);
    const failed = events[1];
    assert.equal(failed.type === 'refund.updated' && failed.data.status, 'failed');
    assert.equal(failed.type === 'refund.updated' && failed.data.failure_code, 'bank_rejected');
    assert.deepEqual(psp.refundStatus({ paymentRef: ref, idempotencyKey: 'rev', accountId: 'acct_1' }), {
      status: 'failed', connectorRef: r.connectorRef, code: 'bank_rejected', message: 'The bank rejected the refund after accepting it.',
    });
    assert.equal(psp.totals(ref).amount_refunded, 0);
  });

  it('captures visa and mastercard at once, or only authorizes with capture false', () => {
    const psp = new SandboxPsp();
    for (const pm of ['pm_card_visa', 'pm_card_mastercard']) {
      const r = psp.authorize({ amount: 500, currency: 'usd', paymentMethod: pm, capture: true, idempotencyKey: key(), reference: 'pay_1' });
      assert.equal(r.outcome, 'captured');
    }
    const manual = psp.authorize({ amount: 500, currency: 'usd', paymentMethod: 'pm_card_visa', capture: false, idempotencyKey: key(), reference: 'pay_2' });
    assert.equal(manual.outcome, 'authorized');
    assert.equal(psp.paymentView(manual.connectorRef!)?.amount_captured, 0);
  });

  it('declines pm_card_declined with card_declined and the documented message', () => {
    const psp = new SandboxPsp();
    const r = psp.authorize({ amount: 500, currency: 'INR', paymentMethod: 'pm_card_declined', capture: true, idempotencyKey: key(), reference: 'p' });
    assert.equal(r.outcome, 'declined');
    assert.ok(r.outcome === 'declined' && r.code === 'card_declined' && r.message === 'Your card was declined.');
    assert.equal(psp.paymentView(r.connectorRef!)?.status, 'declined');
  });

  it('declines an unknown token with invalid_payment_method', () => {
    const psp = new SandboxPsp();
    const r = psp.authorize({ amount: 500, currency: 'INR', paymentMethod: 'pm_card_amex', capture: true, idempotencyKey: key(), reference: 'p' });
    assert.equal(r.outcome, 'declined');
    assert.equal(r.outcome === 'declined' && r.code, 'invalid_payment_method');
  });

  it('encodes amount, currency and card in the payment ref', () => {
    const psp = new SandboxPsp();
    assert.match(pay(psp, 'pm_card_refund_pending', 1234), /^sbx_pay_1234_INR_refund_pending_[0-9A-Za-z]+$/);
  });

  it('answers a repeated authorization key with the first result and creates one payment', () => {
    const psp = new SandboxPsp();
    const req = { amount: 700, currency: 'INR', paymentMethod: 'pm_card_visa', capture: true, idempotencyKey: 'auth-same', reference: 'p', accountId: 'a' };
    const first = psp.authorize(req);
    const second = psp.authorize({ ...req, amount: 900 });
    assert.deepEqual(second, first);
    assert.equal(psp.paymentView(first.connectorRef!)?.amount, 700);
  });
});

describe('SandboxPsp capture and cancel', () => {
  it('captures part of an authorization and refuses a second capture', () => {
    const psp = new SandboxPsp();
    const ref = pay(psp, 'pm_card_visa', 1000, false);
    assert.deepEqual(psp.capture({ connectorRef: ref, amount: 600, idempotencyKey: 'cap1', accountId: 'acct_1' }), { outcome: 'succeeded', connectorRef: ref, amountCaptured: 600 });
    assert.equal(psp.totals(ref).amount_captured, 600);
    // Same key: the same answer; another key: the rest was released.
    assert.equal(psp.capture({ connectorRef: ref, amount: 600, idempotencyKey: 'cap1', accountId: 'acct_1' }).outcome, 'succeeded');
    const again = psp.capture({ connectorRef: ref, amount: 400, idempotencyKey: 'cap2', accountId: 'acct_1' });
    assert.equal(again.outcome === 'rejected' && again.code, 'payment_already_captured');
  });

  it('refuses to capture more than authorized', () => {
    const psp = new SandboxPsp();
    const ref = pay(psp, 'pm_card_visa', 1000, false);
    const r = psp.capture({ connectorRef: ref, amount: 1001, idempotencyKey: key(), accountId: 'acct_1' });
    assert.equal(r.outcome === 'rejected' && r.code, 'amount_too_large');
  });

  it('cancels an authorization and then refuses to capture it', () => {
    const psp = new SandboxPsp();
    const ref = pay(psp, 'pm_card_visa', 1000, false);
    assert.equal(psp.cancel({ connectorRef: ref, idempotencyKey: key(), accountId: 'acct_1' }).outcome, 'succeeded');
    const r = psp.capture({ connectorRef: ref, amount: 1000, idempotencyKey: key(), accountId: 'acct_1' });
    assert.equal(r.outcome === 'rejected' && r.code, 'payment_canceled');
  });

  it("hides another account's payment", () => {
    const psp = new SandboxPsp();
    const ref = pay(psp);
    const r = psp.refund({ paymentRef: ref, amount: 1, currency: 'INR', idempotencyKey: key(), reference: 're', accountId: 'acct_other' });
    assert.equal(r.status === 'failed' && r.code, 'payment_not_found');
  });
});

describe('SandboxPsp refunds', () => {
  it('applies a refund once however often its key is retried, even with another amount', () => {
    const psp = new SandboxPsp();
    const ref = pay(psp);
    const args = { paymentRef: ref, amount: 3000, currency: 'INR', idempotencyKey: 'settle_re_1', reference: 're_1', accountId: 'acct_1' };
    const first = psp.refund(args);
    const second = psp.refund(args);
    const third = psp.refund({ ...args, amount: 5000 });
    assert.equal(first.status, 'succeeded');
    assert.deepEqual(second, first);
    assert.deepEqual(third, first);
    const totals = psp.totals(ref);
    assert.equal(totals.amount_refunded, 3000);
    assert.equal(totals.refunds.length, 1);
    assert.deepEqual(psp.stats(), { refund_calls: 3, refunds_created: 1, duplicate_applications: 0 });
  });

  it('rejects a refund above captured minus refunded, and replays that rejection for its key', () => {
    const psp = new SandboxPsp();
    const ref = pay(psp, 'pm_card_visa', 1000);
    assert.equal(refund(psp, ref, 600).status, 'succeeded');
    const over = psp.refund({ paymentRef: ref, amount: 401, currency: 'INR', idempotencyKey: 'over', reference: 're_over', accountId: 'acct_1' });
    assert.equal(over.status === 'failed' && over.code, 'amount_exceeds_refundable');
    assert.equal(over.connectorRef, undefined);
    assert.deepEqual(psp.refundStatus({ paymentRef: ref, idempotencyKey: 'over', accountId: 'acct_1' }), over);
    assert.equal(refund(psp, ref, 400).status, 'succeeded', 'exactly the remaining balance is refundable');
    assert.equal(psp.totals(ref).amount_refunded, 1000);
  });

  it('counts pending refunds against the refundable amount', () => {
    const psp = new SandboxPsp();
    const ref = pay(psp, 'pm_card_refund_pending', 1000);
    assert.equal(refund(psp, ref, 800, { pendingDelayMs: 60_000 }).status, 'pending');
    const r = refund(psp, ref, 300);
    assert.equal(r.status === 'failed' && r.code, 'amount_exceeds_refundable');
    psp.dispose();
  });

  it('refuses refunds of an uncaptured payment', () => {
    const psp = new SandboxPsp();
    const ref = pay(psp, 'pm_card_visa', 1000, false);
    const r = refund(psp, ref, 100);
    assert.equal(r.status === 'failed' && r.code, 'payment_not_refundable');
  });

  it('fails every refund of pm_card_refund_fails with refund_rejected, keeping the amount refundable', () => {
    const psp = new SandboxPsp();
    const ref = pay(psp, 'pm_card_refund_fails', 1000);
    const r = refund(psp, ref, 1000);
    assert.equal(r.status, 'failed');
    assert.ok(r.status === 'failed' && r.code === 'refund_rejected' && r.connectorRef?.startsWith('sbx_re_'));
    const again = refund(psp, ref, 1000);
    assert.equal(again.status === 'failed' && again.code, 'refund_rejected');
    assert.equal(psp.totals(ref).amount_refunded, 0);
  });

  it('keeps a pm_card_refund_pending refund pending, then succeeds after the delay (timer and status read)', async () => {
    const psp = new SandboxPsp();
    const events: SandboxWebhookEvent[] = [];
    psp.onEvent((e) => events.push(e));
    const ref = pay(psp, 'pm_card_refund_pending', 1000);
    const r = psp.refund({ paymentRef: ref, amount: 250, currency: 'INR', idempotencyKey: 'pend', reference: 're_p', accountId: 'acct_1', pendingDelayMs: 50 });
    assert.equal(r.status, 'pending');
    assert.equal(psp.totals(ref).amount_refunded, 0);
    await sleep(120);
    // The timer has fired: its events went out without anyone asking.
    assert.deepEqual(
      events.map((e) => e.type),
      ['refund.updated', 'refund.updated', 'payment.refunded'],
    );
    assert.deepEqual(psp.refundStatus({ paymentRef: ref, idempotencyKey: 'pend', accountId: 'acct_1' }), {
      status: 'succeeded',
      connectorRef: r.connectorRef,
    });
    assert.equal(psp.totals(ref).amount_refunded, 250);
  });

  it('computes a due pending refund from timestamps even when no timer has run', () => {
    let now = 1_000_000;
    const psp = new SandboxPsp({ now: () => now });
    const ref = pay(psp, 'pm_card_refund_pending', 1000);
    const r = refund(psp, ref, 100, { idempotencyKey: 'lazy', pendingDelayMs: 5000 });
    assert.equal(r.status, 'pending');
    now += 4999;
    assert.equal(psp.refundStatus({ paymentRef: ref, idempotencyKey: 'lazy', accountId: 'acct_1' }).status, 'pending');
    now += 1;
    assert.equal(psp.refundStatus({ paymentRef: ref, idempotencyKey: 'lazy', accountId: 'acct_1' }).status, 'succeeded');
    psp.dispose();
  });

  it('uses the PSP default pending delay of 2000 ms when none is given', () => {
    let now = 0;
    const psp = new SandboxPsp({ now: () => now });
    const ref = pay(psp, 'pm_card_refund_pending', 1000);
    const r = refund(psp, ref, 100);
    now = 1999;
    assert.equal(psp.refundView(r.connectorRef!)?.status, 'pending');
    now = 2000;
    assert.equal(psp.refundView(r.connectorRef!)?.status, 'succeeded');
    psp.dispose();
  });

  it('forces pending with forcePending even for a card that succeeds at once', () => {
    const psp = new SandboxPsp();
    const ref = pay(psp);
    assert.equal(refund(psp, ref, 100, { forcePending: true, pendingDelayMs: 60_000 }).status, 'pending');
    assert.equal(psp.settlePending(ref), 1);
    assert.equal(psp.totals(ref).amount_refunded, 100);
  });

  it('answers refund_not_found for a key it never saw, and finds a refund by its ref', () => {
    const psp = new SandboxPsp();
    const ref = pay(psp);
    const missing = psp.refundStatus({ paymentRef: ref, idempotencyKey: 'never', accountId: 'acct_1' });
    assert.equal(missing.status === 'failed' && missing.code, 'refund_not_found');
    const r = refund(psp, ref, 100);
    assert.deepEqual(psp.refundStatus({ connectorRef: r.connectorRef, paymentRef: ref, idempotencyKey: 'other' }), r);
    // A ref of another payment is not this payment's refund.
    const otherPayment = pay(psp);
    const wrong = psp.refundStatus({ connectorRef: r.connectorRef, paymentRef: otherPayment, idempotencyKey: 'x' });
    assert.equal(wrong.status === 'failed' && wrong.code, 'refund_not_found');
  });
});

describe('SandboxPsp operator actions', () => {
  it('makes a dashboard refund with no reference and no key, defaulting to the whole refundable amount', () => {
    const psp = new SandboxPsp();
    const events: Array<[SandboxWebhookEvent, string]> = [];
    psp.onEvent((e, account) => events.push([e, account]));
    const ref = pay(psp, 'pm_card_visa', 1000);
    refund(psp, ref, 300, { reference: 're_api' });
    const dash = psp.dashboardRefund(ref);
    assert.equal(dash.amount, 700);
    assert.equal(dash.reference, null);
    assert.equal(dash.idempotency_key, null);
    const [last, account] = events.at(-1)!;
    assert.equal(account, 'acct_1');
    assert.equal(last.type, 'payment.refunded');
    assert.ok(last.type === 'payment.refunded');
    assert.equal(last.data.amount_refunded, 1000);
    assert.deepEqual(last.data.refunds.map((r) => r.reference), ['re_api', null]);
    assert.throws(() => psp.dashboardRefund(ref, 1), (err: unknown) => err instanceof SandboxPspError && err.code === 'amount_exceeds_refundable');
  });

  it('fails a succeeded refund later, restoring the refundable amount, and emits refund.updated', () => {
    const psp = new SandboxPsp();
    const events: SandboxWebhookEvent[] = [];
    psp.onEvent((e) => events.push(e));
    const ref = pay(psp, 'pm_card_visa', 1000);
    const r = refund(psp, ref, 1000);
    assert.equal(refund(psp, ref, 1).status, 'failed', 'nothing left before the bank rejects');
    const failed = psp.failRefund(r.connectorRef!, 'account_closed');
    assert.equal(failed.status, 'failed');
    assert.equal(failed.failure_code, 'account_closed');
    assert.equal(psp.totals(ref).amount_refunded, 0);
    const last = events.at(-1)!;
    assert.ok(last.type === 'refund.updated' && last.data.status === 'failed' && last.data.failure_code === 'account_closed');
    assert.equal(refund(psp, ref, 1000).status, 'succeeded', 'the amount is refundable again');
    assert.equal(psp.failRefund(r.connectorRef!).failure_code, 'account_closed', 'failing twice changes nothing');
  });

  it('completes a pending refund on demand and refuses to complete a failed one', () => {
    const psp = new SandboxPsp();
    const ref = pay(psp, 'pm_card_refund_pending', 1000);
    const r = refund(psp, ref, 100, { pendingDelayMs: 60_000 });
    assert.equal(psp.completeRefund(r.connectorRef!).status, 'succeeded');
    assert.equal(psp.totals(ref).amount_refunded, 100);
    psp.failRefund(r.connectorRef!);
    assert.throws(() => psp.completeRefund(r.connectorRef!), (err: unknown) => err instanceof SandboxPspError && err.code === 'refund_failed');
    assert.throws(() => psp.failRefund('sbx_re_nope'), (err: unknown) => err instanceof SandboxPspError && err.code === 'refund_not_found');
  });
});

describe('SandboxPsp after a restart (self-describing refs)', () => {
  it('rebuilds an unknown payment as captured in full with no refunds', () => {
    const before = new SandboxPsp();
    const ref = pay(before, 'pm_card_visa', 4200);
    refund(before, ref, 1000);

    const after = new SandboxPsp();
    const view = after.ensurePayment(ref, 'acct_1');
    assert.equal(view?.reconstructed, true);
    assert.equal(view?.status, 'captured');
    assert.equal(view?.amount, 4200);
    assert.equal(view?.currency, 'INR');
    assert.equal(refund(after, ref, 4200).status, 'succeeded');
    assert.equal(after.totals(ref).amount_refunded, 4200);
  });

  it('keeps the card behaviour of a rebuilt payment', () => {
    const ref = pay(new SandboxPsp(), 'pm_card_refund_fails', 500);
    const r = refund(new SandboxPsp(), ref, 100);
    assert.equal(r.status === 'failed' && r.code, 'refund_rejected');
  });

  it('refuses refs it cannot decode', () => {
    const psp = new SandboxPsp();
    assert.equal(psp.ensurePayment('sbx_pay_abc_INR_visa_x'), undefined);
    assert.equal(psp.ensurePayment('sbx_pay_100_INR_amex_x'), undefined);
    const r = refund(psp, 'pay_not_ours', 1);
    assert.equal(r.status === 'failed' && r.code, 'payment_not_found');
  });
});

describe('sandbox webhook signature', () => {
  const secret = 'whsec_test_secret';
  const body = '{"id":"sbevt_1","type":"refund.updated"}';
  const now = 1_700_000_000;

  it('verifies its own signature', () => {
    const header = signSandboxWebhook(secret, body, now);
    assert.match(header, /^t=1700000000,v1=[0-9a-f]{64}$/);
    assert.equal(verifySandboxSignature(secret, body, header, now), true);
    assert.equal(verifySandboxSignature(secret, body, [header], now + 300), true);
  });

  it('refuses a tampered body and a wrong secret', () => {
    const header = signSandboxWebhook(secret, body, now);
    assert.equal(verifySandboxSignature(secret, body.replace('1', '2'), header, now), false);
    assert.equal(verifySandboxSignature('whsec_other', body, header, now), false);
    assert.equal(verifySandboxSignature('', body, header, now), false);
  });

  it('refuses timestamps outside the tolerance, in either direction', () => {
    const header = signSandboxWebhook(secret, body, now);
    assert.equal(verifySandboxSignature(secret, body, header, now + 301), false);
    assert.equal(verifySandboxSignature(secret, body, header, now - 301), false);
    assert.equal(verifySandboxSignature(secret, body, header, now + 1000, 2000), true);
  });

  it('accepts any matching v1 among several (secret rotation)', () => {
    const good = signSandboxWebhook(secret, body, now);
    const old = signSandboxWebhook('whsec_old', body, now).split(',')[1];
    assert.equal(verifySandboxSignature(secret, body, `${good},${old}`, now), true);
    assert.equal(verifySandboxSignature(secret, body, `t=${now},${old}`, now), false);
  });

  it('refuses malformed headers', () => {
    const sig = signSandboxWebhook(secret, body, now).split(',')[1].slice(3);
    for (const header of [
      undefined,
      '',
      'garbage',
      `v1=${sig}`,
      `t=${now}`,
      `t=${now},v1=`,
      `t=${now},v1=${sig.slice(2)}`,
      `t=abc,v1=${sig}`,
      `t=${now},t=${now},v1=${sig}`,
      `t=${now},v1=${sig},junk`,
      [`t=${now},v1=${sig}`, `t=${now},v1=${sig}`],
    ]) {
      assert.equal(verifySandboxSignature(secret, body, header, now), false, `header ${JSON.stringify(header)}`);
    }
  });
});

describe('parseSandboxWebhook', () => {
  const refunded = {
    id: 'sbevt_a',
    type: 'payment.refunded',
    created: 1_700_000_000,
    data: {
      payment_ref: 'sbx_pay_1000_INR_visa_x',
      amount_refunded: 700,
      refunds: [
        { refund_ref: 'sbx_re_1', amount: 500, status: 'succeeded', reference: 're_1', failure_code: null, failure_message: null },
        { refund_ref: 'sbx_re_2', amount: 200, status: 'succeeded', reference: null, failure_code: null, failure_message: null },
      ],
    },
  };
  const updated = {
    id: 'sbevt_b',
    type: 'refund.updated',
    created: 1_700_000_000,
    data: {
      refund_ref: 'sbx_re_1',
      payment_ref: 'sbx_pay_1000_INR_visa_x',
      amount: 500,
      status: 'failed',
      reference: 're_1',
      failure_code: 'bank_rejected',
      failure_message: 'no',
    },
  };

  it('maps payment.refunded to a ConnectorEvent', () => {
    assert.deepEqual(parseSandboxWebhook(JSON.stringify(refunded)), {
      id: 'sbevt_a',
      type: 'payment.refunded',
      paymentRef: 'sbx_pay_1000_INR_visa_x',
      amountRefunded: 700,
      refunds: [
        { connectorRef: 'sbx_re_1', amount: 500, status: 'succeeded', reference: 're_1', failureCode: null, failureMessage: null },
        { connectorRef: 'sbx_re_2', amount: 200, status: 'succeeded', reference: null, failureCode: null, failureMessage: null },
      ],
    });
  });

  it('maps refund.updated to a ConnectorEvent', () => {
    assert.deepEqual(parseSandboxWebhook(JSON.stringify(updated)), {
      id: 'sbevt_b',
      type: 'refund.updated',
      paymentRef: 'sbx_pay_1000_INR_visa_x',
      refund: { connectorRef: 'sbx_re_1', amount: 500, status: 'failed', reference: 're_1', failureCode: 'bank_rejected', failureMessage: 'no' },
    });
  });

  it('parses what the PSP itself emits', () => {
    const psp = new SandboxPsp();
    const events: SandboxWebhookEvent[] = [];
    psp.onEvent((e) => events.push(e));
    const ref = pay(psp);
    refund(psp, ref, 100, { reference: 're_emitted' });
    const parsed = parseSandboxWebhook(JSON.stringify(events[0]));
    assert.ok(parsed.type === 'payment.refunded');
    assert.equal(parsed.amountRefunded, 100);
    assert.equal(parsed.refunds[0].reference, 're_emitted');
  });

  const malformed: Array<[string, string]> = [
    ['not json', '{'],
    ['array body', '[]'],
    ['unknown type', JSON.stringify({ ...refunded, type: 'charge.refunded' })],
    ['missing id', JSON.stringify({ ...refunded, id: undefined })],
    ['string created', JSON.stringify({ ...refunded, created: '1700000000' })],
    ['negative cumulative', JSON.stringify({ ...refunded, data: { ...refunded.data, amount_refunded: -1 } })],
    ['float amount', JSON.stringify({ ...refunded, data: { ...refunded.data, amount_refunded: 1.5 } })],
    ['refunds not array', JSON.stringify({ ...refunded, data: { ...refunded.data, refunds: {} } })],
    ['negative refund amount', JSON.stringify({ ...updated, data: { ...updated.data, amount: -5 } })],
    ['string amount', JSON.stringify({ ...updated, data: { ...updated.data, amount: '500' } })],
    ['bad status', JSON.stringify({ ...updated, data: { ...updated.data, status: 'reversed' } })],
    ['numeric reference', JSON.stringify({ ...updated, data: { ...updated.data, reference: 7 } })],
    ['missing data', JSON.stringify({ ...updated, data: undefined })],
  ];
  for (const [name, body] of malformed) {
    it(`throws a clear error on ${name}`, () => {
      assert.throws(() => parseSandboxWebhook(body), /^Error: sandbox webhook: /);
    });
  }
});

describe('SandboxPsp memory bound (maxPayments)', () => {
  it('forgets the payment used least recently, with its refunds and keys, as after a restart', () => {
    const psp = new SandboxPsp({ maxPayments: 3 });
    const authKey = key('auth');
    const first = psp.authorize({ amount: 5000, currency: 'usd', paymentMethod: 'pm_card_visa', capture: true, idempotencyKey: authKey, accountId: 'acct_1' }).connectorRef!;
    const refundKey = key('re');
    assert.equal(psp.refund({ paymentRef: first, amount: 1000, currency: 'USD', idempotencyKey: refundKey, accountId: 'acct_1' }).status, 'succeeded');
    const second = pay(psp);
    const third = pay(psp);
    psp.ensurePayment(second, 'acct_1'); // used: the first is now the oldest in use
    const fourth = pay(psp);
    assert.deepEqual(psp.memory(), { payments: 3, refunds: 0, forgotten: 1 });
    assert.equal(psp.paymentView(first), undefined, 'the least recently used payment is forgotten');
    for (const ref of [second, third, fourth]) assert.ok(psp.paymentView(ref), ref);
    assert.equal(psp.paymentState(first, 'acct_1').status, 'unknown', 'reconciliation is told the PSP cannot say');
    // its keys went with it: the same authorization key makes a new payment, and a status read of its refund finds none
    assert.notEqual(psp.authorize({ amount: 5000, currency: 'usd', paymentMethod: 'pm_card_visa', capture: true, idempotencyKey: authKey, accountId: 'acct_1' }).connectorRef, first);
    assert.equal(psp.refundStatus({ paymentRef: first, idempotencyKey: refundKey, accountId: 'acct_1' }).status, 'failed');
    // asked about again, it is rebuilt from its reference: captured in full, no refunds
    const rebuilt = psp.ensurePayment(first, 'acct_1');
    assert.deepEqual([rebuilt?.reconstructed, rebuilt?.status, rebuilt?.amount_captured], [true, 'captured', 5000]);
    assert.equal(psp.memory().payments, 3);
  });

  it('keeps a payment whose refund is still pending, and forgets the next one instead', () => {
    const psp = new SandboxPsp({ maxPayments: 2, defaultPendingDelayMs: 60_000 });
    const pending = pay(psp, 'pm_card_refund_pending');
    assert.equal(refund(psp, pending, 1000).status, 'pending');
    const other = pay(psp);
    pay(psp);
    assert.ok(psp.paymentView(pending), 'its refund still waits for its outcome');
    assert.equal(psp.paymentView(other), undefined);
    assert.deepEqual(psp.memory(), { payments: 2, refunds: 1, forgotten: 1 });
    psp.dispose();
  });

  it('remembers everything by default', () => {
    const psp = new SandboxPsp();
    for (let i = 0; i < 50; i++) pay(psp);
    assert.deepEqual(psp.memory(), { payments: 50, refunds: 0, forgotten: 0 });
  });
});
