/**
 * The psp-sim's Adyen wire, checked against sources nobody here wrote: the official
 * `@adyen/api-library` builds every request and reads every answer (its services, models, error
 * class and HMAC validator, unmodified), and every request it sends, every answer the sim gives and
 * every notification the sim posts validates (ajv) against Adyen's published OpenAPI documents
 * (CheckoutService-v71.json, Webhooks-v1.json, MIT, kept unmodified in test/psp-specs/adyen).
 *
 * The library reaches the sim through its documented extension point, a `ClientInterface` given to
 * `new Client(config, httpClient)`: its default client only speaks https, the sim is plain http on
 * loopback. The client below sends what the library's own client sends (the URL the library built,
 * rebased on the sim; `X-API-Key`; `Idempotency-Key`; JSON) and fails like it (an
 * `HttpClientException` carrying the parsed `ServiceError`).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import adyen from '@adyen/api-library';
import type { Types } from '@adyen/api-library';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { runPspSim, startPspSim, type PspSimHandle } from '../../src/psp-sim/server.js';
import { adyenRetrySchedule, nextRetryWait } from '../../src/psp-sim/webhook-dispatcher.js';

const { Client, CheckoutAPI, HttpClientException, EnvironmentEnum, hmacValidator: HmacValidator } = adyen;
type PaymentRequest = Types.checkout.PaymentRequest;

const SPECS = new URL('../../../test/psp-specs/adyen/', import.meta.url);
const MERCHANT = 'SettleSimECOM';
const API_KEY = 'AQE_sim_test_key';
/** A 64-byte HMAC key in hex, as Adyen's Customer Area generates them. */
const HMAC_KEY = '44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056'.repeat(2);

// ------------------------------------------------------------------------------- the schemas

/**
 * Adyen's documents are OpenAPI 3.1 (JSON Schema 2020-12 inside), so ajv's 2020 dialect compiles
 * them as they are, each loaded whole so their `#/components/schemas/…` refs resolve. Tolerated:
 * - `strict: false`: the documents carry OpenAPI's own keywords beside JSON Schema's
 *   (`x-addedInVersion`, `x-anyOf`, `x-enum`, `example`, `discriminator`, `nullable`), which are
 *   annotations to ajv; `nullable` (an OpenAPI 3.0 left-over) is therefore ignored, so a null
 *   where a field says `nullable` would fail — the sim sends no nulls.
 * - the OpenAPI formats `int32` and `int64`, which JSON Schema does not define: checked as integers
 *   in their ranges (int64 up to the largest safe integer JSON can carry exactly).
 */
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
ajv.addSchema(JSON.parse(readFileSync(new URL('CheckoutService-v71.json', SPECS), 'utf8')), 'checkout');
const webhooksDoc = JSON.parse(readFileSync(new URL('Webhooks-v1.json', SPECS), 'utf8')) as {
  webhooks: Record<string, { post: { requestBody: { content: { 'application/json': { schema: { $ref: string } } } } } }>;
};
ajv.addSchema(webhooksDoc, 'webhooks');

const compiled = new Map<string, ValidateFunction>();
function schema(ref: string): ValidateFunction {
  let v = compiled.get(ref);
  if (!v) {
    v = ajv.compile({ $ref: ref });
    compiled.set(ref, v);
  }
  return v;
}
function assertValid(ref: string, value: unknown, what: string): void {
  const validate = schema(ref);
  assert.ok(validate(value), `${what} does not validate against ${ref}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`);
}
const checkout = (name: string): string => `checkout#/components/schemas/${name}`;
/** The schema Adyen's webhook document gives the body of one event code. */
const notificationSchema = (eventCode: string): string =>
  `webhooks${webhooksDoc.webhooks[`/${eventCode}`].post.requestBody.content['application/json'].schema.$ref}`;

/** Which request and response schemas each route has in CheckoutService-v71. */
function schemasOf(path: string): { request: string; response: string } {
  if (/\/payments$/.test(path)) return { request: checkout('PaymentRequest'), response: checkout('PaymentResponse') };
  if (/\/captures$/.test(path)) return { request: checkout('PaymentCaptureRequest'), response: checkout('PaymentCaptureResponse') };
  if (/\/cancels$/.test(path)) return { request: checkout('PaymentCancelRequest'), response: checkout('PaymentCancelResponse') };
  if (/\/refunds$/.test(path)) return { request: checkout('PaymentRefundRequest'), response: checkout('PaymentRefundResponse') };
  throw new Error(`no schema for ${path}`);
}

// ------------------------------------------------------------------ the library's HTTP client

interface Exchange {
  url: string;
  request: unknown;
  status: number;
  response: unknown;
  headers: Headers;
}

/** A `ClientInterface` over plain http: the library's URL rebased on the sim, its headers, its errors. */
class LoopbackClient {
  readonly exchanges: Exchange[] = [];
  constructor(private readonly base: string) {}

  async request(endpoint: string, json: string | Buffer, config: { apiKey?: string; connectionTimeoutMillis?: number }, _isApiKeyRequired: boolean, options: { idempotencyKey?: string } = {}): Promise<string> {
    const url = endpoint.replace(/^https:\/\/checkout-test\.adyen\.com/, this.base);
    const headers: Record<string, string> = { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache', 'Accept-Charset': 'utf-8' };
    if (config.apiKey) headers['X-API-Key'] = config.apiKey;
    if (options.idempotencyKey) headers['Idempotency-Key'] = options.idempotencyKey;
    const res = await fetch(url, {
      method: 'POST',
      headers,
      body: typeof json === 'string' ? json : json.toString('utf8'),
      ...(config.connectionTimeoutMillis ? { signal: AbortSignal.timeout(config.connectionTimeoutMillis) } : {}),
    });
    const text = await res.text();
    this.exchanges.push({ url, request: JSON.parse(json.toString()), status: res.status, response: text ? JSON.parse(text) : undefined, headers: res.headers });
    if (res.status < 200 || res.status >= 300) {
      const apiError = JSON.parse(text) as { status: number; errorCode: string; message: string };
      throw new HttpClientException({
        message: `HTTP Exception: ${apiError.status}. ${res.statusText}: ${apiError.message}`,
        statusCode: apiError.status,
        errorCode: apiError.errorCode,
        responseBody: text,
        apiError: apiError as never,
      });
    }
    return text;
  }

  last(): Exchange {
    const e = this.exchanges.at(-1);
    assert.ok(e, 'no exchange');
    return e;
  }
}

// ------------------------------------------------------------------------------ the fixture

interface Received {
  body: Types.notification.Notification;
  raw: string;
}

let sim: PspSimHandle;
let http: LoopbackClient;
let api: InstanceType<typeof CheckoutAPI>;
let receiver: Server;
const received: Received[] = [];
/** What the receiver answers next (then `[accepted]`). */
const answers: Array<{ status: number; body: string }> = [];

before(async () => {
  sim = await startPspSim({ port: 0, wire: 'adyen' });
  http = new LoopbackClient(sim.url);
  api = new CheckoutAPI(new Client({ apiKey: API_KEY, environment: EnvironmentEnum.TEST }, http));
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ body: JSON.parse(body) as Types.notification.Notification, raw: body });
      const answer = answers.shift() ?? { status: 200, body: '[accepted]' };
      res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(answer.body);
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const target = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/adyen`;
  await simCall('PUT', `/_sim/accounts/${MERCHANT}/webhook`, { url: target, secret: HMAC_KEY });
});

after(async () => {
  await sim.close();
  await new Promise((resolve) => receiver.close(resolve));
});

beforeEach(async () => {
  await simCall('DELETE', '/_sim/faults');
});

async function simCall(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${sim.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

type Item = Types.notification.NotificationRequestItem;

/** Waits for the notification items matching `match`, validating each batch as it arrives. */
async function notifications(match: (i: Item) => boolean, count = 1, timeoutMs = 10_000): Promise<Item[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const items = received.flatMap((r) => r.body.notificationItems?.map((w) => w.NotificationRequestItem) ?? []).filter(match);
    if (items.length >= count) return items;
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${count} notification(s); have ${JSON.stringify(received.map((r) => r.body))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const byPsp = (pspReference: string, eventCode: string) => (i: Item) => i.pspReference === pspReference && i.eventCode === (eventCode as Item['eventCode']);

/** Every request the library sent and every answer the sim gave validate against the v71 document. */
function assertExchangesValid(): void {
  for (const e of http.exchanges) {
    const path = new URL(e.url).pathname;
    const { request, response } = schemasOf(path);
    assertValid(request, e.request, `request to ${path}`);
    assertValid(e.status >= 400 ? checkout('ServiceError') : response, e.response, `answer ${e.status} of ${path}`);
  }
}

/** Every notification received validates against its event's schema and carries a valid HMAC. */
function assertNotificationsValid(): void {
  const validator = new HmacValidator();
  for (const { body } of received) {
    assert.equal(body.live, 'false');
    for (const { NotificationRequestItem: item } of body.notificationItems ?? []) {
      assertValid(notificationSchema(item.eventCode), body, `${item.eventCode} notification`);
      assert.equal(validator.validateHMAC(item, HMAC_KEY), true, `HMAC of ${item.eventCode} ${item.pspReference}`);
    }
  }
}

let seq = 0;
function paymentRequest(overrides: Partial<PaymentRequest> = {}, card: Record<string, string> = {}): PaymentRequest {
  seq += 1;
  return {
    amount: { currency: 'EUR', value: 1000 },
    merchantAccount: MERCHANT,
    reference: `pay_${seq}_${Date.now()}`,
    returnUrl: 'https://merchant.example/return',
    paymentMethod: {
      type: 'scheme',
      encryptedCardNumber: 'test_4111111111111111',
      encryptedExpiryMonth: 'test_03',
      encryptedExpiryYear: 'test_2030',
      encryptedSecurityCode: 'test_737',
      ...card,
    } as PaymentRequest['paymentMethod'],
    ...overrides,
  };
}

async function authorise(overrides: Partial<PaymentRequest> = {}, card: Record<string, string> = {}) {
  const res = await api.PaymentsApi.payments(paymentRequest(overrides, card), { idempotencyKey: `pay-${seq}-${Math.random()}` });
  assert.ok(res.pspReference);
  return res;
}

// ---------------------------------------------------------------------------------- the tests

describe('psp-sim Adyen wire, through @adyen/api-library', () => {
  it('authorises a test card (captured at once) and notifies AUTHORISATION with a valid HMAC', async () => {
    const res = await authorise();
    assert.equal(res.resultCode, 'Authorised');
    assert.equal(res.amount?.value, 1000);
    assert.equal(http.last().status, 200);
    assert.match(res.pspReference!, /^[A-Z0-9]{16}$/);
    const [item] = await notifications(byPsp(res.pspReference!, 'AUTHORISATION'));
    assert.equal(item.success, 'true');
    assert.equal(item.merchantAccountCode, MERCHANT);
    assert.equal(item.merchantReference, res.merchantReference);
    const state = await simCall('GET', `/_sim/payments/${res.pspReference}`);
    assert.equal(state.status, 'captured');
    assert.equal(state.amount_captured, 1000);
    // the library's validator refuses the same item under another key or with a changed amount
    const validator = new HmacValidator();
    assert.equal(validator.validateHMAC(item, HMAC_KEY.replace(/^4/, '5')), false);
    assert.equal(validator.validateHMAC({ ...item, amount: { ...item.amount, value: 1 } }, HMAC_KEY), false);
  });

  it('refuses with Adyen\'s test refusal values and an unknown card, resultCode Refused with refusalReason', async () => {
    const declined = await authorise({}, { holderName: 'DECLINED' });
    assert.equal(declined.resultCode, 'Refused');
    assert.equal(declined.refusalReason, 'Refused');
    assert.equal(declined.refusalReasonCode, '2');
    const expired = await authorise({ additionalData: { RequestedTestAcquirerResponseCode: '6' } });
    assert.equal(expired.resultCode, 'Refused');
    assert.equal(expired.refusalReason, 'Expired Card');
    const unknown = await authorise({}, { encryptedCardNumber: 'test_4000000000000002' });
    assert.equal(unknown.refusalReason, 'Invalid Card Number');
    const [item] = await notifications(byPsp(declined.pspReference!, 'AUTHORISATION'));
    assert.equal(item.success, 'false');
    assert.equal(item.reason, 'Refused');
    const state = await simCall('GET', `/_sim/payments/${declined.pspReference}`);
    assert.equal(state.status, 'declined');
  });

  it('manual capture: authorised only, a partial capture is received then CAPTURE notifies the captured amount', async () => {
    const pay = await authorise({ additionalData: { manualCapture: 'true' } }, { encryptedCardNumber: 'test_5555341244441115' });
    assert.equal((await simCall('GET', `/_sim/payments/${pay.pspReference}`)).status, 'authorized');
    const cap = await api.ModificationsApi.captureAuthorisedPayment(
      pay.pspReference!,
      { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 600 }, reference: 'cap_1' },
      { idempotencyKey: `cap-${pay.pspReference}` },
    );
    assert.equal(cap.status, 'received');
    assert.equal(http.last().status, 201);
    assert.equal(cap.paymentPspReference, pay.pspReference);
    const [item] = await notifications(byPsp(cap.pspReference, 'CAPTURE'));
    assert.equal(item.success, 'true');
    assert.equal(item.originalReference, pay.pspReference);
    assert.equal(item.merchantReference, 'cap_1');
    assert.equal(item.amount.value, 600);
    assert.equal(item.paymentMethod, 'mc');
    assert.equal((await simCall('GET', `/_sim/payments/${pay.pspReference}`)).amount_captured, 600);

    // a capture the scheme rejects afterwards: CAPTURE_FAILED, and the payment is uncaptured
    await simCall('POST', `/_sim/payments/${pay.pspReference}/capture_failed`);
    const [failed] = await notifications(byPsp(cap.pspReference, 'CAPTURE_FAILED'));
    assert.equal(failed.originalReference, pay.pspReference);
    assert.equal(failed.amount.value, 600);
    assert.equal((await simCall('GET', `/_sim/payments/${pay.pspReference}`)).amount_captured, 0);
  });

  it('also serves the contract\'s own /v71 paths (the library v32 calls /v72)', async () => {
    assert.match(http.last().url, /\/v72\//);
    const res = await fetch(`${sim.url}/v71/payments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': API_KEY },
      body: JSON.stringify(paymentRequest()),
    });
    const body = await res.json();
    assert.equal(res.status, 200);
    assertValid(checkout('PaymentResponse'), body, '/v71/payments answer');
    assert.equal((body as { resultCode: string }).resultCode, 'Authorised');
    const other = await fetch(`${sim.url}/v68/payments`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': API_KEY }, body: '{}' });
    assert.equal(other.status, 404);
    assertValid(checkout('ServiceError'), await other.json(), '404 of another version');
  });

  it('cancels an authorised payment (CANCELLATION true) and reports a refused cancel (CANCELLATION false)', async () => {
    const pay = await authorise({ captureDelayHours: 2 });
    const cancel = await api.ModificationsApi.cancelAuthorisedPaymentByPspReference(pay.pspReference!, { merchantAccount: MERCHANT, reference: 'cancel_1' });
    assert.equal(cancel.status, 'received');
    const [ok] = await notifications(byPsp(cancel.pspReference, 'CANCELLATION'));
    assert.equal(ok.success, 'true');
    assert.equal((await simCall('GET', `/_sim/payments/${pay.pspReference}`)).status, 'canceled');

    const captured = await authorise();
    const late = await api.ModificationsApi.cancelAuthorisedPaymentByPspReference(captured.pspReference!, { merchantAccount: MERCHANT });
    assert.equal(late.status, 'received');
    const [refused] = await notifications(byPsp(late.pspReference, 'CANCELLATION'));
    assert.equal(refused.success, 'false');
    assert.ok(refused.reason);
    assert.equal(refused.merchantReference, captured.merchantReference);
  });

  it('refunds: received, then REFUND true with the refund\'s reference; an over-refund is received then REFUND false', async () => {
    const pay = await authorise();
    const refund = await api.ModificationsApi.refundCapturedPayment(
      pay.pspReference!,
      { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 400 }, reference: 're_settle_1', merchantRefundReason: 'CUSTOMER REQUEST' as never },
      { idempotencyKey: 'settle_re_1' },
    );
    assert.equal(refund.status, 'received');
    assert.equal(http.last().headers.get('idempotency-key'), 'settle_re_1');
    const [item] = await notifications(byPsp(refund.pspReference, 'REFUND'));
    assert.equal(item.success, 'true');
    assert.equal(item.originalReference, pay.pspReference);
    assert.equal(item.merchantReference, 're_settle_1');
    assert.equal(item.amount.value, 400);

    const over = await api.ModificationsApi.refundCapturedPayment(pay.pspReference!, { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 601 }, reference: 're_settle_2' });
    assert.equal(over.status, 'received');
    const [refused] = await notifications(byPsp(over.pspReference, 'REFUND'));
    assert.equal(refused.success, 'false');
    assert.match(refused.reason ?? '', /exceeds/);
    const state = await simCall('GET', `/_sim/payments/${pay.pspReference}`);
    assert.equal(state.amount_refunded, 400);
    assert.equal((state.refunds as unknown[]).length, 1);
  });

  it('Idempotency-Key: the same body replays the first answer, another body is a 422 ServiceError', async () => {
    const pay = await authorise();
    const request = { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 300 }, reference: 're_idem' };
    const first = await api.ModificationsApi.refundCapturedPayment(pay.pspReference!, request, { idempotencyKey: 'settle_re_idem' });
    const second = await api.ModificationsApi.refundCapturedPayment(pay.pspReference!, request, { idempotencyKey: 'settle_re_idem' });
    assert.equal(second.pspReference, first.pspReference);
    await assert.rejects(
      api.ModificationsApi.refundCapturedPayment(pay.pspReference!, { ...request, amount: { currency: 'EUR', value: 301 } }, { idempotencyKey: 'settle_re_idem' }),
      (err: InstanceType<typeof HttpClientException>) => err instanceof HttpClientException && err.statusCode === 422 && err.errorCode === '704',
    );
    const state = await simCall('GET', `/_sim/payments/${pay.pspReference}`);
    assert.equal((state.refunds as unknown[]).length, 1, 'one refund for one key');
    await notifications(byPsp(first.pspReference, 'REFUND'));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await notifications(byPsp(first.pspReference, 'REFUND'))).length, 1, 'a replay sends no second notification');
  });

  it('answers Adyen\'s ServiceError for a missing API key (401), an unknown payment and a bad amount (422)', async () => {
    const res = await fetch(`${sim.url}/v71/payments`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(paymentRequest()) });
    assert.equal(res.status, 401);
    const unauthorized = (await res.json()) as Record<string, unknown>;
    assertValid(checkout('ServiceError'), unauthorized, '401');
    assert.equal(unauthorized.errorType, 'security');
    await assert.rejects(
      api.ModificationsApi.refundCapturedPayment('ABCDEFGHIJKLMNOP', { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 1 } }),
      (err: InstanceType<typeof HttpClientException>) => err.statusCode === 422 && err.errorCode === '167',
    );
    await assert.rejects(
      api.PaymentsApi.payments(paymentRequest({ amount: { currency: 'EUR', value: 0 } })),
      (err: InstanceType<typeof HttpClientException>) => err.statusCode === 422 && err.errorCode === '137',
    );
    const other = await authorise({ merchantAccount: 'AnotherMerchant' });
    await assert.rejects(
      api.ModificationsApi.refundCapturedPayment(other.pspReference!, { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 1 } }),
      (err: InstanceType<typeof HttpClientException>) => err.statusCode === 422,
      'another merchant account\'s payment does not exist for this one',
    );
  });

  it('a dashboard refund is a REFUND whose pspReference the gateway never asked for', async () => {
    const pay = await authorise();
    const before = new Set(http.exchanges.map((e) => (e.response as { pspReference?: string } | undefined)?.pspReference));
    const dashboard = await simCall('POST', `/_sim/payments/${pay.pspReference}/refunds`, { amount: 250 });
    const [item] = await notifications((i) => i.eventCode === 'REFUND' && i.originalReference === pay.pspReference);
    assert.equal(item.success, 'true');
    assert.equal(dashboard.id, item.pspReference, 'the operator API names the refund by its psp reference');
    assert.equal(dashboard.payment_ref, pay.pspReference);
    const state = await simCall('GET', `/_sim/payments/${pay.pspReference}`);
    assert.equal(state.payment_ref, pay.pspReference);
    assert.deepEqual((state.refunds as Array<{ refund_ref: string }>).map((r) => r.refund_ref), [item.pspReference]);
    assert.equal(item.amount.value, 250);
    assert.equal(before.has(item.pspReference), false);
    assert.equal(item.merchantReference, pay.merchantReference);
  });

  it('a refund that fails after succeeding: REFUND_FAILED, or REFUNDED_REVERSED by the bank\'s code', async () => {
    const pay = await authorise();
    const a = await api.ModificationsApi.refundCapturedPayment(pay.pspReference!, { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 100 }, reference: 're_a' });
    const b = await api.ModificationsApi.refundCapturedPayment(pay.pspReference!, { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 200 }, reference: 're_b' });
    await notifications(byPsp(a.pspReference, 'REFUND'));
    await notifications(byPsp(b.pspReference, 'REFUND'));
    await simCall('POST', `/_sim/refunds/${a.pspReference}/fail`, {});
    await simCall('POST', `/_sim/refunds/${b.pspReference}/fail`, { code: 'refunded_reversed', message: 'Funds returned by the issuer' });
    const [failed] = await notifications(byPsp(a.pspReference, 'REFUND_FAILED'));
    const [reversed] = await notifications(byPsp(b.pspReference, 'REFUNDED_REVERSED'));
    assert.equal(failed.originalReference, pay.pspReference);
    assert.equal(failed.merchantReference, 're_a');
    assert.equal(reversed.amount.value, 200);
    assert.equal((await simCall('GET', `/_sim/payments/${pay.pspReference}`)).amount_refunded, 0);
  });

  it('a pending refund says nothing until it settles; a refund the bank refuses is REFUND false', async () => {
    const pending = await authorise({}, { holderName: 'REFUND_PENDING' });
    const p = await api.ModificationsApi.refundCapturedPayment(pending.pspReference!, { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 500 }, reference: 're_p' });
    await new Promise((r) => setTimeout(r, 150));
    assert.equal((await notifications(byPsp(p.pspReference, 'REFUND'), 0)).length, 0);
    await simCall('POST', '/_sim/refunds/settle_pending', {});
    const [settled] = await notifications(byPsp(p.pspReference, 'REFUND'));
    assert.equal(settled.success, 'true');

    const failing = await authorise({}, { holderName: 'REFUND_FAILS' });
    const f = await api.ModificationsApi.refundCapturedPayment(failing.pspReference!, { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 500 } });
    const [refused] = await notifications(byPsp(f.pspReference, 'REFUND'));
    assert.equal(refused.success, 'false');
    assert.equal(refused.merchantReference, failing.merchantReference, 'without a modification reference, the payment\'s');
  });

  it('retries a notification until it is answered [accepted]', async () => {
    answers.push({ status: 200, body: 'ok' }, { status: 500, body: '' });
    const pay = await authorise();
    const items = await notifications(byPsp(pay.pspReference!, 'AUTHORISATION'), 3);
    assert.equal(items.length, 3, 'two refused answers, then the accepted one');
    const events = await simCall('GET', `/_sim/events?payment_ref=${pay.pspReference}&type=AUTHORISATION`);
    const [record] = events.data as Array<{ status: string; attempts: number; deliveries: number }>;
    assert.equal(record.status, 'delivered');
    assert.equal(record.attempts, 3);
    assert.equal(record.deliveries, 1);
  });

  it('faults: an injected 500 applies nothing; a dropped answer applied the refund and the retry replays it', async () => {
    const pay = await authorise();
    await simCall('PUT', '/_sim/faults', { error_rate: 1, ops: ['refund'] });
    await assert.rejects(
      api.ModificationsApi.refundCapturedPayment(pay.pspReference!, { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 100 } }, { idempotencyKey: 'settle_re_fault' }),
      (err: InstanceType<typeof HttpClientException>) => err.statusCode === 500,
    );
    assert.equal(((await simCall('GET', `/_sim/payments/${pay.pspReference}`)).refunds as unknown[]).length, 0);

    await simCall('PUT', '/_sim/faults', { drop_response_rate: 1, ops: ['refund'] });
    await assert.rejects(
      api.ModificationsApi.refundCapturedPayment(pay.pspReference!, { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 100 } }, { idempotencyKey: 'settle_re_fault' }),
      (err: Error) => !(err instanceof HttpClientException),
    );
    assert.equal(((await simCall('GET', `/_sim/payments/${pay.pspReference}`)).refunds as unknown[]).length, 1, 'applied before the answer was lost');
    await simCall('DELETE', '/_sim/faults');
    const retry = await api.ModificationsApi.refundCapturedPayment(pay.pspReference!, { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 100 } }, { idempotencyKey: 'settle_re_fault' });
    const [item] = await notifications(byPsp(retry.pspReference, 'REFUND'));
    assert.equal(item.success, 'true');
    assert.equal(((await simCall('GET', `/_sim/payments/${pay.pspReference}`)).refunds as unknown[]).length, 1);
  });

  it('faults: a slow PSP answers late; a PSP that never answers applied nothing', async () => {
    await simCall('PUT', '/_sim/faults', { latency_ms: 300, ops: ['authorize'] });
    const started = Date.now();
    const slow = await authorise();
    assert.equal(slow.resultCode, 'Authorised');
    assert.ok(Date.now() - started >= 290, `answered after ${Date.now() - started} ms`);

    await simCall('PUT', '/_sim/faults', { timeout_rate: 1, ops: ['authorize'] });
    const impatient = new CheckoutAPI(new Client({ apiKey: API_KEY, environment: EnvironmentEnum.TEST, connectionTimeoutMillis: 400 }, http));
    const request = paymentRequest();
    await assert.rejects(impatient.PaymentsApi.payments(request, { idempotencyKey: `timeout-${request.reference}` }), (err: Error) => err.name === 'TimeoutError');
    await simCall('DELETE', '/_sim/faults');
    const events = (await simCall('GET', '/_sim/events?type=AUTHORISATION')).data as unknown[];
    assert.equal(received.some((r) => r.raw.includes(request.reference)), false, 'no AUTHORISATION for the request that got no answer');
    // the retry under the same key does the work, once
    const retried = await api.PaymentsApi.payments(request, { idempotencyKey: `timeout-${request.reference}` });
    assert.equal(retried.resultCode, 'Authorised');
    const [auth] = await notifications((i) => i.eventCode === 'AUTHORISATION' && i.merchantReference === request.reference);
    assert.equal(auth.pspReference, retried.pspReference);
    assert.equal(((await simCall('GET', '/_sim/events?type=AUTHORISATION')).data as unknown[]).length, events.length + 1, 'one authorisation in all');
  });

  it('webhook chaos: a duplicated notification arrives twice, identical', async () => {
    await simCall('PUT', '/_sim/faults', { webhook: { duplicate: true } });
    const pay = await authorise();
    const refund = await api.ModificationsApi.refundCapturedPayment(pay.pspReference!, { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 100 } });
    const copies = await notifications(byPsp(refund.pspReference, 'REFUND'), 2);
    assert.deepEqual(copies[0], copies[1]);
  });

  it('webhook chaos: reordered notifications arrive in reverse, delayed ones late', async () => {
    const pay = await authorise();
    await simCall('PUT', '/_sim/faults', { webhook: { reorder: true } });
    const refs: string[] = [];
    for (const value of [100, 200, 300]) {
      const r = await api.ModificationsApi.refundCapturedPayment(pay.pspReference!, { merchantAccount: MERCHANT, amount: { currency: 'EUR', value } });
      refs.push(r.pspReference);
    }
    await notifications((i) => i.eventCode === 'REFUND' && refs.includes(i.pspReference), 3);
    const order = received
      .flatMap((r) => r.body.notificationItems.map((w) => w.NotificationRequestItem.pspReference))
      .filter((ref) => refs.includes(ref));
    assert.deepEqual(order, [...refs].reverse());

    await simCall('PUT', '/_sim/faults', { webhook: { delay_ms: 400 } });
    const sent = Date.now();
    const late = await api.ModificationsApi.refundCapturedPayment(pay.pspReference!, { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: 50 } });
    await notifications(byPsp(late.pspReference, 'REFUND'));
    assert.ok(Date.now() - sent >= 380, `arrived after ${Date.now() - sent} ms`);
  });

  it('the schemas bite: wrong shapes fail them (so the checks below are not vacuous)', () => {
    const bad = (ref: string, value: unknown) => assert.equal(schema(ref)(value), false, `${ref} accepted ${JSON.stringify(value)}`);
    bad(checkout('PaymentResponse'), { pspReference: 'X', resultCode: 'Approved' });
    bad(checkout('PaymentRefundResponse'), { merchantAccount: MERCHANT, paymentPspReference: 'A', pspReference: 'B', status: 'received' }); // no amount
    bad(checkout('PaymentCaptureRequest'), { merchantAccount: MERCHANT, amount: { currency: 'EUR', value: '600' } });
    bad(checkout('ServiceError'), { status: 422, errorCode: 167, message: 'x' });
    const item = { amount: { currency: 'EUR', value: 1 }, eventCode: 'REFUND', eventDate: '2026-12-01T18:00:00+00:00', merchantAccountCode: MERCHANT, pspReference: 'A', success: 'true' };
    bad(notificationSchema('REFUND'), { live: 'false', notificationItems: [{ NotificationRequestItem: item }] }); // no merchantReference
    bad(notificationSchema('REFUND'), { live: 'false', notificationItems: [{ NotificationRequestItem: { ...item, merchantReference: 'r', additionalData: { surprise: 'x' } } }] });
    assert.equal(schema(notificationSchema('REFUND'))({ live: 'false', notificationItems: [{ NotificationRequestItem: { ...item, merchantReference: 'r' } }] }), true);
  });

  it('every request the library sent and every answer validate against CheckoutService-v71; every notification against Webhooks-v1', () => {
    assert.ok(http.exchanges.length >= 20, `only ${http.exchanges.length} exchanges`);
    assert.ok(received.length >= 20, `only ${received.length} notifications`);
    const codes = new Set(received.flatMap((r) => r.body.notificationItems?.map((w) => w.NotificationRequestItem.eventCode) ?? []));
    for (const code of ['AUTHORISATION', 'CAPTURE', 'CAPTURE_FAILED', 'CANCELLATION', 'REFUND', 'REFUND_FAILED', 'REFUNDED_REVERSED']) {
      assert.ok(codes.has(code as Item['eventCode']), `no ${code} notification was sent`);
    }
    assertExchangesValid();
    assertNotificationsValid();
  });
});

describe('psp-sim Adyen wire: notifications retried on Adyen\'s schedule', () => {
  const MIN = 60_000;
  const HOUR = 60 * MIN;
  const DAYS_30 = 30 * 24 * HOUR;

  it('three retries at once, then 2, 5, 10, 15, 30 min, 1, 2, 4, 8 h, then every 8 h until 30 days; every wait scaled', () => {
    const real = adyenRetrySchedule();
    assert.deepEqual(real.waitsMs, [0, 0, 0, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR]);
    // walked with instant attempts: the last retry starts within 30 days of the first attempt
    let elapsed = 0;
    let retries = 0;
    for (let wait = nextRetryWait(real, 1, 0); wait !== undefined; wait = nextRetryWait(real, retries + 1, elapsed)) {
      elapsed += wait;
      retries += 1;
    }
    const scheduled = real.waitsMs.reduce((a, b) => a + b, 0);
    assert.equal(retries, 12 + Math.floor((DAYS_30 - scheduled) / (8 * HOUR)));
    assert.ok(elapsed <= DAYS_30 && elapsed + 8 * HOUR > DAYS_30, `last retry ${elapsed / HOUR} h after the first attempt`);
    const fast = adyenRetrySchedule(0.0002);
    assert.deepEqual(fast.waitsMs.map((w) => Math.round(w)), [0, 0, 0, 24, 60, 120, 180, 360, 720, 1440, 2880, 5760]);
    assert.equal(Math.round(fast.giveUpAfterMs!), 518_400);
  });

  it('a notification never acknowledged is retried through the schedule, then given up and listed failed', async () => {
    // at 1e-6 the 30 days last 2.6 s
    const quick = await startPspSim({ port: 0, wire: 'adyen', retryTimeScale: 1e-6 });
    let hits = 0;
    const refusing = createServer((req, res) => {
      hits += 1;
      req.resume();
      req.on('end', () => res.writeHead(503).end('busy'));
    });
    try {
      await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
      const target = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}/adyen`;
      await fetch(`${quick.url}/_sim/accounts/${MERCHANT}/webhook`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: target, secret: HMAC_KEY }) });
      const quickApi = new CheckoutAPI(new Client({ apiKey: API_KEY, environment: EnvironmentEnum.TEST }, new LoopbackClient(quick.url)));
      const pay = await quickApi.PaymentsApi.payments(paymentRequest(), { idempotencyKey: 'retried-for-30-days' });
      let record: { status: string; attempts: number; deliveries: number; last_error: string } | undefined;
      for (let i = 0; i < 300 && record?.status !== 'failed'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const events = await (await fetch(`${quick.url}/_sim/events?payment_ref=${pay.pspReference}`)).json() as { data: typeof record[] };
        record = events.data[0];
        if (i === 0) assert.equal(record?.status, 'scheduled', 'being retried');
      }
      assert.equal(record?.status, 'failed', JSON.stringify(record));
      assert.ok(record!.attempts > 13, `${record!.attempts} attempts: past the fixed waits into the 8-hourly ones`);
      assert.ok(record!.attempts <= 1 + 12 + Math.floor(DAYS_30 / (8 * HOUR)), `${record!.attempts} attempts`);
      assert.equal(record!.attempts, hits, 'every attempt reached the endpoint');
      assert.equal(record!.deliveries, 0);
      assert.equal(record!.last_error, 'HTTP 503');
    } finally {
      await quick.close();
      await new Promise((resolve) => refusing.close(resolve));
    }
  });

  it('--retry-time-scale: a number above 0 and at most 1, for the Adyen wire only', async () => {
    await assert.rejects(runPspSim(['--port', '0', '--wire', 'stripe', '--retry-time-scale', '0.5']), /Adyen wire/);
    await assert.rejects(runPspSim(['--port', '0', '--retry-time-scale', '0.5']), /Adyen wire/);
    for (const bad of ['0', '2', '-1', 'fast']) {
      await assert.rejects(runPspSim(['--port', '0', '--wire', 'adyen', '--retry-time-scale', bad]), /above 0 and at most 1/);
    }
  });
});
