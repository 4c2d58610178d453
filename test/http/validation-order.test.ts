/**
 * Validation comes before lookups, on every route: a malformed request is answered 400
 * `invalid_param` naming the parameter even when the object its path (or body) names does not
 * exist; 404 is only for well-formed requests. The routes are walked from the app's own route
 * list and their documented parameters, so a new route is covered (or fails here) by itself.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN_KEY, createHarness, type Harness } from '../helpers/harness.js';

/** Ids that exist nowhere, for each path parameter. */
const MISSING: Record<string, string> = {
  id: 'pay_0000000000000000missing',
  prefix: 'sk_test_missing0',
};

/**
 * A well-formed body for each route that takes one, naming objects that do not exist where it
 * names any: each probe below spoils one parameter of it.
 */
const VALID_BODY: Record<string, Record<string, unknown>> = {
  'POST /v1/admin/merchants': { name: 'Probe' },
  'POST /v1/admin/merchants/:id/api_keys': { mode: 'test' },
  'PUT /v1/admin/features/refunds': { enabled: true, merchant_id: 'mer_missing' },
  'POST /v1/api_keys': { name: 'probe', permissions: ['payments:read'] },
  'POST /v1/connector_accounts': { connector: 'sandbox' },
  'POST /v1/connector_accounts/:id/make_default': {},
  'POST /v1/payments': { amount: 1_000, currency: 'USD', payment_method: 'pm_card_visa', connector_account: 'ca_missing00000' },
  'POST /v1/payments/:id/capture': { amount: 100 },
  'POST /v1/payments/:id/cancel': {},
  'POST /v1/payments/:id/refunds': { amount: 100 },
  'POST /v1/refunds': { payment_id: MISSING.id, amount: 100 },
  'POST /v1/payments/refund': { payment_id: MISSING.id, amount: 100 },
  'POST /v1/webhook_endpoints': { url: 'http://127.0.0.1:9/hook', enabled_events: ['*'] },
  'POST /v1/events/:id/redeliver': {},
  'POST /compat/gatelithix/v1/payments/refund': { payment_intent_id: MISSING.id },
  'POST /compat/shiftxpay/v1/payments/:id/refunds': {},
  'POST /compat/generic/refunds': { paymentId: MISSING.id, currency: 'USD', reason: 'other' },
  'POST /compat/primer/payments/:id/refund': {},
  'POST /compat/elasticpay/api/v1/payment_intents/:id/refunds': {},
};

/**
 * Requests that only a rule of the service can refuse (the schema lets them through), sent to
 * objects that do not exist.
 */
const SEMANTIC: { route: string; body?: Record<string, unknown>; query?: string; param: string }[] = [
  { route: 'POST /v1/payments/:id/refunds', body: { currency: 'ZZZ' }, param: 'currency' },
  { route: 'POST /v1/payments/:id/refunds', body: { line_items: [{ id: 'li_1' }, { id: 'li_1' }] }, param: 'line_items[1].id' },
  { route: 'POST /v1/refunds', body: { payment_id: MISSING.id, currency: 'QQQ' }, param: 'currency' },
  { route: 'POST /v1/payments/refund', body: { payment_id: MISSING.id, line_items: [{ id: 'a' }, { id: 'a' }] }, param: 'line_items[1].id' },
  { route: 'POST /compat/generic/refunds', body: { paymentId: MISSING.id, currency: 'QQQ', reason: 'other' }, param: 'currency' },
  {
    route: 'POST /v1/payments',
    body: { ...VALID_BODY['POST /v1/payments'], line_items: [{ name: 'a', quantity: 1, unit_amount: 999 }] },
    param: 'line_items',
  },
  { route: 'GET /v1/payments', query: 'currency=QQQ', param: 'currency' },
  { route: 'GET /v1/payments/:id/refunds', query: 'cursor=not-a-cursor', param: 'cursor' },
  { route: 'GET /compat/elasticpay/api/v1/payment_intents/:id/refunds', query: 'cursor=not-a-cursor', param: 'cursor' },
];

interface Schema {
  type?: string | string[];
  enum?: unknown[];
  minimum?: number;
  properties?: Record<string, Schema>;
  items?: Schema;
}

/** For each documented parameter that can be spoiled on its own: a value its schema refuses. */
function spoiled(name: string, s: Schema, inQuery: boolean): unknown {
  if (name === 'currency') return 'QQQ';
  if (s.enum) return 'not_a_value';
  const type = [s.type].flat()[0];
  if ((type === 'integer' || type === 'number') && s.minimum !== undefined) return inQuery ? String(s.minimum - 1) : s.minimum - 1;
  if (type === 'boolean') return 'maybe';
  if (type === 'array' && s.items?.enum) return ['not_a_value'];
  return undefined;
}

const pathOf = (url: string) => url.replace(/:(\w+)/g, (_, p: string) => encodeURIComponent(MISSING[p] ?? 'missing'));

describe('validation before lookups, on every route', () => {
  let h: Harness;
  let doc: any;
  before(async () => {
    h = await createHarness('pglite');
    doc = h.app.swagger();
  });
  after(async () => h?.close());

  const routes = () => h.app.routeList.filter((r) => /^\/(v1|compat)\//.test(r.url) && r.auth !== 'none');
  const keyFor = (auth: string) => (auth === 'admin' ? ADMIN_KEY : h.merchant.testKey);
  const operation = (method: string, url: string) => doc.paths[url.replace(/:(\w+)/g, '{$1}')]?.[method.toLowerCase()];

  async function expect400(method: string, url: string, auth: string, body: unknown, param: string, what: string) {
    const r = await h.call(method, url, { key: keyFor(auth), body });
    const ctx = `${what}: ${method} ${url} ${JSON.stringify(body) ?? ''} → ${r.status} ${r.raw.slice(0, 300)}`;
    assert.equal(r.status, 400, ctx);
    assert.equal(r.body.error.code, 'invalid_param', ctx);
    assert.equal(r.body.error.param, param, ctx);
  }

  test('every route with a body has a well-formed body to spoil, and it is well-formed', async () => {
    const withBody = routes().filter((r) => operation(r.method, r.url)?.requestBody);
    assert.ok(withBody.length >= 15, `routes with a body: ${withBody.length}`);
    for (const r of withBody) {
      const name = `${r.method} ${r.url}`;
      assert.ok(VALID_BODY[name], `no well-formed body for ${name}: add one to VALID_BODY`);
      // the untouched body passes validation: whatever it answers, it is not a 400
      const res = await h.call(r.method, pathOf(r.url), { key: keyFor(r.auth), body: VALID_BODY[name] });
      assert.notEqual(res.status, 400, `${name} with its well-formed body: ${res.raw.slice(0, 300)}`);
    }
  });

  test('an unknown query parameter (?expand=…) is 400 naming it, on every route, before any 404', async () => {
    let probed = 0;
    for (const r of routes()) {
      const r2 = await h.call(r.method, `${pathOf(r.url)}?expand=payment`, {
        key: keyFor(r.auth),
        body: operation(r.method, r.url)?.requestBody ? VALID_BODY[`${r.method} ${r.url}`] : undefined,
      });
      const ctx = `${r.method} ${r.url}?expand=payment → ${r2.status} ${r2.raw.slice(0, 300)}`;
      assert.equal(r2.status, 400, ctx);
      assert.equal(r2.body.error.param, 'expand', ctx);
      probed++;
    }
    assert.ok(probed >= 40, `routes probed: ${probed}`);
  });

  test('each documented query parameter with a bad value (negative, not in its enum, unknown currency) is 400 naming it', async () => {
    let probed = 0;
    for (const r of routes()) {
      const op = operation(r.method, r.url);
      for (const p of (op?.parameters ?? []).filter((x: any) => x.in === 'query')) {
        const value = spoiled(p.name, p.schema ?? {}, true);
        if (value === undefined) continue;
        const url = `${pathOf(r.url)}?${encodeURIComponent(p.name)}=${encodeURIComponent(String(value))}`;
        await expect400(r.method, url, r.auth, op.requestBody ? VALID_BODY[`${r.method} ${r.url}`] : undefined, p.name, `query ${p.name}`);
        probed++;
      }
    }
    assert.ok(probed >= 15, `query parameters probed: ${probed}`);
  });

  test('each body parameter with a bad value, and an unknown body field, is 400 naming it, before any 404', async () => {
    let probed = 0;
    for (const r of routes()) {
      const op = operation(r.method, r.url);
      const schema: Schema | undefined = op?.requestBody?.content?.['application/json']?.schema;
      if (!schema) continue;
      const base = VALID_BODY[`${r.method} ${r.url}`];
      await expect400(r.method, pathOf(r.url), r.auth, { ...base, expand: ['payment'] }, 'expand', 'unknown body field');
      for (const [name, s] of Object.entries(schema.properties ?? {})) {
        const value = spoiled(name, s, false);
        if (value === undefined) continue;
        await expect400(r.method, pathOf(r.url), r.auth, { ...base, [name]: value }, Array.isArray(value) ? `${name}[0]` : name, `body ${name}`);
        probed++;
      }
    }
    assert.ok(probed >= 20, `body parameters probed: ${probed}`);
  });

  test('what only the service can refuse is refused before the object is looked up', async () => {
    const known = new Set(routes().map((r) => `${r.method} ${r.url}`));
    for (const c of SEMANTIC) {
      assert.ok(known.has(c.route), `no route ${c.route}`);
      const [method, url] = c.route.split(' ');
      const auth = routes().find((r) => `${r.method} ${r.url}` === c.route)!.auth;
      await expect400(method, `${pathOf(url)}${c.query ? `?${c.query}` : ''}`, auth, c.body, c.param, 'service rule');
    }
  });

  test('a well-formed request for an object that does not exist is still 404', async () => {
    for (const [route, body] of [
      ['POST /v1/payments/:id/refunds', { currency: 'usd' }],
      ['POST /v1/refunds', { payment_id: MISSING.id, currency: 'EUR' }],
      ['POST /v1/payments/:id/capture', { amount: 100 }],
      ['GET /v1/payments/:id', undefined],
    ] as const) {
      const [method, url] = route.split(' ');
      const r = await h.call(method, pathOf(url), { key: h.merchant.testKey, body });
      assert.equal(r.status, 404, `${route}: ${r.raw.slice(0, 300)}`);
      assert.equal(r.body.error.code, 'payment_not_found', route);
    }
  });
});
