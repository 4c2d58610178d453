/**
 * `settle trigger <event type>`: makes, in test mode and through the public API with a merchant
 * key, the payments and refunds whose changes produce that event (with the sandbox's test cards),
 * so that a webhook receiver (or `settle listen`) sees the real event.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { EVENT_TYPES, type EventType } from '../modules/webhooks/events.repository.js';

export const TRIGGER_USAGE = `settle trigger <event type> [--api-key <key>] [--api-base <url>]
  Makes, in test mode, the payment and refund whose changes produce the event. The key is --api-key
  or SETTLE_API_KEY (a test key); the gateway is --api-base, SETTLE_API_BASE or http://127.0.0.1:8080.
  Event types: ${EVENT_TYPES.join(', ')}`;

type Api = (method: 'POST' | 'GET', path: string, body?: unknown) => Promise<{ status: number; body: any }>;

interface Step {
  /** What the step makes, for the output. */
  what: string;
  run(api: Api): Promise<void>;
}

const card = (payment_method: string, extra: Record<string, unknown> = {}) => ({ amount: 5000, currency: 'USD', payment_method, ...extra });

/** What each event type needs; every step prints the object it made. */
const RECIPES: Record<EventType, { explain: string; make(api: Api, say: (line: string) => void): Promise<void> }> = {
  'payment.succeeded': { explain: 'a payment with pm_card_visa', make: async (api, say) => void (await pay(api, say, card('pm_card_visa'))) },
  'payment.failed': { explain: 'a payment with pm_card_declined (answered 402)', make: async (api, say) => void (await pay(api, say, card('pm_card_declined'), 402)) },
  'payment.captured': {
    explain: 'a payment with capture_method manual, then its capture',
    make: async (api, say) => {
      const p = await pay(api, say, card('pm_card_visa', { capture_method: 'manual' }));
      await act(api, say, `/v1/payments/${p.id}/capture`, {}, 200, 'captured');
    },
  },
  'payment.canceled': {
    explain: 'a payment with capture_method manual, then its cancellation',
    make: async (api, say) => {
      const p = await pay(api, say, card('pm_card_visa', { capture_method: 'manual' }));
      await act(api, say, `/v1/payments/${p.id}/cancel`, undefined, 200, 'canceled');
    },
  },
  'payment.partially_refunded': { explain: 'a payment, then a refund of part of it', make: (api, say) => payAndRefund(api, say, 'pm_card_visa', 1500) },
  'payment.refunded': { explain: 'a payment, then a refund of all of it', make: (api, say) => payAndRefund(api, say, 'pm_card_visa') },
  'payment.refund_failed': { explain: 'a payment with pm_card_refund_fails, then a refund the PSP rejects', make: (api, say) => payAndRefund(api, say, 'pm_card_refund_fails') },
  'refund.created': { explain: 'a payment, then a refund of part of it', make: (api, say) => payAndRefund(api, say, 'pm_card_visa', 1500) },
  'refund.succeeded': { explain: 'a payment, then a refund of part of it', make: (api, say) => payAndRefund(api, say, 'pm_card_visa', 1500) },
  'refund.failed': { explain: 'a payment with pm_card_refund_fails, then a refund the PSP rejects', make: (api, say) => payAndRefund(api, say, 'pm_card_refund_fails') },
  'reconciliation.difference_found': {
    explain: 'a payment with pm_card_refund_reverses, then a refund that succeeds and that the bank rejects after the sandbox\'s pending delay (2 s by default)',
    make: async (api, say) => {
      await payAndRefund(api, say, 'pm_card_refund_reverses');
      say('The PSP now reverses the refund. A gateway that hears the PSP\'s webhooks (psp-sim) reverses it at once (refund.failed,');
      say('payment.refund_failed); otherwise the next reconciliation run finds the difference (reconciliation.difference_found:');
      say('SETTLE_RECONCILE_INTERVAL_MS, or `settle reconcile`).');
    },
  },
};

export async function trigger(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let type: EventType;
  let apiKey: string;
  let apiBase: string;
  try {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { 'api-key': { type: 'string' }, 'api-base': { type: 'string' } } });
    if (positionals.length !== 1) throw new Error('name one event type');
    if (!(EVENT_TYPES as readonly string[]).includes(positionals[0])) {
      throw new Error(`unknown event type ${JSON.stringify(positionals[0])}; supported: ${EVENT_TYPES.join(', ')}`);
    }
    type = positionals[0] as EventType;
    apiKey = values['api-key'] ?? env.SETTLE_API_KEY ?? '';
    if (!apiKey) throw new Error('a merchant key is required: --api-key or SETTLE_API_KEY');
    if (/^(sk|rk)_live_/.test(apiKey)) throw new Error('trigger acts in test mode only: use a test key (sk_test_…)');
    apiBase = (values['api-base'] ?? env.SETTLE_API_BASE ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
    if (!/^https?:\/\//.test(apiBase)) throw new Error(`--api-base must be an http(s) URL; got ${apiBase}`);
  } catch (err) {
    process.stderr.write(`trigger: ${(err as Error).message}\n\n${TRIGGER_USAGE}\n`);
    return 2;
  }
  const api: Api = async (method, path, body) => {
    const headers: Record<string, string> = { authorization: `Bearer ${apiKey}` };
    if (method === 'POST') {
      headers['idempotency-key'] = randomUUID();
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(`${apiBase}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // shown as it came
    }
    return { status: res.status, body: parsed };
  };
  const recipe = RECIPES[type];
  const say = (line: string) => process.stdout.write(`${line}\n`);
  say(`Triggering ${type}: ${recipe.explain}`);
  try {
    await recipe.make(api, say);
  } catch (err) {
    process.stderr.write(`trigger: ${(err as Error).message}\n`);
    return 1;
  }
  say(`Done: ${type} is on its way to your webhook endpoints and to settle listen.`);
  return 0;
}

async function pay(api: Api, say: (line: string) => void, body: Record<string, unknown>, expect: 201 | 402 = 201): Promise<{ id: string }> {
  const r = await api('POST', '/v1/payments', body);
  if (r.status !== expect) throw refused('POST /v1/payments', r);
  const id = expect === 402 ? r.body.error.payment_id : r.body.id;
  say(`  payment ${id} (${body.payment_method}${body.capture_method === 'manual' ? ', manual capture' : ''}): ${expect === 402 ? `declined, ${r.body.error.decline_code}` : r.body.status}`);
  return { id };
}

async function act(api: Api, say: (line: string) => void, path: string, body: unknown, expect: number, done: string): Promise<void> {
  const r = await api('POST', path, body);
  if (r.status !== expect) throw refused(`POST ${path}`, r);
  say(`  ${done}: ${r.body.id} is ${r.body.status}`);
}

async function payAndRefund(api: Api, say: (line: string) => void, paymentMethod: string, amount?: number): Promise<void> {
  const p = await pay(api, say, card(paymentMethod));
  const r = await api('POST', `/v1/payments/${p.id}/refunds`, amount === undefined ? {} : { amount });
  if (r.status !== 201) throw refused(`POST /v1/payments/${p.id}/refunds`, r);
  say(`  refund ${r.body.id} of ${r.body.amount}: ${r.body.status}${r.body.failure_code ? ` (${r.body.failure_code})` : ''}`);
}

function refused(what: string, r: { status: number; body: any }): Error {
  const message = typeof r.body === 'object' && r.body?.error ? `${r.body.error.code}: ${r.body.error.message}` : String(r.body).slice(0, 300);
  return new Error(`${what} answered ${r.status} (${message})`);
}
