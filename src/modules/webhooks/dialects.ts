/**
 * Webhook dialects. An endpoint in the `settle` dialect receives the native events. An endpoint
 * created in a compatibility surface's dialect (docs/compat.md) receives that surface's event
 * names and object shapes instead: the same events, written by the same outbox and delivered and
 * signed the same way, translated when they are sent. Each dialect names exactly one native event
 * type per event of its own, so the outbox's matching of endpoints (by native type) is unchanged:
 * a dialect endpoint stores the native types its events come from.
 */
import { renderElasticPayPaymentIntent } from '../../http/compat/elasticpay/elasticpay.objects.js';
import type { PaymentView } from '../payments/payments.service.js';
import type { EventType } from './events.repository.js';
import type { EventJson } from './webhooks.service.js';

export const WEBHOOK_DIALECTS = ['settle', 'elasticpay'] as const;
export type WebhookDialect = (typeof WEBHOOK_DIALECTS)[number];

interface Dialect {
  /** The dialect's name for each native event type it delivers (one to one). */
  events: Partial<Record<EventType, string>>;
  /** The object an event of the dialect carries in `data.object`, from the native event's. */
  object(native: EventJson['data']['object']): unknown;
}

const DIALECTS: Record<Exclude<WebhookDialect, 'settle'>, Dialect> = {
  // ElasticPay (seed 004): payment_intent.* events carrying the payment intent
  elasticpay: {
    events: {
      'payment.refunded': 'payment_intent.refunded',
      'payment.partially_refunded': 'payment_intent.partially_refunded',
      'payment.refund_failed': 'payment_intent.refund_failed',
    },
    object: (payment) => renderElasticPayPaymentIntent(payment as unknown as PaymentView),
  },
};

/** The event names an endpoint of `dialect` may subscribe to (besides `*`). */
export function dialectEventNames(dialect: Exclude<WebhookDialect, 'settle'>): string[] {
  return Object.values(DIALECTS[dialect].events);
}

/**
 * The native event types to store for a dialect endpoint's `enabled_events` (given in the
 * dialect's names, or `*` for all of them); undefined for a name the dialect does not have,
 * with its index.
 */
export function nativeEventTypes(dialect: Exclude<WebhookDialect, 'settle'>, names: readonly string[]): { types: string[] } | { unknown: number } {
  const events = Object.entries(DIALECTS[dialect].events) as [EventType, string][];
  if (names.includes('*')) return { types: events.map(([native]) => native) };
  const types: string[] = [];
  for (const [i, name] of names.entries()) {
    const found = events.find(([, own]) => own === name);
    if (!found) return { unknown: i };
    if (!types.includes(found[0])) types.push(found[0]);
  }
  return { types };
}

/** A dialect endpoint's stored native types, in the dialect's names (for showing the endpoint). */
export function dialectEventTypes(dialect: WebhookDialect, stored: string[]): string[] {
  if (dialect === 'settle') return stored;
  const events = DIALECTS[dialect].events as Record<string, string>;
  return stored.map((t) => events[t] ?? t);
}

/**
 * The body delivered to an endpoint of `dialect` for a stored event body: the stored body
 * itself in the native dialect, else the event renamed and its object translated. Pure, so
 * every retry of a delivery sends the same bytes.
 */
export function deliveredBody(dialect: WebhookDialect, storedBody: string): string {
  if (dialect === 'settle') return storedBody;
  const d = DIALECTS[dialect];
  const event = JSON.parse(storedBody) as EventJson;
  const type = (d.events as Record<string, string>)[event.type] ?? event.type;
  return JSON.stringify({ ...event, type, data: { object: d.object(event.data.object) } });
}
