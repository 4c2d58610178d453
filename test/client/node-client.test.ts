/**
 * The Node client (@settle-gateway/node) against a real gateway process, through a loopback proxy
 * that loses answers and injects 409/429/503 to exercise its retries.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createSettleClient, SettleApiError, unwrap, verifyWebhook, WebhookSignatureError, type SettleClient, type WebhookEvent } from '@settle-gateway/node';
import { createTempDatabase, postgresAvailable, type TempDatabase } from '../helpers/databases.js';
import { ADMIN_KEY } from '../helpers/harness.js';
import { spawnGateway, type Proc } from '../helpers/processes.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

type Fault = 'pass' | 'drop' | '429' | '503' | '409';
interface Seen { method: string; path: string; key: string | undefined; status: number | 'dropped'; replayed: boolean }

/** Forwards to the gateway; the next requests meet `plan`'s faults in order, then pass. */
async function faultProxy(target: string) {
  const plan: Fault[] = [];
  const seen: Seen[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const fault = plan.shift() ?? 'pass';
      const entry: Seen = { method: req.method!, path: req.url!, key: req.headers['idempotency-key'] as string | undefined, status: 0, replayed: false };
      seen.push(entry);
      const envelope = (status: number, code: string, type: string) =>
        res.writeHead(status, { 'content-type': 'application/json', ...(status === 429 ? { 'retry-after': '1' } : {}) })
          .end(JSON.stringify({ error: { type, code, message: 'injected', request_id: 'req_proxy' } }));
      if (fault === '429') return (entry.status = 429), envelope(429, 'rate_limited', 'rate_limit_error');
      if (fault === '503') return (entry.status = 503), envelope(503, 'service_unavailable', 'api_error');
      if (fault === '409') return (entry.status = 409), envelope(409, 'idempotency_key_in_use', 'idempotency_error');
      const url = new URL(req.url!, target);
      const upstream = httpRequest(url, { method: req.method, headers: { ...req.headers, host: url.host } }, (up) => {
        const body: Buffer[] = [];
        up.on('data', (c: Buffer) => body.push(c));
        up.on('end', () => {
          entry.replayed = up.headers['idempotent-replayed'] === 'true';
          // the gateway did the work; its answer is lost on the way back
          if (fault === 'drop') return (entry.status = 'dropped'), res.socket?.destroy();
          entry.status = up.statusCode!;
          res.writeHead(up.statusCode!, up.headers).end(Buffer.concat(body));
        });
      });
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    plan, seen,
    close: () => new Promise((r) => server.close(r)),
  };
}

describe('the Node client against a real gateway', () => {
  let gw: Proc;
  let proxy: Awaited<ReturnType<typeof faultProxy>>;
  let settle: SettleClient;
  let key: string;
  let temp: TempDatabase | undefined;

  before(async () => {
    // PostgreSQL when there is one (a gateway on it starts faster), else the embedded database
    temp = (await postgresAvailable()) ? await createTempDatabase() : undefined;
    gw = await spawnGateway({ databaseUrl: temp?.url });
    proxy = await faultProxy(gw.url);
    const admin = createSettleClient({ apiKey: ADMIN_KEY, baseUrl: gw.url });
    const merchant = await unwrap(admin.POST('/v1/admin/merchants', { body: { name: 'Client merchant' } }));
    key = merchant.api_keys.test;
    settle = createSettleClient({ apiKey: key, baseUrl: proxy.url, retryBaseMs: 20 });
    await unwrap(settle.POST('/v1/connector_accounts', { body: { connector: 'sandbox', name: 'sandbox' } }));
  });
  after(async () => {
    await gw?.kill();
    await proxy?.close();
    await temp?.drop();
  });

  const payment = () => unwrap(settle.POST('/v1/payments', { body: { amount: 5000, currency: 'EUR', payment_method: 'pm_card_visa' } }));

  test('pays and refunds with typed calls, and throws the API\'s errors typed', async () => {
    const p = await payment();
    assert.equal(p.status, 'succeeded');
    const refund = await unwrap(settle.POST('/v1/payments/{id}/refunds', { params: { path: { id: p.id } }, body: { amount: 2000, reason: 'customer_request' } }));
    assert.equal(refund.status, 'succeeded');
    assert.equal(refund.payment.amount_refundable, 3000);
    const err = await unwrap(settle.POST('/v1/payments/{id}/refunds', { params: { path: { id: p.id } }, body: { amount: 9000 } })).catch((e: unknown) => e);
    assert.ok(err instanceof SettleApiError);
    assert.equal(err.status, 422);
    assert.equal(err.code, 'amount_too_large');
    assert.equal(err.param, 'amount');
    assert.match(err.requestId, /^req_/);
    const declined = await unwrap(settle.POST('/v1/payments', { body: { amount: 100, currency: 'EUR', payment_method: 'pm_card_declined' } })).catch((e: unknown) => e);
    assert.ok(declined instanceof SettleApiError);
    assert.equal(declined.code, 'card_declined');
    assert.equal(declined.status, 402);
  });

  test('retries a refund whose answer was lost with the same Idempotency-Key, and refunds once', async () => {
    const p = await payment();
    proxy.seen.length = 0;
    proxy.plan.push('drop');
    const refund = await unwrap(settle.POST('/v1/payments/{id}/refunds', { params: { path: { id: p.id } }, body: { amount: 1500 } }));
    const posts = proxy.seen.filter((s) => s.method === 'POST');
    assert.deepEqual(posts.map((s) => s.status), ['dropped', 201]);
    assert.ok(posts[0].key);
    assert.equal(posts[1].key, posts[0].key, 'the retry carries the first attempt\'s key');
    assert.equal(posts[1].replayed, true, 'the gateway answered the retry with the stored refund');
    const refunds = await unwrap(settle.GET('/v1/payments/{id}/refunds', { params: { path: { id: p.id } } }));
    assert.deepEqual(refunds.data.map((r) => r.id), [refund.id]);
    assert.equal(refunds.data[0].amount, 1500);
  });

  test('waits Retry-After on 429 and retries 503 and 409 idempotency_key_in_use, with one key', async () => {
    proxy.seen.length = 0;
    proxy.plan.push('429', '503', '409');
    const started = Date.now();
    const p = await payment();
    const elapsed = Date.now() - started;
    assert.deepEqual(proxy.seen.map((s) => s.status), [429, 503, 409, 201]);
    assert.equal(new Set(proxy.seen.map((s) => s.key)).size, 1);
    assert.ok(elapsed >= 1000, `Retry-After: 1 was honoured (${elapsed} ms)`);
    const found = await unwrap(settle.GET('/v1/payments/{id}', { params: { path: { id: p.id } } }));
    assert.equal(found.id, p.id);
  });

  test('gives up after maxRetries with the last answer, and does not retry a definite error', async () => {
    const impatient = createSettleClient({ apiKey: key, baseUrl: proxy.url, maxRetries: 2, retryBaseMs: 10 });
    proxy.seen.length = 0;
    proxy.plan.push('503', '503', '503', '503');
    const err = await unwrap(impatient.GET('/v1/payments')).catch((e: unknown) => e);
    assert.ok(err instanceof SettleApiError);
    assert.equal(err.status, 503);
    assert.equal(proxy.seen.length, 3);
    proxy.plan.length = 0;
    proxy.seen.length = 0;
    const missing = await unwrap(impatient.GET('/v1/payments/{id}', { params: { path: { id: 'pay_missing' } } })).catch((e: unknown) => e);
    assert.ok(missing instanceof SettleApiError);
    assert.equal(missing.code, 'payment_not_found');
    assert.equal(proxy.seen.length, 1);
  });

  test('verifies a real webhook delivery and types its event', async () => {
    const deliveries: { body: string; headers: Record<string, string | string[] | undefined> }[] = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        deliveries.push({ body, headers: req.headers });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
      const endpoint = await unwrap(settle.POST('/v1/webhook_endpoints', { body: { url, enabled_events: ['payment.succeeded'] } }));
      const p = await payment();
      for (let i = 0; i < 100 && !deliveries.some((d) => d.body.includes(p.id)); i++) await new Promise((r) => setTimeout(r, 100));
      const delivery = deliveries.find((d) => d.body.includes(p.id));
      assert.ok(delivery, 'the event was delivered');
      const event: WebhookEvent = verifyWebhook({ payload: delivery.body, headers: delivery.headers, secret: endpoint.secret });
      assert.equal(event.type, 'payment.succeeded');
      if (event.type === 'payment.succeeded') assert.equal(event.data.object.amount_captured, 5000);
      assert.throws(() => verifyWebhook({ payload: delivery.body.replace('5000', '5001'), headers: delivery.headers, secret: endpoint.secret }), WebhookSignatureError);
      assert.throws(() => verifyWebhook({ payload: delivery.body, headers: delivery.headers, secret: 'whsec_other' }), WebhookSignatureError);
    } finally {
      await new Promise((r) => receiver.close(r));
    }
  });

  test('ships the types the gateway\'s document generates (regenerate with npm run generate)', async () => {
    const doc = await (await fetch(`${gw.url}/openapi.json`)).json();
    const { generateSchema } = (await import(pathToFileURL(join(ROOT, 'packages/node/scripts/schema-source.mjs')).href)) as { generateSchema(d: unknown): Promise<string> };
    const committed = await readFile(join(ROOT, 'packages/node/src/schema.ts'), 'utf8');
    assert.ok(committed === (await generateSchema(doc)), 'packages/node/src/schema.ts is stale: run `npm run generate -w @settle-gateway/node -- <gateway url>`');
  });
});
