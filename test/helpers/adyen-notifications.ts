/**
 * Adyen standard notifications as Adyen sends them, signed the way Adyen documents it (HMAC-SHA256
 * with the hex key over pspReference:originalReference:merchantAccountCode:merchantReference:
 * value:currency:eventCode:success, base64) — written here with node:crypto, independently of
 * the library the gateway verifies with.
 */
import { createHmac, randomBytes } from 'node:crypto';

export interface NotificationItemInput {
  pspReference: string;
  originalReference?: string;
  merchantAccountCode: string;
  merchantReference: string;
  value: number;
  currency?: string;
  eventCode: string;
  success?: boolean;
  reason?: string;
}

export const newHmacKey = (): string => randomBytes(32).toString('hex').toUpperCase();

export function signedItem(hmacKey: string, i: NotificationItemInput) {
  const currency = i.currency ?? 'EUR';
  const success = String(i.success ?? true);
  const signed = [i.pspReference, i.originalReference ?? '', i.merchantAccountCode, i.merchantReference, i.value, currency, i.eventCode, success].join(':');
  const hmacSignature = createHmac('sha256', Buffer.from(hmacKey, 'hex')).update(signed, 'utf8').digest('base64');
  return {
    NotificationRequestItem: {
      additionalData: { hmacSignature },
      amount: { value: i.value, currency },
      eventCode: i.eventCode,
      eventDate: new Date().toISOString().replace(/\.\d+Z$/, '+00:00'),
      merchantAccountCode: i.merchantAccountCode,
      merchantReference: i.merchantReference,
      ...(i.originalReference ? { originalReference: i.originalReference } : {}),
      pspReference: i.pspReference,
      reason: i.reason ?? '',
      success,
    },
  };
}

export function notification(hmacKey: string, items: NotificationItemInput[], live = false): string {
  return JSON.stringify({ live: String(live), notificationItems: items.map((i) => signedItem(hmacKey, i)) });
}

/** A pspReference as Adyen makes them: 16 characters. */
export const pspReference = (): string => randomBytes(8).toString('hex').toUpperCase();
