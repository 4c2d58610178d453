import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { verifySettleSignature } from '../../src/sdk/index.js';
import { createTempDatabase, postgresOrSkip, type TempDatabase } from '../helpers/databases.js';
import { ADMIN_KEY } from '../helpers/harness.js';
import { client, spawnGateway, spawnPspSim, type Proc } from '../helpers/processes.js';

interface Receipt {
  at: number;
  body: string;
  signature: string | undefined;
  standard: Record<string, string>;
  status: number;
}

/** A merchant's webhook receiver that fails the first `failFirst` attempts of every event. */
async function receiver(failFirst: number) {
  const receipts: Receipt[] = [];
  const attemptsByEvent = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const id = (JSON.parse(body) as { id: string }).id;
      const n = (attemptsByEvent.get(id) ?? 0) + 1;
      attemptsByEvent.set(id, n);
      const status = n <= failFirst ? 503 : 200;
      const standard = Object.fromEntries(['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((h) => [h, String(req.headers[h])]));
      receipts.push({ at: Date.now(), body, signature: req.headers['settle-signature'] as string | undefined, standard, status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, receipts, close: () => new Promise((r) => server.close(r)) };
}

describe('outbound webhooks between real processes', () => {
  let temp: TempDatabase | undefined;
  let gw: Proc | undefined;
  let sim: Proc | undefined;
  let rx: Awaited<ReturnType<typeof receiver>>;
  let other: Awaited<ReturnType<typeof receiver>>;
  let liveRx: Awaited<ReturnType<typeof receiver>>;

  before(async (t) => {
    if (!(await postgresOrSkip(t as never))) return;
    temp = await createTempDatabase();
    sim = await spawnPspSim();
    // retries after 0.3 s and 0.6 s (± jitter); test-mode endpoints may be on localhost
    gw = await spawnGateway({ databaseUrl: temp.url, env: { WEBHOOK_RETRY_SCHEDULE: '0.3,0.6,5', SETTLE_WORKER_POLL_MS: '50' } });
    rx = await receiver(2);
    other = await receiver(0);
    liveRx = await receiver(0);
  });
  after(async () => {
    await Promise.all([gw?.kill(), sim?.kill()]);
    await Promise.all([rx?.close(), other?.close(), liveRx?.close()]);
    await temp?.drop();
  });

  test('events arrive signed, are retried on the schedule, and reach only their merchant\'s and mode\'s endpoints', async (t) => {
    if (!temp) return t.skip('no postgres');
    const admin = client(gw!.url, ADMIN_KEY);
    const a = (await admin('POST', '/v1/admin/merchants', { name: 'Receiver A' })).body;
    const b = (await admin('POST', '/v1/admin/merchants', { name: 'Receiver B' })).body;
    const apiA = client(gw!.url, a.api_keys.test);
    const apiB = client(gw!.url, b.api_keys.test);
    const liveA = client(gw!.url, a.api_keys.live);
    await apiA('POST', '/v1/connector_accounts', { connector: 'sandbox', settings: { base_url: sim!.url } });
    await apiB('POST', '/v1/connector_accounts', { connector: 'sandbox', settings: { base_url: sim!.url } });
    const ep = await apiA('POST', '/v1/webhook_endpoints', { url: rx.url, enabled_events: ['*'] });
    assert.equal(ep.status, 201, ep.raw);
    assert.match(ep.body.secret, /^whsec_/);
    await apiB('POST', '/v1/webhook_endpoints', { url: other.url, enabled_events: ['*'] });
    // a live endpoint on loopback is refused: the live-mode URL guard
    const liveEp = await liveA('POST', '/v1/webhook_endpoints', { url: liveRx.url, enabled_events: ['*'] });
    assert.equal(liveEp.status, 400);
    assert.equal(liveEp.body.error.param, 'url');

    const p = await apiA('POST', '/v1/payments', { amount: 4000, currency: 'USD', payment_method: 'pm_card_visa' });
    const r = await apiA('POST', `/v1/payments/${p.body.id}/refunds`, { amount: 1000 });
    assert.equal(r.body.status, 'succeeded');

    const wanted = ['payment.succeeded', 'refund.created', 'refund.succeeded', 'payment.partially_refunded'];
    const delivered = () => rx.receipts.filter((x) => x.status === 200).map((x) => JSON.parse(x.body));
    for (let i = 0; i < 100 && wanted.some((w) => !delivered().some((e) => e.type === w)); i++) await new Promise((res) => setTimeout(res, 100));
    const events = delivered();
    for (const w of wanted) assert.ok(events.some((e) => e.type === w), `${w} delivered`);

    for (const receipt of rx.receipts) {
      assert.ok(verifySettleSignature({ payload: receipt.body, header: receipt.signature, secret: ep.body.secret }), 'valid Settle-Signature');
      assert.equal(verifySettleSignature({ payload: receipt.body + ' ', header: receipt.signature, secret: ep.body.secret }), false);
      // the Standard Webhooks library verifies the same delivery, unchanged, with the same secret
      assert.equal((new Webhook(ep.body.secret).verify(receipt.body, receipt.standard) as { id: string }).id, JSON.parse(receipt.body).id);
      assert.throws(() => new Webhook(ep.body.secret).verify(receipt.body + ' ', receipt.standard));
    }
    // every event was attempted three times: two failures, then success, spaced by the schedule
    const refundSucceeded = events.find((e) => e.type === 'refund.succeeded');
    const attempts = rx.receipts.filter((x) => JSON.parse(x.body).id === refundSucceeded.id);
    assert.deepEqual(attempts.map((x) => x.status), [503, 503, 200]);
    const gap1 = attempts[1].at - attempts[0].at;
    const gap2 = attempts[2].at - attempts[1].at;
    assert.ok(gap1 >= 200 && gap1 < 1500, `first retry after ~0.3 s, was ${gap1} ms`);
    assert.ok(gap2 >= 400 && gap2 < 2000, `second retry after ~0.6 s, was ${gap2} ms`);
    assert.equal(refundSucceeded.data.object.id, r.body.id);

    const detail = await apiA('GET', `/v1/events/${refundSucceeded.id}`);
    assert.equal(detail.status, 200);
    assert.equal(detail.body.delivery_attempts.length, 3);
    assert.equal((await apiB('GET', `/v1/events/${refundSucceeded.id}`)).status, 404);

    // nothing of A's reached B's endpoint or a live one
    assert.equal(other.receipts.length, 0);
    assert.equal(liveRx.receipts.length, 0);
  });
});
