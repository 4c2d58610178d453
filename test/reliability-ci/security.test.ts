/**
 * Security properties of the gateway, end to end:
 * - another merchant's objects, and the other mode's, do not exist (404 with the object's own
 *   *_not_found code) on every read and write route, lists never include them, and idempotency
 *   keys are scoped the same way;
 * - revoked keys fail within 1.1 s, also on another process; merchant keys are refused on admin
 *   routes and the admin key on merchant routes;
 * - secrets (API keys, the admin key, whsec_ secrets, PSP credentials) never appear in logs, in
 *   any response but the one that creates them, nor in clear in the database;
 * - inbound webhooks that are not signed by the account's secret, or signed too long ago, are
 *   refused with 400 and nothing is stored;
 * - live-mode webhook endpoints cannot point inside the network (SSRF);
 * - the per-key rate limit, in one process and shared by two processes through Redis;
 * - an address that keeps sending invalid keys gets 429 for each further invalid key, never for a valid one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { signSandboxWebhook } from '../../src/connectors/sandbox/sandbox-signature.js';
import { createTempDatabase, postgresOrSkip, type TempDatabase } from '../helpers/databases.js';
import { ADMIN_KEY, ENCRYPTION_KEY, createHarness, pay, type Harness, type Res } from '../helpers/harness.js';
import { client, spawnGateway, type Proc } from '../helpers/processes.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const rand = (n = 12) => randomBytes(n).toString('hex');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function assertError(res: Res, status: number, code: string, what: string): void {
  const ctx = `${what} → ${res.status} ${res.raw.slice(0, 300)}`;
  assert.equal(res.status, status, ctx);
  assert.equal(res.body?.error?.code, code, ctx);
  assert.match(String(res.headers['request-id']), /^req_/, ctx);
  assert.equal(res.body.error.request_id, res.headers['request-id'], ctx);
}

/** Every page of a list, as raw JSON texts. */
async function listAll(h: Harness, key: string, path: string): Promise<string[]> {
  const pages: string[] = [];
  let cursor: string | null = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const r = await h.call('GET', `${path}${sep}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { key });
    assert.equal(r.status, 200, `${path}: ${r.raw.slice(0, 300)}`);
    pages.push(r.raw);
    cursor = r.body.has_more ? r.body.next_cursor : null;
  } while (cursor);
  return pages;
}

// ---------------------------------------------------------------------------------------------

describe('isolation between merchants and modes', () => {
  let h: Harness;
  const viewerKeys: Record<string, string> = {};

  interface Owned {
    label: string;
    key: string;
    paid: any;
    manual: any;
    refund: any;
    account: any;
    endpoint: any;
    event: any;
    idempotencyKey: string;
    idempotent: any;
  }
  const owned: Owned[] = [];

  before(async () => {
    h = await createHarness('pglite');
    const a = h.merchant;
    const b = await h.newMerchant('Merchant B');
    const bLive = await h.call('POST', '/v1/connector_accounts', { key: b.liveKey, body: { connector: 'sandbox' } });
    assert.equal(bLive.status, 201, bLive.raw);
    Object.assign(viewerKeys, { 'A test': a.testKey, 'A live': a.liveKey, 'B test': b.testKey, 'B live': b.liveKey });

    for (const [label, key, url] of [
      ['A test', a.testKey, 'http://localhost:9/hooks'],
      // a public address literal: accepted in live mode without DNS, never called (no workers here)
      ['A live', a.liveKey, 'https://93.184.216.34/hooks'],
    ] as const) {
      const paid = await pay(h, { amount: 5000, order_id: `order-${rand()}` }, key);
      const manual = await pay(h, { amount: 3000, capture_method: 'manual' }, key);
      const refund = await h.call('POST', `/v1/payments/${paid.id}/refunds`, { key, body: { amount: 1000 } });
      assert.equal(refund.status, 201, refund.raw);
      const account = await h.call('POST', '/v1/connector_accounts', { key, body: { connector: 'sandbox', name: 'spare' } });
      assert.equal(account.status, 201, account.raw);
      const endpoint = await h.call('POST', '/v1/webhook_endpoints', { key, body: { url, enabled_events: ['*'] } });
      assert.equal(endpoint.status, 201, endpoint.raw);
      const events = await h.call('GET', '/v1/events?limit=1', { key });
      const idempotencyKey = `shared-${rand()}`;
      const idempotent = await h.call('POST', '/v1/payments', { key, idempotencyKey, body: { amount: 777, currency: 'USD', payment_method: 'pm_card_visa' } });
      assert.equal(idempotent.status, 201, idempotent.raw);
      owned.push({
        label, key, paid, manual, refund: refund.body, account: account.body, endpoint: endpoint.body, event: events.body.data[0], idempotencyKey, idempotent: idempotent.body,
      });
    }
  });
  after(async () => h?.close());

  test("another merchant's and the other mode's objects answer 404 with their own code on every read and write route", async () => {
    let checked = 0;
    for (const o of owned) {
      for (const [viewer, key] of Object.entries(viewerKeys).filter(([, k]) => k !== o.key)) {
        const expect404 = async (method: string, url: string, code: string, body?: unknown) => {
          const r = await h.call(method, url, { key, body });
          assertError(r, 404, code, `${viewer} ${method} ${url} (owned by ${o.label})`);
          checked++;
        };
        const p = o.paid.id;
        await expect404('GET', `/v1/payments/${p}`, 'payment_not_found');
        await expect404('GET', `/v1/payments/${o.manual.id}`, 'payment_not_found');
        await expect404('GET', `/v1/payments/${p}/refunds`, 'payment_not_found');
        await expect404('POST', `/v1/payments/${o.manual.id}/capture`, 'payment_not_found');
        await expect404('POST', `/v1/payments/${o.manual.id}/capture`, 'payment_not_found', { amount: 100 });
        await expect404('POST', `/v1/payments/${o.manual.id}/cancel`, 'payment_not_found');
        await expect404('POST', `/v1/payments/${p}/refunds`, 'payment_not_found');
        await expect404('POST', `/v1/payments/${p}/refunds`, 'payment_not_found', { amount: 100 });
        await expect404('POST', '/v1/refunds', 'payment_not_found', { payment_id: p, amount: 100 });
        await expect404('POST', '/v1/payments/refund', 'payment_not_found', { payment_intent_id: p });
        await expect404('GET', `/v1/refunds/${o.refund.id}`, 'refund_not_found');
        for (const id of [o.account.id, o.account.short_id]) {
          await expect404('GET', `/v1/connector_accounts/${id}`, 'connector_account_not_found');
          await expect404('POST', `/v1/connector_accounts/${id}/make_default`, 'connector_account_not_found');
          await expect404('DELETE', `/v1/connector_accounts/${id}`, 'connector_account_not_found');
          await expect404('DELETE', `/v1/connector_accounts/${id}?hard=true`, 'connector_account_not_found');
          await expect404('POST', '/v1/payments', 'connector_account_not_found', { amount: 100, currency: 'USD', payment_method: 'pm_card_visa', connector_account: id });
        }
        await expect404('GET', `/v1/webhook_endpoints/${o.endpoint.id}`, 'webhook_endpoint_not_found');
        await expect404('DELETE', `/v1/webhook_endpoints/${o.endpoint.id}`, 'webhook_endpoint_not_found');
        await expect404('GET', `/v1/events/${o.event.id}`, 'event_not_found');
        await expect404('POST', `/v1/events/${o.event.id}/redeliver`, 'event_not_found');

        // filters naming the owner's objects find nothing
        for (const path of [`/v1/refunds?payment_id=${p}`, `/v1/ledger/transactions?payment_id=${p}`, `/v1/payments?order_id=${o.paid.order_id}`]) {
          const r = await h.call('GET', path, { key });
          if (r.status === 404) assertError(r, 404, 'payment_not_found', `${viewer} GET ${path}`);
          else {
            assert.equal(r.status, 200, r.raw);
            assert.deepEqual(r.body.data, [], `${viewer} GET ${path} lists the owner's objects`);
          }
        }
      }
    }
    console.log(`isolation: ${checked} cross-merchant and cross-mode requests, all 404 with the object's code`);
  });

  test("lists never include another merchant's or the other mode's objects", async () => {
    for (const o of owned) {
      const ids = [o.paid.id, o.manual.id, o.refund.id, o.account.id, o.account.short_id, o.endpoint.id, o.event.id, o.idempotent.id];
      for (const [viewer, key] of Object.entries(viewerKeys).filter(([, k]) => k !== o.key)) {
        for (const path of ['/v1/payments', '/v1/refunds', '/v1/connector_accounts', '/v1/webhook_endpoints', '/v1/events', '/v1/ledger/transactions']) {
          const pages = await listAll(h, key, path);
          for (const id of ids) assert.ok(!pages.some((p) => p.includes(id)), `${viewer} GET ${path} shows ${id} of ${o.label}`);
        }
        const ledger = await h.call('GET', '/v1/ledger/accounts', { key });
        assert.equal(ledger.status, 200);
        for (const id of ids) assert.ok(!ledger.raw.includes(id), `${viewer} ledger accounts mention ${id}`);
      }
      // the owner does see them (so the checks above look at the right lists)
      const own = (await listAll(h, o.key, '/v1/payments')).join('');
      assert.ok(own.includes(o.paid.id) && own.includes(o.manual.id));
    }
  });

  test("a refund cannot be routed through another merchant's or mode's connector account", async () => {
    for (const o of owned) {
      for (const [viewer, key] of Object.entries(viewerKeys).filter(([, k]) => k !== o.key)) {
        const mine = await h.call('POST', '/v1/payments', { key, body: { amount: 2000, currency: 'USD', payment_method: 'pm_card_visa' } });
        assert.equal(mine.status, 201, mine.raw);
        for (const id of [o.account.id, o.account.short_id]) {
          const body = await h.call('POST', `/v1/payments/${mine.body.id}/refunds`, { key, body: { amount: 100, connector_account: id } });
          assertError(body, 400, 'connector_account_override_forbidden', `${viewer} refund naming ${o.label}'s account`);
          const header = await h.call('POST', `/v1/payments/${mine.body.id}/refunds`, { key, body: { amount: 100 }, headers: { 'x-connector-account': id } });
          assertError(header, 400, 'connector_account_override_forbidden', `${viewer} refund with X-Connector-Account of ${o.label}`);
        }
        const after = await h.call('GET', `/v1/payments/${mine.body.id}`, { key });
        assert.equal(after.body.amount_refunded, 0);
      }
    }
  });

  test('idempotency keys are scoped to merchant and mode: the same key elsewhere is a new request, not a replay', async () => {
    for (const o of owned) {
      for (const [viewer, key] of Object.entries(viewerKeys).filter(([, k]) => k !== o.key)) {
        const r = await h.call('POST', '/v1/payments', { key, idempotencyKey: o.idempotencyKey, body: { amount: 777, currency: 'USD', payment_method: 'pm_card_visa' } });
        assert.notEqual(r.headers['idempotent-replayed'], 'true', `${viewer} got ${o.label}'s stored response`);
        assert.equal(r.status, 201, r.raw);
        assert.notEqual(r.body.id, o.idempotent.id, `${viewer} was handed ${o.label}'s payment`);
      }
    }
  });

  test("the owners' objects are untouched by all of it", async () => {
    for (const o of owned) {
      const paid = await h.call('GET', `/v1/payments/${o.paid.id}`, { key: o.key });
      assert.equal(paid.body.amount_refunded, 1000);
      assert.equal(paid.body.status, 'partially_refunded');
      const manual = await h.call('GET', `/v1/payments/${o.manual.id}`, { key: o.key });
      assert.equal(manual.body.status, 'requires_capture');
      const account = await h.call('GET', `/v1/connector_accounts/${o.account.id}`, { key: o.key });
      assert.equal(account.body.status, 'active');
      const endpoint = await h.call('GET', `/v1/webhook_endpoints/${o.endpoint.id}`, { key: o.key });
      assert.equal(endpoint.status, 200);
      assert.equal(endpoint.body.status, 'enabled');
      assert.equal((await h.call('GET', `/v1/refunds/${o.refund.id}`, { key: o.key })).status, 200);
      const refunds = await h.call('GET', `/v1/payments/${o.paid.id}/refunds`, { key: o.key });
      assert.equal(refunds.body.data.length, 1);
    }
  });

  test('merchant keys are refused on admin routes, and the admin key on merchant routes', async () => {
    const a = h.merchant;
    const adminRoutes: [string, string, unknown][] = [
      ['POST', '/v1/admin/merchants', { name: 'x' }],
      ['POST', `/v1/admin/merchants/${a.id}/api_keys`, { mode: 'live' }],
      ['DELETE', `/v1/admin/api_keys/${a.testKey.slice(0, 16)}`, undefined],
      ['PUT', '/v1/admin/features/refunds', { enabled: false }],
      ['GET', '/v1/admin/features/refunds', undefined],
    ];
    for (const key of Object.values(viewerKeys)) {
      for (const [method, url, body] of adminRoutes) assertError(await h.call(method, url, { key, body }), 401, 'invalid_api_key', `merchant key on ${method} ${url}`);
    }
    const o = owned[0];
    const merchantRoutes: [string, string, unknown][] = [
      ['GET', '/v1/payments', undefined], ['POST', '/v1/payments', { amount: 100, currency: 'USD', payment_method: 'pm_card_visa' }],
      ['GET', `/v1/payments/${o.paid.id}`, undefined], ['POST', `/v1/payments/${o.manual.id}/capture`, undefined],
      ['POST', `/v1/payments/${o.manual.id}/cancel`, undefined], ['POST', `/v1/payments/${o.paid.id}/refunds`, { amount: 1 }],
      ['GET', `/v1/payments/${o.paid.id}/refunds`, undefined], ['POST', '/v1/refunds', { payment_id: o.paid.id, amount: 1 }],
      ['POST', '/v1/payments/refund', { payment_id: o.paid.id, amount: 1 }], ['GET', '/v1/refunds', undefined], ['GET', `/v1/refunds/${o.refund.id}`, undefined],
      ['GET', '/v1/connector_accounts', undefined], ['POST', '/v1/connector_accounts', { connector: 'sandbox' }],
      ['GET', `/v1/connector_accounts/${o.account.id}`, undefined], ['POST', `/v1/connector_accounts/${o.account.id}/make_default`, undefined],
      ['DELETE', `/v1/connector_accounts/${o.account.id}?hard=true`, undefined], ['GET', '/v1/ledger/accounts', undefined], ['GET', '/v1/ledger/transactions', undefined],
      ['GET', '/v1/webhook_endpoints', undefined], ['POST', '/v1/webhook_endpoints', { url: 'http://localhost:9/x', enabled_events: ['*'] }],
      ['GET', `/v1/webhook_endpoints/${o.endpoint.id}`, undefined], ['DELETE', `/v1/webhook_endpoints/${o.endpoint.id}`, undefined],
      ['GET', '/v1/events', undefined], ['GET', `/v1/events/${o.event.id}`, undefined], ['POST', `/v1/events/${o.event.id}/redeliver`, undefined],
    ];
    for (const [method, url, body] of merchantRoutes) assertError(await h.call(method, url, { key: ADMIN_KEY, body }), 401, 'invalid_api_key', `admin key on ${method} ${url}`);
    // and nothing happened: the manual payment is still waiting, the account and endpoint are there
    assert.equal((await h.call('GET', `/v1/payments/${o.manual.id}`, { key: o.key })).body.status, 'requires_capture');
    assert.equal((await h.call('GET', `/v1/connector_accounts/${o.account.id}`, { key: o.key })).status, 200);
    assert.equal((await h.call('GET', `/v1/webhook_endpoints/${o.endpoint.id}`, { key: o.key })).status, 200);
  });

  test('a revoked key is refused at once by the process that revoked it, on reads and writes', async () => {
    const created = await h.admin('POST', `/v1/admin/merchants/${h.merchant.id}/api_keys`, { mode: 'test' });
    assert.equal(created.status, 201, created.raw);
    const key = created.body.secret as string;
    assert.equal((await h.call('GET', '/v1/payments?limit=1', { key })).status, 200);
    const revoked = await h.admin('DELETE', `/v1/admin/api_keys/${created.body.key_prefix}`);
    assert.equal(revoked.status, 200, revoked.raw);
    assertError(await h.call('GET', '/v1/payments?limit=1', { key }), 401, 'invalid_api_key', 'revoked key, read');
    const write = await h.call('POST', '/v1/payments', { key, body: { amount: 100, currency: 'USD', payment_method: 'pm_card_visa' } });
    assertError(write, 401, 'invalid_api_key', 'revoked key, write');
    await sleep(1100);
    assertError(await h.call('GET', '/v1/payments?limit=1', { key }), 401, 'invalid_api_key', 'revoked key, after the cache window');
    // the merchant's other keys still work
    assert.equal((await h.call('GET', '/v1/payments?limit=1', { key: h.merchant.testKey })).status, 200);
  });

  test('live-mode webhook endpoints cannot point at loopback, private, link-local or metadata addresses', async () => {
    const inside = [
      'http://93.184.216.34/hooks', 'https://127.0.0.1/hooks', 'https://localhost/hooks', 'https://127.1/', 'https://2130706433/', 'https://0x7f.1/',
      'https://10.1.2.3/', 'https://172.16.0.1/', 'https://192.168.1.1/', 'https://169.254.169.254/latest/meta-data', 'https://0.0.0.0/',
      'https://[::1]/', 'https://[::]/', 'https://[fe80::1]/', 'https://[fc00::1]/', 'https://[::ffff:127.0.0.1]/', 'https://[::ffff:a9fe:a9fe]/',
      'https://100.64.0.1/', 'https://224.0.0.1/', 'https://255.255.255.255/',
    ];
    const before = (await h.db.query<{ n: number }>('SELECT count(*)::int AS n FROM webhook_endpoints')).rows[0].n;
    for (const url of inside) {
      const r = await h.call('POST', '/v1/webhook_endpoints', { key: h.merchant.liveKey, body: { url, enabled_events: ['*'] } });
      assertError(r, 400, 'invalid_param', `live endpoint ${url}`);
      assert.equal(r.body.error.param, 'url');
    }
    assert.equal((await h.db.query<{ n: number }>('SELECT count(*)::int AS n FROM webhook_endpoints')).rows[0].n, before);
  });

  test('inbound webhooks: a bad, foreign, stale or missing signature is refused with 400 and nothing is stored; a good one is stored once', async () => {
    const account = h.merchant.testAccount;
    const path = `/v1/connectors/sandbox/webhooks/${account.id}`;
    const secret = account.webhook_secret as string;
    const count = async () => (await h.db.query<{ n: number }>('SELECT count(*)::int AS n FROM inbound_webhooks')).rows[0].n;
    // the cumulative amount equals what is booked: a harmless event to store
    const p = owned[0].paid;
    const event = (id: string) =>
      JSON.stringify({ id, type: 'payment.refunded', created: Math.floor(Date.now() / 1000), data: { payment_ref: p.connector_ref, amount_refunded: 1000, refunds: [] } });
    const post = (body: string, signature?: string, to = path) =>
      h.call('POST', to, { payload: body, headers: { 'content-type': 'application/json', ...(signature ? { 'sandbox-signature': signature } : {}) } });
    const now = Math.floor(Date.now() / 1000);
    const body = event(`sbevt_${rand(8)}`);
    const start = await count();
    const bad: [string, string | undefined, string?][] = [
      ['no signature header', undefined],
      ['a made-up signature', `t=${now},v1=${rand(32)}`],
      ["the live account's secret", signSandboxWebhook(h.merchant.liveAccount.webhook_secret, body, now)],
      ["another account's secret", signSandboxWebhook(owned[1].account.webhook_secret ?? 'whsec_x', body, now)],
      ['our secret, 301 s ago', signSandboxWebhook(secret, body, now - 301)],
      ['our secret, an hour ago', signSandboxWebhook(secret, body, now - 3600)],
      ['our secret, 330 s ahead', signSandboxWebhook(secret, body, now + 330)], // margin: `now` only gets older
      ['our secret over another body', signSandboxWebhook(secret, event('sbevt_other'), now)],
      ['the secret itself as the header', secret],
    ];
    for (const [what, signature] of bad) {
      const r = await post(body, signature);
      assertError(r, 400, 'invalid_param', `inbound webhook with ${what}`);
      assert.equal(await count(), start, `${what}: nothing stored`);
    }
    // a good signature on the wrong account's path is still foreign there
    const live = await post(body, signSandboxWebhook(secret, body, now), `/v1/connectors/sandbox/webhooks/${h.merchant.liveAccount.id}`);
    assertError(live, 400, 'invalid_param', 'inbound webhook sent to another account');
    assert.equal(await count(), start);

    const good = await post(body, signSandboxWebhook(secret, body));
    assert.equal(good.status, 200, good.raw);
    assert.deepEqual(good.body, { received: true, duplicate: false });
    assert.equal(await count(), start + 1);
    const again = await post(body, signSandboxWebhook(secret, body));
    assert.equal(again.status, 200, again.raw);
    assert.equal(again.body.duplicate, true);
    assert.equal(await count(), start + 1);
    // just inside the 300 s tolerance is accepted
    const late = event(`sbevt_${rand(8)}`);
    assert.equal((await post(late, signSandboxWebhook(secret, late, Math.floor(Date.now() / 1000) - 290))).status, 200);
    assert.equal(await count(), start + 2);
  });
});

// ---------------------------------------------------------------------------------------------

describe('secrets never leak into logs, responses or the database', () => {
  let h: Harness;
  const chunks: string[] = [];
  const logStream = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  });
  /** Every response except the four that create a secret (and show it once, by design). */
  const seen: { what: string; text: string }[] = [];
  const secrets = new Map<string, string>();

  const call = async (method: string, url: string, opts: Parameters<Harness['call']>[2] = {}, createsSecret = false): Promise<Res> => {
    const r = await h.call(method, url, opts);
    if (!createsSecret) seen.push({ what: `${method} ${url} → ${r.status}`, text: `${r.raw}\n${JSON.stringify(r.headers)}` });
    return r;
  };

  before(async () => {
    h = await createHarness('pglite', { logStream });
  });
  after(async () => h?.close());

  test('after traffic that creates every kind of secret and fails with secrets in its headers, no log line, later response or table holds one', async () => {
    const a = h.merchant;
    secrets.set('admin key', ADMIN_KEY);
    secrets.set('encryption key', ENCRYPTION_KEY);
    secrets.set('test key', a.testKey);
    secrets.set('live key', a.liveKey);
    secrets.set('test account webhook secret', a.testAccount.webhook_secret);
    secrets.set('live account webhook secret', a.liveAccount.webhook_secret);

    const b = await call('POST', '/v1/admin/merchants', { key: ADMIN_KEY, body: { name: 'Second' } }, true);
    secrets.set('B test key', b.body.api_keys.test);
    secrets.set('B live key', b.body.api_keys.live);
    const extra = await call('POST', `/v1/admin/merchants/${a.id}/api_keys`, { key: ADMIN_KEY, body: { mode: 'test' } }, true);
    secrets.set('extra key', extra.body.secret);
    const doomed = await call('POST', `/v1/admin/merchants/${a.id}/api_keys`, { key: ADMIN_KEY, body: { mode: 'live' } }, true);
    secrets.set('revoked key', doomed.body.secret);

    const credentials = { api_key: `psp_key_${rand()}`, password: `pw-${rand()}`, webhook_secret: `whsec_own_${rand()}` };
    const spare = await call('POST', '/v1/connector_accounts', { key: a.testKey, body: { connector: 'sandbox', name: 'with credentials', credentials } }, true);
    assert.equal(spare.status, 201, spare.raw);
    secrets.set('PSP api_key', credentials.api_key);
    secrets.set('PSP password', credentials.password);
    secrets.set('PSP-issued webhook secret', credentials.webhook_secret);
    const endpointRequest = { key: a.testKey, idempotencyKey: `we-${rand()}`, body: { url: 'http://localhost:9/hooks', enabled_events: ['*'] } };
    const endpoint = await call('POST', '/v1/webhook_endpoints', endpointRequest, true);
    secrets.set('endpoint secret', endpoint.body.secret);
    // a create that shows a secret is replayed with it, byte for byte (its stored copy is sealed)
    const endpointReplay = await call('POST', '/v1/webhook_endpoints', endpointRequest, true);
    assert.equal(endpointReplay.headers['idempotent-replayed'], 'true');
    assert.equal(endpointReplay.raw, endpoint.raw);
    const merchantRequest = { key: ADMIN_KEY, idempotencyKey: `mer-${rand()}`, body: { name: 'Third' } };
    const c = await call('POST', '/v1/admin/merchants', merchantRequest, true);
    secrets.set('C test key', c.body.api_keys.test);
    secrets.set('C live key', c.body.api_keys.live);
    assert.equal((await call('POST', '/v1/admin/merchants', merchantRequest, true)).raw, c.raw);
    const accountRequest = { key: a.testKey, idempotencyKey: `ca-${rand()}`, body: { connector: 'sandbox', credentials: { api_key: `psp_key_${rand()}` } } };
    const replayed = await call('POST', '/v1/connector_accounts', accountRequest, true);
    secrets.set('replayed account webhook secret', replayed.body.webhook_secret);
    secrets.set('replayed account api_key', accountRequest.body.credentials.api_key);
    assert.equal((await call('POST', '/v1/connector_accounts', accountRequest, true)).raw, replayed.raw);
    const bAccount = await call('POST', '/v1/connector_accounts', { key: b.body.api_keys.test, body: { connector: 'sandbox', credentials: { api_key: `psp_key_${rand()}` } } }, true);
    secrets.set('B account webhook secret', bAccount.body.webhook_secret);
    for (const [name, value] of secrets) assert.ok(typeof value === 'string' && value.length >= 20, `${name} is a real secret`);

    // ordinary traffic
    const key = a.testKey;
    const payKey = `pay-${rand()}`;
    const p = await call('POST', '/v1/payments', { key, idempotencyKey: payKey, body: { amount: 5000, currency: 'USD', payment_method: 'pm_card_visa' } });
    assert.equal(p.status, 201, p.raw);
    const replay = await call('POST', '/v1/payments', { key, idempotencyKey: payKey, body: { amount: 5000, currency: 'USD', payment_method: 'pm_card_visa' } });
    assert.equal(replay.headers['idempotent-replayed'], 'true');
    await call('POST', '/v1/payments', { key, body: { amount: 100, currency: 'USD', payment_method: 'pm_card_declined' } });
    const manual = await call('POST', '/v1/payments', { key, body: { amount: 3000, currency: 'USD', payment_method: 'pm_card_visa', capture_method: 'manual', connector_account: spare.body.short_id } });
    await call('POST', `/v1/payments/${manual.body.id}/capture`, { key, body: { amount: 2000 } });
    const refund = await call('POST', `/v1/payments/${p.body.id}/refunds`, { key, body: { amount: 1000, reason: 'duplicate' } });
    assert.equal(refund.status, 201, refund.raw);
    const failing = await call('POST', '/v1/payments', { key, body: { amount: 2000, currency: 'USD', payment_method: 'pm_card_refund_fails' } });
    await call('POST', `/v1/payments/${failing.body.id}/refunds`, { key });
    await call('POST', `/v1/payments/${manual.body.id}/refunds`, { key, body: { amount: 1, connector_account: spare.body.id } });
    await call('PUT', '/v1/admin/features/refunds', { key: ADMIN_KEY, body: { enabled: false, merchant_id: a.id } });
    await call('POST', `/v1/payments/${p.body.id}/refunds`, { key, body: { amount: 1 } });
    await call('PUT', '/v1/admin/features/refunds', { key: ADMIN_KEY, body: { enabled: true, merchant_id: a.id } });
    await call('DELETE', `/v1/admin/api_keys/${doomed.body.key_prefix}`, { key: ADMIN_KEY });
    const events = await call('GET', '/v1/events?limit=5', { key });
    await call('POST', `/v1/events/${events.body.data[0].id}/redeliver`, { key });

    // failing requests that carry secrets in their headers (and one in the body, as an unknown field)
    const failures: [string, string, Parameters<Harness['call']>[2]][] = [
      ['GET', '/v1/payments/pay_missing', { key }],
      ['POST', '/v1/payments', { key, body: { amount: -5, currency: 'USD', payment_method: 'pm_card_visa' }, headers: { 'x-api-key': key } }],
      ['POST', '/v1/payments', { key, payload: '{"amount":', headers: { 'content-type': 'application/json' } }],
      ['POST', '/v1/refunds', { key, body: { payment_id: p.body.id, api_key: credentials.api_key } }],
      ['POST', `/v1/payments/${p.body.id}/refunds`, { key, body: { amount: 999_999 } }],
      ['POST', `/v1/payments/${p.body.id}/refunds`, { key, body: { amount: 1 }, headers: { 'x-connector-account': credentials.webhook_secret } }],
      ['POST', '/v1/admin/merchants', { key, body: { name: 'nope' } }],
      ['GET', '/v1/payments', { key: ADMIN_KEY }],
      ['GET', '/v1/payments', { key: doomed.body.secret }],
      ['GET', '/v1/payments', { key: secrets.get('endpoint secret') }],
      ['GET', '/v1/payments', { headers: { authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}` } }],
      ['GET', '/v1/payments', { headers: { authorization: a.liveKey } }],
      ['GET', '/v1/payments', { headers: { authorization: `Bearer ${key} ${a.liveKey}` } }],
      ['POST', '/v1/payments', { key, idempotencyKey: `${'k'.repeat(300)}`, body: { amount: 100, currency: 'USD', payment_method: 'pm_card_visa' } }],
      // U+0000 in a field next to credentials: a 500 on gateways that let it reach SQL; its error log must not carry them
      ['POST', '/v1/connector_accounts', { key, body: { connector: 'sandbox', name: 'a\u0000b', credentials: { api_key: credentials.api_key } } }],
      ['POST', '/v1/webhook_endpoints', { key, body: { url: 'http://localhost:9/x', enabled_events: ['*'], description: 'a\u0000b' } }],
      ['POST', `/v1/connectors/sandbox/webhooks/${a.testAccount.id}`, { payload: '{"id":"x"}', headers: { 'content-type': 'application/json', 'sandbox-signature': a.testAccount.webhook_secret, authorization: `Bearer ${ADMIN_KEY}` } }],
      ['POST', `/v1/connectors/sandbox/webhooks/${a.testAccount.id}`, { payload: '{"id":"x"}', headers: { 'content-type': 'application/json', 'sandbox-signature': signSandboxWebhook(credentials.webhook_secret, '{"id":"y"}') } }],
      ['DELETE', `/v1/connector_accounts/${spare.body.id}`, { key: b.body.api_keys.test }],
    ];
    for (const [method, url, opts] of failures) {
      const r = await call(method, url, opts);
      assert.ok(r.status >= 400, `${method} ${url} was meant to fail: ${r.status} ${r.raw.slice(0, 200)}`);
    }
    const signed = JSON.stringify({ id: `sbevt_${rand(6)}`, type: 'payment.refunded', created: Math.floor(Date.now() / 1000), data: { payment_ref: p.body.connector_ref, amount_refunded: 1000, refunds: [] } });
    const inbound = await call('POST', `/v1/connectors/sandbox/webhooks/${a.testAccount.id}`, { payload: signed, headers: { 'content-type': 'application/json', 'sandbox-signature': signSandboxWebhook(a.testAccount.webhook_secret, signed) } });
    assert.equal(inbound.status, 200, inbound.raw);

    // every read there is, for every key
    for (const k of [a.testKey, a.liveKey, b.body.api_keys.test, secrets.get('extra key')!]) {
      for (const path of ['/v1/payments', '/v1/refunds', '/v1/connector_accounts', '/v1/webhook_endpoints', '/v1/events', '/v1/ledger/transactions', '/v1/ledger/accounts']) {
        // the ledger's accounts are one page of balances: no limit to pass
        const list = await call('GET', path === '/v1/ledger/accounts' ? path : `${path}?limit=100`, { key: k });
        assert.equal(list.status, 200, list.raw);
        for (const item of list.body.data as { id?: string }[]) {
          if (item.id && !path.startsWith('/v1/ledger')) await call('GET', `${path}/${item.id}`, { key: k });
          if (path === '/v1/payments' && item.id) await call('GET', `${path}/${item.id}/refunds`, { key: k });
        }
      }
    }
    for (const path of ['/v1/admin/features/refunds']) await call('GET', path, { key: ADMIN_KEY });
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs', '/docs/reference.js']) await call('GET', path);
    const accounts = await call('GET', '/v1/connector_accounts', { key });
    for (const acct of accounts.body.data) {
      assert.equal(acct.webhook_secret, undefined, 'webhook_secret is shown only at creation');
      assert.equal(acct.credentials, undefined, 'credentials are write-only');
    }
    const endpoints = await call('GET', `/v1/webhook_endpoints/${endpoint.body.id}`, { key });
    assert.equal(endpoints.body.secret, undefined, 'an endpoint secret is shown only at creation');

    // the search
    const logs = chunks.join('');
    const logLines = logs.split('\n').filter(Boolean).length;
    assert.ok(logLines > 50, `the log stream was captured (${logLines} lines)`);
    const leaks: string[] = [];
    for (const [name, value] of secrets) {
      if (logs.includes(value)) leaks.push(`${name} in the logs: …${logs.slice(Math.max(0, logs.indexOf(value) - 200), logs.indexOf(value) + 40)}…`);
      for (const s of seen) if (s.text.includes(value)) leaks.push(`${name} in the response to ${s.what}`);
    }
    // at rest: keys are hashed; credentials, webhook secrets and the stored replays of creates
    // that show a secret are sealed
    const tables = await h.db.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`);
    assert.ok(tables.rows.some((r) => r.table_name === 'idempotency_keys'));
    let rows = 0;
    for (const { table_name: t } of tables.rows) {
      const dump = await h.db.query<{ row: string }>(`SELECT t::text AS row FROM "${t}" t`);
      rows += dump.rows.length;
      for (const { row } of dump.rows) for (const [name, value] of secrets) if (row.includes(value)) leaks.push(`${name} in clear in table ${t}`);
    }
    console.log(`secrets: ${secrets.size} secrets searched in ${logLines} log lines, ${seen.length} responses and ${rows} rows; leaks: ${leaks.length}`);
    assert.deepEqual(leaks, []);
  });
});

// ---------------------------------------------------------------------------------------------

describe('an address that keeps sending invalid keys', () => {
  let h: Harness;
  before(async () => {
    h = await createHarness('pglite', { env: { SETTLE_AUTH_FAILURES_PER_MINUTE: '5', SETTLE_TRUST_PROXY: '10.9.9.9' } });
  });
  after(async () => h?.close());

  test('gets 429 with Retry-After for every further invalid key, while a good key from it still works; other addresses are unaffected', async () => {
    const attacker = '203.0.113.7';
    const bad = [`sk_test_${'x'.repeat(32)}`, 'nonsense', ADMIN_KEY.slice(0, -1), h.merchant.testKey.slice(0, -1), `sk_live_${'y'.repeat(32)}`];
    for (const [i, key] of bad.entries()) {
      const url = i === 2 ? '/v1/admin/features/refunds' : '/v1/payments?limit=1';
      assertError(await h.call('GET', url, { key, remoteAddress: attacker }), 401, 'invalid_api_key', `bad key ${i + 1} of 5`);
    }
    const sixth = await h.call('GET', '/v1/payments?limit=1', { key: bad[0], remoteAddress: attacker });
    assertError(sixth, 429, 'rate_limited', 'the sixth bad key');
    const wait = Number(sixth.headers['retry-after']);
    assert.ok(Number.isInteger(wait) && wait >= 1 && wait <= 60, `Retry-After in whole seconds within the minute: ${sixth.headers['retry-after']}`);
    assertError(await h.call('GET', '/v1/admin/features/refunds', { key: bad[2], remoteAddress: attacker }), 429, 'rate_limited', 'a bad admin key from the blocked address');
    // a valid key is never locked out by its address (see test/http/invalid-key-limiter.test.ts)
    assert.equal((await h.call('GET', '/v1/payments?limit=1', { key: h.merchant.testKey, remoteAddress: attacker })).status, 200, 'a good key from the blocked address');
    // another address, and a good key from it, are not affected; successful calls are never counted
    for (let i = 0; i < 10; i++) assert.equal((await h.call('GET', '/v1/payments?limit=1', { key: h.merchant.testKey, remoteAddress: '198.51.100.1' })).status, 200);
    // behind the trusted proxy the client's address is X-Forwarded-For's, not the proxy's
    const viaProxy = await h.call('GET', '/v1/payments?limit=1', { key: bad[0], remoteAddress: '10.9.9.9', headers: { 'x-forwarded-for': attacker } });
    assertError(viaProxy, 429, 'rate_limited', 'the blocked client through the proxy');
    assertError(await h.call('GET', '/v1/payments?limit=1', { key: bad[0], remoteAddress: '10.9.9.9', headers: { 'x-forwarded-for': '198.51.100.2' } }), 401, 'invalid_api_key', 'another client through the proxy');
    // a client cannot pick its own address unless it comes through the proxy
    const spoofed = await h.call('GET', '/v1/payments?limit=1', { key: bad[0], remoteAddress: attacker, headers: { 'x-forwarded-for': '198.51.100.3' } });
    assertError(spoofed, 429, 'rate_limited', 'X-Forwarded-For from an untrusted peer');
  });
});

describe('a trusted proxy given as a hop count', () => {
  test("SETTLE_TRUST_PROXY=1 takes the client's address from the last X-Forwarded-For hop", async () => {
    const h = await createHarness('pglite', { env: { SETTLE_AUTH_FAILURES_PER_MINUTE: '1', SETTLE_TRUST_PROXY: '1' } });
    try {
      const via = (client: string, key: string) => h.call('GET', '/v1/payments?limit=1', { key, remoteAddress: '10.0.0.1', headers: { 'x-forwarded-for': `198.51.100.9, ${client}` } });
      assertError(await via('203.0.113.8', 'nonsense'), 401, 'invalid_api_key', 'the one bad key allowed');
      assertError(await via('203.0.113.8', 'nonsense'), 429, 'rate_limited', 'that client, through the proxy');
      assertError(await via('203.0.113.9', 'nonsense'), 401, 'invalid_api_key', 'another client behind the same proxy');
      assert.equal((await via('203.0.113.8', h.merchant.testKey)).status, 200, 'a good key of the blocked client');
    } finally {
      await h.close();
    }
  });
});

describe('per-key rate limiting in one process', () => {
  let h: Harness;
  before(async () => {
    h = await createHarness('pglite', { env: { SETTLE_RATE_LIMIT_PER_SECOND: '5' } });
  });
  after(async () => h?.close());

  test("one key's burst gets 429 rate_limited with Retry-After; another key is unaffected; a 429 is not stored for replay", async () => {
    const key = h.merchant.testKey;
    const results = await Promise.all(Array.from({ length: 15 }, () => h.call('GET', '/v1/payments?limit=1', { key })));
    const ok = results.filter((r) => r.status === 200).length;
    const limited = results.filter((r) => r.status === 429);
    assert.equal(ok + limited.length, 15, results.map((r) => r.status).join(','));
    assert.ok(limited.length >= 5 && ok <= 10, `15 requests at 5/s: ${ok} OK, ${limited.length} limited`);
    for (const r of limited) {
      assertError(r, 429, 'rate_limited', 'burst');
      assert.equal(r.body.error.type, 'rate_limit_error');
      assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/, 'Retry-After in whole seconds');
    }
    // another key of the same merchant, and another merchant's key, are not slowed down
    assert.equal((await h.call('GET', '/v1/payments?limit=1', { key: h.merchant.liveKey })).status, 200);
    const other = await h.newMerchant('Other');
    assert.equal((await h.call('GET', '/v1/payments?limit=1', { key: other.testKey })).status, 200);

    // still limited: a POST with an idempotency key is refused and not remembered
    const idempotencyKey = `rl-${rand()}`;
    const body = { amount: 100, currency: 'USD', payment_method: 'pm_card_visa' };
    let refused: Res | undefined;
    for (let i = 0; i < 10 && !refused; i++) {
      const r = await h.call('POST', '/v1/payments', { key, idempotencyKey, body });
      if (r.status === 429) refused = r;
      else assert.equal(r.status, 201, r.raw);
    }
    assert.ok(refused, 'the key was rate limited');
    await sleep(Number(refused.headers['retry-after']) * 1000 + 100);
    const retried = await h.call('POST', '/v1/payments', { key, idempotencyKey, body });
    assert.ok(retried.status === 201, `after Retry-After the same key works: ${retried.status} ${retried.raw.slice(0, 200)}`);
  });
});

// ---------------------------------------------------------------------------------------------

/** Is a Redis server answering PING at 127.0.0.1:6379? */
function redisReachable(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: 6379 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => done(String(d).startsWith('+PONG')));
  });
}

describe('across two gateway processes on one PostgreSQL database', () => {
  let temp: TempDatabase | undefined;
  let a: Proc | undefined;
  let b: Proc | undefined;
  let redis = false;
  let merchantId = '';
  let key = '';
  let otherKey = '';

  before(async (t) => {
    if (!(await postgresOrSkip(t as never))) return;
    redis = await redisReachable();
    if (!redis && process.env.CI === 'true') throw new Error(`CI=true but Redis is unreachable at ${REDIS_URL}`);
    temp = await createTempDatabase();
    const env = { SETTLE_RATE_LIMIT_PER_SECOND: '10', ...(redis ? { REDIS_URL } : {}) };
    a = await spawnGateway({ databaseUrl: temp.url, env });
    b = await spawnGateway({ databaseUrl: temp.url, env });
    const m = await client(a.url, ADMIN_KEY)('POST', '/v1/admin/merchants', { name: 'Two processes' });
    assert.equal(m.status, 201, m.raw);
    merchantId = m.body.id;
    key = m.body.api_keys.test;
    otherKey = m.body.api_keys.live;
  });
  after(async () => {
    await Promise.all([a?.kill(), b?.kill()]);
    await temp?.drop();
  });

  test('a key revoked through one process is refused by the other within 1.1 s', async (t) => {
    if (!temp) return t.skip('no postgres');
    const created = await client(a!.url, ADMIN_KEY)('POST', `/v1/admin/merchants/${merchantId}/api_keys`, { mode: 'test' });
    assert.equal(created.status, 201, created.raw);
    const doomed = created.body.secret as string;
    // B has just verified the key: its cache entry is as fresh as it gets, the worst case
    assert.equal((await client(b!.url, doomed)('GET', '/v1/payments?limit=1')).status, 200);
    const revoked = await client(a!.url, ADMIN_KEY)('DELETE', `/v1/admin/api_keys/${created.body.key_prefix}`);
    assert.equal(revoked.status, 200, revoked.raw);
    const t0 = performance.now();
    assert.equal((await client(a!.url, doomed)('GET', '/v1/payments?limit=1')).status, 401, 'the revoking process refuses it at once');
    // when the first refused request was SENT (a slow answer under load says nothing about the cache)
    let refusedAfter: number | undefined;
    while (performance.now() - t0 < 3000) {
      const sentAt = performance.now() - t0;
      const r = await client(b!.url, doomed)('GET', '/v1/payments?limit=1');
      if (r.status === 401) {
        refusedAfter = sentAt;
        assert.equal(r.body.error.code, 'invalid_api_key');
        break;
      }
      assert.ok(r.status === 200 || r.status === 429, `${r.status} ${r.raw}`);
      await sleep(20);
    }
    console.log(`revocation: the other process refused the key from ${refusedAfter?.toFixed(0)} ms after the revocation`);
    assert.ok(refusedAfter !== undefined && refusedAfter <= 1100, `first refused request sent ${refusedAfter} ms after the revocation`);
  });

  test('with Redis, 40 requests with one key split across both processes: some 429s, at most ~20 OK; another key unaffected', async (t) => {
    if (!temp) return t.skip('no postgres');
    if (!redis) return t.skip(`Redis unreachable at ${REDIS_URL}`);
    const targets = [a!.url, b!.url];
    // both processes have verified the key and talked to Redis; then a fresh window
    for (const url of targets) assert.equal((await client(url, key)('GET', '/v1/payments?limit=1')).status, 200);
    await sleep(1100);
    const t0 = performance.now();
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => client(targets[i % 2], key)('GET', '/v1/payments?limit=1')));
    const elapsed = performance.now() - t0;
    const unaffected = await Promise.all(targets.map((url) => client(url, otherKey)('GET', '/v1/payments?limit=1')));
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    const byProcess = targets.map((_, p) => results.filter((r, i) => i % 2 === p && r.status === 200).length);
    console.log(`rate limit across processes (10/s per key, Redis): 40 requests in ${elapsed.toFixed(0)} ms → ${ok.length} OK (${byProcess.join(' + ')}), ${limited.length} × 429`);
    assert.ok(elapsed < 1000, `the burst took ${elapsed} ms`);
    assert.equal(ok.length + limited.length, 40, results.map((r) => r.status).join(','));
    assert.ok(limited.length >= 1, 'some requests were limited');
    assert.ok(ok.length <= 20, `${ok.length} OK: the limit is shared, not per process`);
    for (const r of limited) {
      assert.equal(r.body.error.code, 'rate_limited');
      assert.match(String(r.headers.get('retry-after')), /^[1-9]\d*$/);
      assert.match(String(r.headers.get('request-id')), /^req_/);
    }
    for (const r of unaffected) assert.equal(r.status, 200, `another key: ${r.raw}`);
  });
});
