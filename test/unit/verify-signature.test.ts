import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { SettleSignatureError, constructEvent, verifySettleSignature } from '../../src/sdk/index.js';
import { signPayload } from '../../src/modules/webhooks/webhooks.service.js';

const secret = 'whsec_0123456789abcdefghijklmnopqrstuv';
const body = JSON.stringify({
  id: 'evt_1',
  object: 'event',
  type: 'payment.succeeded',
  created_at: '2024-01-01T00:00:00.000Z',
  test_mode: true,
  data: { object: { id: 'pay_1', description: 'Crème brûlée ☕' } },
});
const t = 1_700_000_000;
const v1 = (s: string, payload: string, ts = t) => createHmac('sha256', s).update(`${ts}.${payload}`).digest('hex');

describe('verifySettleSignature', () => {
  it('accepts the signature the delivery worker produces', () => {
    const header = signPayload(secret, body, t);
    assert.equal(header, `t=${t},v1=${v1(secret, body)}`);
    assert.equal(verifySettleSignature({ payload: body, header, secret, now: t }), true);
  });

  it('accepts the raw body as a Buffer, non-ASCII bytes included', () => {
    const header = signPayload(secret, body, t);
    assert.equal(verifySettleSignature({ payload: Buffer.from(body, 'utf8'), header, secret, now: t + 10 }), true);
  });

  it('rejects a body changed by a single character', () => {
    const header = signPayload(secret, body, t);
    assert.equal(verifySettleSignature({ payload: body.replace('pay_1', 'pay_2'), header, secret, now: t }), false);
  });

  it('rejects re-serialized JSON that differs in whitespace', () => {
    const header = signPayload(secret, body, t);
    assert.equal(verifySettleSignature({ payload: JSON.stringify(JSON.parse(body), null, 2), header, secret, now: t }), false);
  });

  it('rejects the wrong secret', () => {
    const header = signPayload('whsec_other', body, t);
    assert.equal(verifySettleSignature({ payload: body, header, secret, now: t }), false);
  });

  it('rejects a signature whose timestamp was swapped (the timestamp is signed)', () => {
    const header = `t=${t + 1},v1=${v1(secret, body, t)}`;
    assert.equal(verifySettleSignature({ payload: body, header, secret, now: t }), false);
  });

  it('enforces the tolerance in both directions, 300 seconds by default', () => {
    const header = signPayload(secret, body, t);
    assert.equal(verifySettleSignature({ payload: body, header, secret, now: t + 300 }), true);
    assert.equal(verifySettleSignature({ payload: body, header, secret, now: t + 301 }), false);
    assert.equal(verifySettleSignature({ payload: body, header, secret, now: t - 301 }), false);
    assert.equal(verifySettleSignature({ payload: body, header, secret, now: t + 1000, toleranceSeconds: 1000 }), true);
    assert.equal(verifySettleSignature({ payload: body, header, secret, now: t + 6, toleranceSeconds: 5 }), false);
  });

  it('uses the current clock when now is not given', () => {
    const fresh = Math.floor(Date.now() / 1000);
    assert.equal(verifySettleSignature({ payload: body, header: signPayload(secret, body, fresh), secret }), true);
    assert.equal(verifySettleSignature({ payload: body, header: signPayload(secret, body, t), secret }), false);
  });

  it('accepts any one of several v1 signatures (secret rotation), in any position', () => {
    const old = v1('whsec_old', body);
    const current = v1(secret, body);
    assert.equal(verifySettleSignature({ payload: body, header: `t=${t},v1=${old},v1=${current}`, secret, now: t }), true);
    assert.equal(verifySettleSignature({ payload: body, header: `v1=${current}, t=${t} ,v1=${old}`, secret, now: t }), true);
    assert.equal(verifySettleSignature({ payload: body, header: `t=${t},v1=${old}`, secret, now: t }), false);
  });

  it('ignores unknown schemes but requires a v1 signature', () => {
    const current = v1(secret, body);
    assert.equal(verifySettleSignature({ payload: body, header: `t=${t},v0=abc,v1=${current}`, secret, now: t }), true);
    assert.equal(verifySettleSignature({ payload: body, header: `t=${t},v0=${current}`, secret, now: t }), false);
  });

  it('rejects missing and malformed headers without throwing', () => {
    for (const header of [undefined, '', 't=', `t=abc,v1=${v1(secret, body)}`, `v1=${v1(secret, body)}`, `t=${t}`, `t=${t},v1=zz`, `t=${t},v1=${v1(secret, body).slice(0, 10)}`, 'garbage']) {
      assert.equal(verifySettleSignature({ payload: body, header, secret, now: t }), false, String(header));
    }
  });
});

describe('constructEvent', () => {
  it('returns the parsed event when the signature is valid', () => {
    const now = Math.floor(Date.now() / 1000);
    const event = constructEvent(body, signPayload(secret, body, now), secret);
    assert.equal(event.id, 'evt_1');
    assert.equal(event.type, 'payment.succeeded');
    assert.deepEqual(event.data.object, { id: 'pay_1', description: 'Crème brûlée ☕' });
  });

  it('throws SettleSignatureError naming the problem', () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: Array<[string | undefined, RegExp]> = [
      [undefined, /No Settle-Signature header/],
      [`v1=${v1(secret, body)}`, /no timestamp/],
      [`t=${now}`, /no v1 signature/],
      [signPayload(secret, body, now - 3600), /outside the tolerance/],
      [signPayload('whsec_wrong', body, now), /No v1 signature matches/],
    ];
    for (const [header, message] of cases) {
      assert.throws(() => constructEvent(body, header, secret), (err: unknown) => {
        assert.ok(err instanceof SettleSignatureError);
        assert.match(err.message, message);
        return true;
      });
    }
  });

  it('honours a custom tolerance', () => {
    const old = Math.floor(Date.now() / 1000) - 3600;
    assert.equal(constructEvent(body, signPayload(secret, body, old), secret, 7200).id, 'evt_1');
  });
});
