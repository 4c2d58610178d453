/**
 * The OpenAPI 3.1 document at /openapi.json: @fastify/swagger builds the paths from the route
 * schemas; `finishDocument` then gives it what a client generator needs and a route cannot say
 * by itself — each named object once under `components` (referenced everywhere), the headers
 * every response and every POST carries, optional bodies marked optional, examples, and the
 * `webhooks` section describing what Settle sends to merchants.
 */
import type { SwaggerOptions } from '@fastify/swagger';
import { EVENT_TYPES, type EventType } from '../modules/webhooks/events.repository.js';
import { eventOf } from './objects.js';
import { isStorableStatus } from './errors.js';

type Json = Record<string, any>;

const TAGS = [
  { name: 'payments', description: 'Authorize, capture and cancel payments through a connector account. Amounts are integers in the currency\'s minor unit.' },
  { name: 'refunds', description: 'Refund a payment fully or partially, any number of times, never beyond what was captured. A refund is recorded (holding its amount) before the PSP is called; it answers 201 whatever its status, and a pending refund is driven to `succeeded` or `failed` by the gateway.' },
  { name: 'webhooks', description: 'Webhook endpoints, the events sent to them, and their delivery attempts. Events are written in the same transaction as the change they describe and delivered at least once.' },
  { name: 'connector accounts', description: 'A merchant\'s credentials at one PSP. A payment records the account that authorized it; its captures and refunds always go through that account.' },
  { name: 'ledger', description: 'The double-entry ledger: balanced, append-only, per merchant, mode and currency.' },
  { name: 'reconciliation', description: 'Differences between what the gateway recorded and what the PSP did, found by `settle reconcile` and the reconciliation worker; each is also sent as a `reconciliation.difference_found` event (docs/reconciliation.md).' },
  { name: 'admin', description: 'Platform administration, with the admin key (`SETTLE_ADMIN_KEY`) only.' },
  { name: 'inbound webhooks', description: 'Where PSPs post their webhooks, authenticated by each connector\'s own signature scheme.' },
  { name: 'compatibility', description: 'Other gateways\' refund APIs, wire-exact to their documents, under /compat/<name>/: a client of one of them switches to Settle by changing only its base URL. Each is a translation over the native refund engine (docs/compat.md).' },
  { name: 'console', description: 'Signing in to the operations console at /dashboard: an API key exchanged for an HttpOnly session cookie; the console then calls this same API with it (writes need X-CSRF-Token).' },
  { name: 'api keys', description: 'The merchant\'s API keys, and restricted keys (`rk_…`) with chosen permissions: a route a restricted key lacks the permission for answers 403 `insufficient_permissions`.' },
  { name: 'webhook events', description: 'What Settle POSTs to a merchant\'s webhook endpoints, one entry per event type.' },
];

const DESCRIPTION = `Payments and refunds done right, on a self-hosted gateway.

**Authentication.** \`Authorization: Bearer sk_test_…\` (or \`sk_live_…\`). The key's mode decides what is visible: test objects do not exist for a live key and vice versa. \`/v1/admin/*\` takes the admin key.

**Idempotency.** Every POST accepts \`Idempotency-Key\` (1–255 printable ASCII characters). The same key with the same request replays the first answer byte for byte, with \`Idempotent-Replayed: true\`; with a different request it answers 422 \`idempotency_key_reused\`; while the first is in flight, 409 \`idempotency_key_in_use\` (retry later with the same key). 400, 401, 429 and 5xx answers are not stored: retry them with the same key.

**Errors.** Every non-2xx answer is \`{"error": {type, code, message, param?, request_id}}\`; each status lists its codes.

**Webhooks.** Each delivery is signed twice with the endpoint's \`whsec_…\` secret: \`Settle-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>\` and per the Standard Webhooks specification (\`webhook-id\`, \`webhook-timestamp\`, \`webhook-signature\`), so its libraries in any language verify deliveries unchanged. See the webhooks section.`;

/** The swagger plugin's options. */
export function openapiOptions(): SwaggerOptions {
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Settle API',
        version: '1.0.0',
        description: DESCRIPTION,
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      },
      // self-hosted: there is no one address; the variable says where a gateway runs by default
      servers: [{
        url: '{origin}',
        description: 'Your gateway',
        variables: { origin: { default: 'http://localhost:8080', description: 'Where the gateway listens (`settle serve`; PORT, HOST)' } },
      }],
      tags: TAGS,
      components: {
        securitySchemes: {
          secretKey: { type: 'http', scheme: 'bearer', description: 'A merchant secret key, `sk_test_…` or `sk_live_…`' },
          adminKey: { type: 'http', scheme: 'bearer', description: 'The platform admin key (`SETTLE_ADMIN_KEY`)' },
        },
      },
      security: [{ secretKey: [] }],
    },
    transformObject: (document) => finishDocument((document as { openapiObject: Json }).openapiObject) as never,
  };
}

const HEADERS: Json = {
  RequestId: { description: 'The request\'s id (`req_…`), repeated in error bodies; quote it when reporting a problem.', required: true, schema: { type: 'string' } },
  IdempotentReplayed: { description: '`true` when this is the stored answer to an earlier request with the same Idempotency-Key.', schema: { type: 'string', enum: ['true'] } },
  RetryAfter: { description: 'Seconds to wait before retrying.', schema: { type: 'string' } },
  RateLimitLimit: { description: 'Requests allowed per second for this key (when rate limiting is on).', schema: { type: 'string' } },
  RateLimitRemaining: { description: 'Requests left in the current second.', schema: { type: 'string' } },
  RateLimitReset: { description: 'Seconds until the window resets.', schema: { type: 'string' } },
};

const PARAMETERS: Json = {
  IdempotencyKey: {
    name: 'Idempotency-Key', in: 'header', required: false,
    description: 'Makes the request safe to retry: the same key and request answer the same, and never move money twice. `X-Idempotency-Key` is accepted as an alias.',
    schema: { type: 'string', minLength: 1, maxLength: 255 },
    example: 'order-1042-refund-1',
  },
};

const ref = (kind: string, name: string) => ({ $ref: `#/components/${kind}/${name}` });
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

/**
 * Completes the generated document (see the file's comment). Works on a copy: the generated
 * document shares objects with the route schemas, which must stay as they are.
 */
export function finishDocument(generated: Json): Json {
  const doc = structuredClone(generated);
  const schemas: Json = {};
  doc.components = { ...doc.components, schemas, headers: HEADERS, parameters: PARAMETERS };
  doc.components.securitySchemes.webhookSignature = {
    type: 'apiKey', in: 'header', name: 'Settle-Signature',
    description: 'How a merchant authenticates Settle\'s webhook deliveries: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` with the endpoint\'s secret; reject a timestamp older than a few minutes. The same deliveries carry Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature), verifiable with its libraries and the same secret.',
  };

  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const authenticated = !(Array.isArray(op.security) && op.security.length === 0);
      const merchantRoute = authenticated && path.startsWith('/v1/') && !path.startsWith('/v1/admin/');
      if (op.requestBody) optionalBody(op.requestBody);
      if (method === 'post' && authenticated) op.parameters = [...(op.parameters ?? []), ref('parameters', 'IdempotencyKey')];
      for (const [status, response] of Object.entries<Json>(op.responses ?? {})) {
        const code = Number(status);
        const headers: Json = { 'Request-Id': ref('headers', 'RequestId') };
        if (method === 'post' && authenticated && isStorableStatus(code)) headers['Idempotent-Replayed'] = ref('headers', 'IdempotentReplayed');
        if (code === 429 || code === 503) headers['Retry-After'] = code === 429 ? { ...HEADERS.RetryAfter, required: true } : ref('headers', 'RetryAfter');
        if (merchantRoute) {
          headers['X-RateLimit-Limit'] = ref('headers', 'RateLimitLimit');
          headers['X-RateLimit-Remaining'] = ref('headers', 'RateLimitRemaining');
          headers['X-RateLimit-Reset'] = ref('headers', 'RateLimitReset');
        }
        response.headers = { ...response.headers, ...headers };
      }
      const example = EXAMPLES[op.operationId];
      if (example) applyExample(op, example);
    }
  }

  doc.webhooks = structuredClone(Object.fromEntries(EVENT_TYPES.map((type) => [type, webhookOperation(type)])));
  lift(doc.paths, schemas);
  lift(doc.webhooks, schemas);
  return doc;
}

/** A body whose schema also allows null may be left out: say so, and describe the object. */
function optionalBody(body: Json) {
  for (const media of Object.values<Json>(body.content ?? {})) {
    const type = media.schema?.type;
    if (Array.isArray(type) && type.includes('null')) {
      body.required = false;
      media.schema.type = type.find((t: string) => t !== 'null');
    }
  }
}

/**
 * Replaces every titled object schema under `node` by a reference to `components.schemas.<title>`,
 * adding it there once (its own named parts referenced in turn). Two different schemas with the
 * same title are a mistake in objects.ts, refused here.
 */
function lift(node: unknown, schemas: Json): unknown {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) node[i] = lift(node[i], schemas);
    return node;
  }
  if (!node || typeof node !== 'object') return node;
  const o = node as Json;
  for (const key of Object.keys(o)) if (key !== 'example') o[key] = lift(o[key], schemas);
  if (typeof o.title === 'string' && (o.type === 'object' || o.properties)) {
    const name = o.title;
    const { title: _title, ...schema } = o;
    const existing = schemas[name];
    if (existing && JSON.stringify(existing) !== JSON.stringify(schema)) {
      throw new Error(`Two different schemas are titled ${name}`);
    }
    schemas[name] = schema;
    return ref('schemas', name);
  }
  return o;
}

function webhookOperation(type: EventType): Json {
  const camel = type.split(/[._]/).map((w, i) => (i ? w[0].toUpperCase() + w.slice(1) : w)).join('');
  return {
    post: {
      operationId: `${camel}Webhook`,
      tags: ['webhook events'],
      summary: `The ${type} event`,
      description: `${WEBHOOK_DESCRIPTIONS[type]} POSTed to every enabled endpoint of the merchant and mode subscribed to \`${type}\`. Answer any 2xx once the event is stored; anything else (or no answer within the timeout) is retried with exponential backoff for up to 3 days. The same event may arrive more than once: deduplicate by its \`id\`.`,
      security: [{ webhookSignature: [] }],
      parameters: [
        { name: 'Settle-Signature', in: 'header', required: true, description: '`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`', schema: { type: 'string' } },
        { name: 'Settle-Event-Id', in: 'header', required: true, description: 'The event id (`evt_…`)', schema: { type: 'string' } },
        { name: 'Settle-Delivery-Attempt', in: 'header', required: true, description: '1 on the first attempt, then 2, 3, …', schema: { type: 'string' } },
        { name: 'webhook-id', in: 'header', required: true, description: 'Standard Webhooks: the message id, the event id (the same on every attempt)', schema: { type: 'string' } },
        { name: 'webhook-timestamp', in: 'header', required: true, description: 'Standard Webhooks: unix seconds of this attempt', schema: { type: 'string' } },
        {
          name: 'webhook-signature', in: 'header', required: true,
          description: 'Standard Webhooks: `v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<raw body>")>`, the key being the base64 text after `whsec_` decoded; verify with the standardwebhooks libraries',
          schema: { type: 'string' },
        },
      ],
      requestBody: { required: true, content: { 'application/json': { schema: eventOf(type), ...(WEBHOOK_EXAMPLES[type] ? { example: WEBHOOK_EXAMPLES[type] } : {}) } } },
      responses: {
        '2XX': { description: 'Delivered: the event will not be sent again (unless redelivered).' },
        '4XX': { description: 'Not delivered: retried later.' },
        '5XX': { description: 'Not delivered: retried later.' },
      },
    },
  };
}

const WEBHOOK_DESCRIPTIONS: Record<EventType, string> = {
  'payment.succeeded': 'A payment was captured in full or in part (with automatic capture, at creation).',
  'payment.failed': 'The PSP declined a payment.',
  'payment.captured': 'An authorized payment was captured.',
  'payment.canceled': 'An authorized payment was canceled.',
  'payment.partially_refunded': 'A refund succeeded and part of the payment remains.',
  'payment.refunded': 'A refund succeeded and the payment is fully refunded.',
  'payment.refund_failed': 'A refund of the payment failed.',
  'refund.created': 'A refund was recorded (it may already be final).',
  'refund.succeeded': 'A refund succeeded at the PSP.',
  'refund.failed': 'A refund failed (rejected by the PSP, or reversed after it succeeded).',
  'reconciliation.difference_found': 'Reconciliation found a difference between the gateway and the PSP (docs/reconciliation.md).',
};

// ---- examples on the main operations

interface Example {
  request?: unknown;
  response?: Record<number, unknown>;
}

function applyExample(op: Json, ex: Example) {
  const media = op.requestBody?.content?.['application/json'];
  if (ex.request !== undefined && media) media.example = ex.request;
  for (const [status, value] of Object.entries(ex.response ?? {})) {
    const m = op.responses?.[status]?.content?.['application/json'];
    if (m) m.example = value;
  }
}

const T = '2026-12-01T10:00:00.000Z';
const ACCOUNT = { id: '6c1f6a7e-58f1-4c5e-9f57-1f8e0b1d2a33', short: 'ca_k3v9w2q8xz' };
const examplePayment = {
  id: 'pay_2Xk9v1Qm7TzR4b', object: 'payment', amount: 125000, currency: 'INR', status: 'succeeded', capture_method: 'automatic',
  amount_capturable: 0, amount_captured: 125000, amount_refunded: 0, amount_refundable: 125000,
  connector: 'sandbox', connector_account_id: ACCOUNT.id, connector_account_short_id: ACCOUNT.short, connector_ref: 'sbx_pay_81f3c0',
  payment_method: 'pm_card_visa', order_id: 'order-1042', customer_id: 'cus-77', description: null, metadata: {},
  line_items: [{ id: 'li_9aQ2', name: 'Shoes', quantity: 1, unit_amount: 125000, amount: 125000, quantity_refunded: 0 }],
  transactions: [
    { id: 'txn_5Jt1', type: 'authorization', amount: 125000, status: 'succeeded', connector_ref: 'sbx_pay_81f3c0', created_at: T },
    { id: 'txn_5Jt2', type: 'capture', amount: 125000, status: 'succeeded', connector_ref: 'sbx_pay_81f3c0', created_at: T },
  ],
  failure_code: null, failure_message: null, test_mode: true, created_at: T, updated_at: T,
};
const exampleRefund = {
  id: 're_7Lq2Nw8Xc4', object: 'refund', payment_id: examplePayment.id, amount: 50000, currency: 'INR', status: 'succeeded',
  reason: 'customer_request', description: null, reference: 'rma-311', metadata: {}, line_items: [], order_id: 'order-1042',
  connector: 'sandbox', connector_account_id: ACCOUNT.id, connector_account_short_id: ACCOUNT.short, connector_ref: 'sbx_re_20ab',
  failure_code: null, failure_message: null, source: 'api', test_mode: true, created_at: T, updated_at: T,
  payment: { id: examplePayment.id, status: 'partially_refunded', amount_captured: 125000, amount_refunded: 50000, amount_refundable: 75000 },
};
const refundExample: Example = {
  request: { amount: 50000, reason: 'customer_request', reference: 'rma-311' },
  response: {
    201: exampleRefund,
    422: { error: { type: 'invalid_request_error', code: 'amount_too_large', message: 'Refund amount 90000 exceeds the refundable balance of 75000.', param: 'amount', request_id: 'req_4hN2s' } },
  },
};

const EXAMPLES: Record<string, Example> = {
  createPayment: {
    request: { amount: 125000, currency: 'INR', payment_method: 'pm_card_visa', order_id: 'order-1042', customer_id: 'cus-77', line_items: [{ name: 'Shoes', quantity: 1, unit_amount: 125000 }] },
    response: {
      201: examplePayment,
      402: { error: { type: 'connector_error', code: 'card_declined', message: 'The card was declined.', payment_id: 'pay_8Hc2Lm0', decline_code: 'card_declined', request_id: 'req_1pQ9z' } },
    },
  },
  retrievePayment: { response: { 200: examplePayment } },
  createRefund: refundExample,
  createRefundByPaymentId: { ...refundExample, request: { payment_id: examplePayment.id, amount: 50000, reason: 'customer_request' } },
  retrieveRefund: { response: { 200: exampleRefund } },
  createWebhookEndpoint: {
    request: { url: 'https://shop.example.com/settle/webhooks', enabled_events: ['refund.succeeded', 'refund.failed'], description: 'Refund notifications' },
    response: {
      201: {
        id: 'we_3Fz8Rk1', object: 'webhook_endpoint', url: 'https://shop.example.com/settle/webhooks', enabled_events: ['refund.succeeded', 'refund.failed'],
        dialect: 'settle', description: 'Refund notifications', status: 'enabled', test_mode: true, created_at: T, secret: 'whsec_Zm9vYmFyYmF6cXV4cXV1eGNvcmdl',
      },
    },
  },
};

/** What the refund events of the example refund above look like when delivered. */
const exampleEvent = (type: EventType, id: string, object: unknown) => ({ id, object: 'event', type, created_at: T, test_mode: true, data: { object } });
const WEBHOOK_EXAMPLES: Partial<Record<EventType, unknown>> = {
  'refund.succeeded': exampleEvent('refund.succeeded', 'evt_4Ry8Dk2Wq0', exampleRefund),
  'refund.failed': exampleEvent('refund.failed', 'evt_9Pk3Tz6Lm1', {
    ...exampleRefund, status: 'failed', failure_code: 'refund_rejected', failure_message: 'The card issuer rejected the refund.',
    payment: { ...exampleRefund.payment, status: 'succeeded', amount_refunded: 0, amount_refundable: 125000 },
  }),
  'payment.partially_refunded': exampleEvent('payment.partially_refunded', 'evt_2Hs7Vb5Nc8', {
    ...examplePayment, status: 'partially_refunded', amount_refunded: 50000, amount_refundable: 75000,
  }),
};
