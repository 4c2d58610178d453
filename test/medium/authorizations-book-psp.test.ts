/**
 * Authorizations book what the PSP authorized: a payment create whose PSP answer was lost, retried
 * under the same Idempotency-Key (so the same PSP idempotency key) with another amount, is never
 * answered 2xx for an amount the PSP did not authorize. The payment the PSP processed is booked as
 * the PSP did it, the retry that asks for something else is refused, and the original request's
 * retry still gets its payment.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConnectorUnknownOutcomeError, type Connector, type ConnectorRegistry } from '../../src/connectors/connector.js';
import { createSandboxConnector } from '../../src/connectors/sandbox/sandbox.connector.js';
import { SandboxPsp } from '../../src/psp-sim/psp-model.js';
import { createHarness, type Harness } from '../helpers/harness.js';

/** The sandbox PSP, with the answer to the next authorization lost on its way back. */
function lossySandbox(psp: SandboxPsp) {
  const inner = createSandboxConnector({ psp });
  const control = { loseNextAuthorizeAnswer: false, authorizeCalls: 0 };
  const connector: Connector = {
    ...inner,
    async authorize(ctx, req) {
      control.authorizeCalls += 1;
      const result = await inner.authorize(ctx, req);
      if (control.loseNextAuthorizeAnswer) {
        control.loseNextAuthorizeAnswer = false;
        throw new ConnectorUnknownOutcomeError('authorization answer lost on the way back');
      }
      return result;
    },
  };
  return { control, connectors: new Map([['sandbox', connector]]) as ConnectorRegistry };
}

describe('authorizations book what the PSP authorized', () => {
  const psp = new SandboxPsp();
  const { control, connectors } = lossySandbox(psp);
  let h: Harness;
  before(async () => {
    h = await createHarness('pglite', { connectors });
  });
  after(async () => {
    await h?.close();
    psp.dispose();
  });

  const create = (idempotencyKey: string, body: Record<string, unknown>) =>
    h.call('POST', '/v1/payments', { key: h.merchant.testKey, idempotencyKey, body: { currency: 'EUR', payment_method: 'pm_card_visa', ...body } });

  async function ledgerCaptured(paymentId: string): Promise<number> {
    const rows = await h.db.query<{ amount: string }>(
      `SELECT e.amount FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
        WHERE t.payment_id = $1 AND t.type = 'capture' AND e.direction = 'credit'`, [paymentId]);
    return rows.rows.reduce((s, r) => s + Number(r.amount), 0);
  }

  for (const captureMethod of ['automatic', 'manual'] as const) {
    test(`${captureMethod} capture: a retry with another amount after a lost answer is refused; the PSP's payment is booked as it did it`, async () => {
      const key = `order-${captureMethod}`;
      control.loseNextAuthorizeAnswer = true;
      const lost = await create(key, { amount: 5_000, capture_method: captureMethod });
      assert.equal(lost.status, 502, lost.raw);
      const paymentId = lost.body.error.payment_id;
      assert.match(paymentId, /^pay_/);

      const calls = control.authorizeCalls;
      const other = await create(key, { amount: 7_000, capture_method: captureMethod });
      assert.equal(other.status, 422, `a retry for 7000 while the PSP authorized 5000: ${other.raw}`);
      assert.equal(other.body.error.code, 'idempotency_key_reused');
      assert.equal(other.body.error.payment_id, paymentId);
      assert.equal(other.body.error.amount, 5_000);
      assert.match(other.body.error.message, /5000/);
      assert.equal(control.authorizeCalls, calls + 1, 'the PSP was asked once more, with the first payment\'s key (a replay)');

      // the payment is what the PSP holds, and the ledger agrees
      const stored = await h.call('GET', `/v1/payments/${paymentId}`, { key: h.merchant.testKey });
      const atPsp = psp.totals(stored.body.connector_ref);
      assert.equal(atPsp.amount, 5_000);
      assert.equal(stored.body.amount, atPsp.amount);
      assert.equal(stored.body.amount_captured, atPsp.amount_captured);
      assert.equal(await ledgerCaptured(paymentId), atPsp.amount_captured);
      if (captureMethod === 'manual') {
        assert.equal(stored.body.status, 'requires_capture');
        assert.equal(stored.body.amount_capturable, 5_000);
      } else {
        assert.equal(stored.body.status, 'succeeded');
        assert.equal(atPsp.amount_captured, 5_000);
      }

      // the original request, retried, is answered with its payment (the refusal did not take the key)
      const original = await create(key, { amount: 5_000, capture_method: captureMethod });
      assert.equal(original.status, 201, original.raw);
      assert.equal(original.body.id, paymentId);
      assert.equal(original.body.amount, 5_000);
      // and that answer is now the key's: the other request is refused by the key itself
      const again = await create(key, { amount: 7_000, capture_method: captureMethod });
      assert.equal(again.status, 422, again.raw);
      assert.equal(await ledgerCaptured(paymentId), atPsp.amount_captured, 'booked once');
    });
  }

  test('a retry that changes the currency (same amount) is refused too', async () => {
    control.loseNextAuthorizeAnswer = true;
    const lost = await create('order-currency', { amount: 2_500 });
    assert.equal(lost.status, 502);
    const other = await create('order-currency', { amount: 2_500, currency: 'USD' });
    assert.equal(other.status, 422, other.raw);
    assert.equal(other.body.error.payment_id, lost.body.error.payment_id);
    const stored = await h.call('GET', `/v1/payments/${lost.body.error.payment_id}`, { key: h.merchant.testKey });
    assert.equal(stored.body.currency, 'EUR');
    assert.equal(stored.body.amount_captured, psp.totals(stored.body.connector_ref).amount_captured);
  });

  test('the same request retried after a lost answer gets 201 with what the PSP authorized, charged once', async () => {
    control.loseNextAuthorizeAnswer = true;
    assert.equal((await create('order-same', { amount: 3_300 })).status, 502);
    const retry = await create('order-same', { amount: 3_300 });
    assert.equal(retry.status, 201, retry.raw);
    assert.equal(retry.body.amount_captured, 3_300);
    assert.equal(psp.totals(retry.body.connector_ref).amount_captured, 3_300);
    assert.equal(await ledgerCaptured(retry.body.id), 3_300);
  });
});
