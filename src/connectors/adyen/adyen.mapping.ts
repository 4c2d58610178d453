/**
 * Adyen ↔ Settle, one table per concern, so a change of vocabulary is a change of one row.
 * docs/connectors.md shows the same tables to operators.
 */
import type { RefundReasonCode } from '../refund-reasons.js';
import { PSP_REASON_CODES } from '../refund-reasons.js';

/** Settle's canonical refund reason → Adyen's `merchantRefundReason`. */
export function adyenRefundReason(code: RefundReasonCode | null | undefined): 'FRAUD' | 'CUSTOMER REQUEST' | 'RETURN' | 'DUPLICATE' | 'OTHER' | undefined {
  if (!code) return undefined;
  return PSP_REASON_CODES[code].adyen as 'FRAUD' | 'CUSTOMER REQUEST' | 'DUPLICATE' | 'OTHER';
}

/**
 * Adyen's `refusalReason` (a /payments answer with resultCode `Refused`, `Error` or `Cancelled`)
 * → the `decline_code` a Settle client sees. Adyen's text itself is never passed on.
 */
export const ADYEN_REFUSAL_REASONS: Record<string, string> = {
  'Refused': 'generic_decline',
  'Referral': 'call_issuer',
  'Acquirer Error': 'processing_error',
  'Blocked Card': 'restricted_card',
  'Expired Card': 'expired_card',
  'Invalid Amount': 'invalid_amount',
  'Invalid Card Number': 'incorrect_number',
  'Issuer Unavailable': 'issuer_not_available',
  'Not supported': 'card_not_supported',
  '3D Not Authenticated': 'authentication_required',
  'Not enough balance': 'insufficient_funds',
  'Acquirer Fraud': 'fraudulent',
  'Cancelled': 'generic_decline',
  'Shopper Cancelled': 'generic_decline',
  'Invalid Pin': 'incorrect_pin',
  'Pin tries exceeded': 'pin_try_exceeded',
  'Pin validation not possible': 'incorrect_pin',
  'FRAUD': 'fraudulent',
  'FRAUD-CANCELLED': 'fraudulent',
  'Issuer Suspected Fraud': 'fraudulent',
  'Not Submitted': 'processing_error',
  'Transaction Not Permitted': 'transaction_not_allowed',
  'CVC Declined': 'incorrect_cvc',
  'Restricted Card': 'restricted_card',
  'Revocation Of Auth': 'revocation_of_authorization',
  'Declined Non Generic': 'do_not_honor',
  'Withdrawal amount exceeded': 'card_velocity_exceeded',
  'Withdrawal count exceeded': 'card_velocity_exceeded',
  'AVS Declined': 'incorrect_address',
  'Card requires online pin': 'online_or_offline_pin_required',
  'No checking account available on Card': 'card_not_supported',
  'No savings account available on Card': 'card_not_supported',
  'Mobile pin required': 'online_or_offline_pin_required',
  'Contactless fallback': 'card_not_supported',
  'Authentication required': 'authentication_required',
};
export const DEFAULT_DECLINE_CODE = 'generic_decline';

const normalized = (reason: string) => reason.toLowerCase().replace(/\s+/g, '');
const REFUSAL_REASONS_NORMALIZED = new Map(Object.entries(ADYEN_REFUSAL_REASONS).map(([reason, code]) => [normalized(reason), code]));

/**
 * The `decline_code` for a `refusalReason`. Matched without regard to case and spaces: Adyen's own
 * OpenAPI document (CheckoutService-v71, `inferredRefusalReason`) spells `Not supported` also as
 * `Not Supported`, and `Declined Non Generic` as `DeclinedNon Generic`.
 */
export function adyenDeclineCode(refusalReason: string | null | undefined): string {
  if (!refusalReason) return DEFAULT_DECLINE_CODE;
  return ADYEN_REFUSAL_REASONS[refusalReason] ?? REFUSAL_REASONS_NORMALIZED.get(normalized(refusalReason)) ?? DEFAULT_DECLINE_CODE;
}

/** `decline_code` → the message a Settle client sees. */
export const ADYEN_DECLINE_MESSAGES: Record<string, string> = {
  generic_decline: 'The card was declined.',
  insufficient_funds: 'The card has insufficient funds.',
  expired_card: 'The card has expired.',
  incorrect_cvc: 'The card\'s security code is incorrect.',
  incorrect_number: 'The card number is incorrect.',
  fraudulent: 'The card was declined.',
  restricted_card: 'The card was declined.',
  card_velocity_exceeded: 'The card was declined: too many attempts or too large an amount.',
  processing_error: 'The card could not be processed.',
  issuer_not_available: 'The card issuer could not be reached.',
  authentication_required: 'The card requires authentication, which this integration does not support.',
};
export const DEFAULT_DECLINE_MESSAGE = 'The card was declined.';

/**
 * A refund's failure as Adyen reports it (`REFUND` with success false, `REFUND_FAILED`,
 * `REFUNDED_REVERSED`): the notification's `reason` is free text, so Settle matches a few known
 * texts and otherwise keys on the event code. Adyen's text is never shown.
 */
export const ADYEN_REFUND_FAILURE_REASONS: Record<string, { code: string; message: string }> = {
  'Insufficient balance on payment': { code: 'amount_exceeds_refundable', message: 'The payment service provider refused: the payment has not enough left to refund.' },
  'Refund not allowed': { code: 'refund_declined', message: 'The payment service provider does not allow a refund of this payment.' },
  'Modification not allowed': { code: 'payment_unexpected_state', message: 'The payment service provider refused: the payment is not in a state that allows it.' },
  'Transaction is disputed': { code: 'payment_disputed', message: 'The payment was disputed while the refund was pending.' },
  'Card expired': { code: 'card_expired_or_canceled', message: 'The card has expired or was canceled; the refund could not be sent.' },
  'Card lost or stolen': { code: 'card_lost_or_stolen', message: 'The card was reported lost or stolen; the refund could not be sent.' },
  'Declined': { code: 'refund_declined', message: 'The card issuer declined the refund.' },
};
/** By event code, when the reason text is not one of the above. */
export const ADYEN_REFUND_FAILURE_BY_EVENT: Record<'REFUND' | 'REFUND_FAILED' | 'REFUNDED_REVERSED', { code: string; message: string }> = {
  REFUND: { code: 'refund_rejected', message: 'The payment service provider rejected the refund.' },
  REFUND_FAILED: { code: 'refund_failed', message: 'The payment service provider reported the refund as failed.' },
  REFUNDED_REVERSED: { code: 'refund_reversed', message: 'The refunded funds were returned by the card scheme or the bank.' },
};

/** A definite refusal (HTTP 4xx) by Adyen's `errorCode` → Settle's code and message. Unlisted
 *  codes get `DEFAULT_REFUSAL`. */
export const ADYEN_ERRORS: Record<string, { code: string; message: string }> = {
  '100': { code: 'invalid_amount', message: 'The payment service provider refused the request: no amount.' },
  '137': { code: 'invalid_amount', message: 'The payment service provider refused the amount.' },
  '138': { code: 'unsupported_currency', message: 'The payment service provider does not support this currency.' },
  '167': { code: 'payment_not_found', message: 'The payment service provider does not know this payment.' },
  '901': { code: 'psp_authentication_failed', message: 'The payment service provider refused the connector account\'s merchant account.' },
};
export const DEFAULT_REFUSAL = { code: 'psp_refused', message: 'The payment service provider refused the request.' };
export const AUTHENTICATION_REFUSAL = { code: 'psp_authentication_failed', message: 'The payment service provider refused the connector account\'s credentials.' };
