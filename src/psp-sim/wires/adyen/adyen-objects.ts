/**
 * The model's payments, modifications and events drawn as Adyen's Checkout API v71 objects and
 * Standard webhook notifications, with Adyen's HMAC signature. The shapes follow Adyen's published
 * OpenAPI documents (CheckoutService-v71.json, Webhooks-v1.json); the tests validate them there.
 */
import { createHmac, randomInt } from 'node:crypto';
import type { SimReply } from '../../replies.js';

/** Adyen's references are 16 characters, upper-case letters and digits. */
const PSP_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
export function newPspReference(): string {
  let out = '';
  for (let i = 0; i < 16; i += 1) out += PSP_ALPHABET[randomInt(PSP_ALPHABET.length)];
  return out;
}

export interface AdyenAmount {
  currency: string;
  value: number;
}

/** Adyen's `ServiceError`: `{status, errorCode, message, errorType, pspReference}`. */
export function adyenError(status: number, errorCode: string, message: string, errorType: string, headers?: Record<string, string>): SimReply {
  return { status, body: { status, errorCode, message, errorType, pspReference: newPspReference() }, ...(headers ? { headers } : {}) };
}

export const validationError = (errorCode: string, message: string): SimReply => adyenError(422, errorCode, message, 'validation');

/** The sandbox model's refusal reasons, as Adyen names them in its test environment. */
export interface Refusal {
  reason: string;
  code: string;
}

/**
 * Adyen's documented test values for refusals ("Testing result codes and refusal reasons"): the
 * value goes in `paymentMethod.holderName` or `additionalData.RequestedTestAcquirerResponseCode`.
 * Only the ones whose `resultCode` is `Refused`.
 */
export const TEST_REFUSALS: Record<string, Refusal & { acquirerCode: string }> = {
  DECLINED: { reason: 'Refused', code: '2', acquirerCode: '2' },
  REFERRAL: { reason: 'Referral', code: '3', acquirerCode: '3' },
  BLOCK_CARD: { reason: 'Blocked Card', code: '5', acquirerCode: '5' },
  CARD_EXPIRED: { reason: 'Expired Card', code: '6', acquirerCode: '6' },
  INVALID_AMOUNT: { reason: 'Invalid Amount', code: '7', acquirerCode: '7' },
  INVALID_CARDNUMBER: { reason: 'Invalid Card Number', code: '8', acquirerCode: '8' },
  NOT_ENOUGH_BALANCE: { reason: 'Not enough balance', code: '12', acquirerCode: '12' },
  FRAUD: { reason: 'FRAUD', code: '20', acquirerCode: '20' },
  CVC_DECLINED: { reason: 'CVC Declined', code: '24', acquirerCode: '24' },
  RESTRICTED_CARD: { reason: 'Restricted Card', code: '25', acquirerCode: '25' },
};

/** Adyen's test card numbers (a few of its published list) and their brand. */
export const TEST_CARDS: Record<string, 'visa' | 'mc'> = {
  '4111111111111111': 'visa',
  '4988438843884305': 'visa',
  '4166676667666746': 'visa',
  '4646464646464644': 'visa',
  '5555341244441115': 'mc',
  '2222400070000005': 'mc',
  '5577000055770004': 'mc',
  '5136333333333335': 'mc',
};

/** One item of a Standard notification (Webhooks-v1 `NotificationRequestItem`). */
export interface NotificationItem {
  additionalData?: Record<string, string>;
  amount: AdyenAmount;
  eventCode: 'AUTHORISATION' | 'CAPTURE' | 'CAPTURE_FAILED' | 'CANCELLATION' | 'REFUND' | 'REFUND_FAILED' | 'REFUNDED_REVERSED';
  eventDate: string;
  merchantAccountCode: string;
  merchantReference: string;
  originalReference?: string;
  paymentMethod?: string;
  pspReference: string;
  reason?: string;
  success: 'true' | 'false';
  operations?: Array<'CANCEL' | 'CAPTURE' | 'REFUND'>;
}

export interface NotificationBatch {
  live: 'true' | 'false';
  notificationItems: Array<{ NotificationRequestItem: NotificationItem }>;
}

/** ISO 8601 without milliseconds, with an explicit offset, as Adyen writes `eventDate`. */
export function eventDate(epochMs: number): string {
  return `${new Date(epochMs).toISOString().slice(0, 19)}+00:00`;
}

/**
 * Adyen's HMAC for Standard notifications: HMAC-SHA256, keyed with the hex-decoded HMAC key, over
 * `pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success`
 * (a missing field is empty), base64-encoded.
 */
export function notificationHmac(item: NotificationItem, hexKey: string): string {
  const payload = [
    item.pspReference,
    item.originalReference ?? '',
    item.merchantAccountCode,
    item.merchantReference,
    String(item.amount.value),
    item.amount.currency,
    item.eventCode,
    item.success,
  ].join(':');
  return createHmac('sha256', Buffer.from(hexKey, 'hex')).update(payload, 'utf8').digest('base64');
}

/** Puts `additionalData.hmacSignature` on every item of a batch, signed with `hexKey`. */
export function signBatch(rawBody: string, hexKey: string): string {
  const batch = JSON.parse(rawBody) as NotificationBatch;
  for (const { NotificationRequestItem: item } of batch.notificationItems) {
    item.additionalData = { ...item.additionalData, hmacSignature: notificationHmac(item, hexKey) };
  }
  return JSON.stringify(batch);
}

export function batchOf(items: NotificationItem[]): NotificationBatch {
  return { live: 'false', notificationItems: items.map((item) => ({ NotificationRequestItem: item })) };
}
