/**
 * `settle psp-sim --wire adyen` as its own process: it serves Adyen's Checkout routes, sends its
 * HMAC-signed notifications to the registered URL, and exits cleanly on SIGTERM; an unknown wire
 * is refused. (The wire's faithfulness is tested in test/unit/adyen-wire.test.ts.)
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import adyen from '@adyen/api-library';
import type { Types } from '@adyen/api-library';
import { runSettle, spawnSettle, type Proc } from '../helpers/processes.js';

const { hmacValidator: HmacValidator } = adyen;
const HMAC_KEY = 'A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F90';
const MERCHANT = 'SettleProcessTest';

describe('settle psp-sim --wire adyen (a process)', () => {
  let sim: Proc;
  let hooks: Server;
  const items: Types.notification.NotificationRequestItem[] = [];

  before(async () => {
    sim = await spawnSettle(['psp-sim', '--port', '0', '--wire', 'adyen'], {}, /psp-sim listening on (http:\/\/\S+)/, 60_000);
    hooks = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        items.push(...(JSON.parse(body) as Types.notification.Notification).notificationItems.map((w) => w.NotificationRequestItem));
        res.writeHead(200).end('[accepted]');
      });
    });
    await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
    const res = await fetch(`${sim.url}/_sim/accounts/${MERCHANT}/webhook`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/adyen`, secret: HMAC_KEY }),
    });
    assert.equal(res.status, 200);
  });

  after(async () => {
    hooks?.close();
    if (sim) assert.equal(await sim.kill('SIGTERM'), 0, `psp-sim exits 0 on SIGTERM:\n${sim.output()}`);
  });

  it('authorises and refunds over /v71, and notifies REFUND signed with the HMAC key', async () => {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${sim.url}/v71${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': 'AQE_process_test' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const pay = await post('/payments', {
      amount: { currency: 'USD', value: 2500 },
      merchantAccount: MERCHANT,
      reference: 'pay_process_1',
      returnUrl: 'https://merchant.example/return',
      paymentMethod: { type: 'scheme', number: '4111111111111111', expiryMonth: '03', expiryYear: '2030', cvc: '737' },
    });
    assert.equal(pay.status, 200);
    assert.equal(pay.body.resultCode, 'Authorised');
    const refund = await post(`/payments/${String(pay.body.pspReference)}/refunds`, { merchantAccount: MERCHANT, amount: { currency: 'USD', value: 700 }, reference: 're_process_1' });
    assert.equal(refund.status, 201);
    assert.equal(refund.body.status, 'received');

    const deadline = Date.now() + 20_000;
    while (!items.some((i) => i.eventCode === 'REFUND') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    const item = items.find((i) => i.eventCode === 'REFUND');
    assert.ok(item, 'a REFUND notification arrived');
    assert.equal(item.pspReference, refund.body.pspReference);
    assert.equal(item.originalReference, pay.body.pspReference);
    assert.equal(item.amount.value, 700);
    assert.equal(new HmacValidator().validateHMAC(item, HMAC_KEY), true);
  });

  it('refuses an unknown wire', async () => {
    const r = await runSettle(['psp-sim', '--port', '0', '--wire', 'worldpay'], {}, { timeoutMs: 60_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--wire must be one of sandbox, stripe, adyen/);
  });
});
