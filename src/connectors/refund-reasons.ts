/**
 * Refund reasons. A merchant's `reason` is free text (1–500 characters), kept on the refund as
 * given. The PSPs take a closed set of reason codes instead, so the text is mapped once, here,
 * to a canonical code; each connector maps the canonical code to its PSP's own (the columns of
 * `PSP_REASON_CODES`). Text that is not a well-known spelling is sent as `other`, with the text
 * itself where the PSP has room for it (`RefundRequest.reasonText`).
 */

export const REFUND_REASON_CODES = ['customer_request', 'duplicate', 'fraudulent', 'other'] as const;
export type RefundReasonCode = (typeof REFUND_REASON_CODES)[number];

/** Longest reason accepted (characters). */
export const MAX_REASON_LENGTH = 500;

/**
 * Well-known spellings, after `normalize` (lower case, spaces and dashes as `_`). They cover the
 * native codes, the spellings of the refund APIs Settle is compatible with (`docs/compat.md`) and
 * the PSPs' own codes, so that a reason round-trips whichever vocabulary the client speaks.
 */
const SPELLINGS: Record<string, RefundReasonCode> = {
  customer_request: 'customer_request',
  requested_by_customer: 'customer_request',
  requested_by_the_customer: 'customer_request',
  customer_requested: 'customer_request',
  customer: 'customer_request',
  return: 'customer_request',
  returned: 'customer_request',
  partial_return: 'customer_request',
  duplicate: 'duplicate',
  duplicated: 'duplicate',
  duplicate_charge: 'duplicate',
  duplicate_payment: 'duplicate',
  fraudulent: 'fraudulent',
  fraud: 'fraudulent',
  fraudulent_charge: 'fraudulent',
  suspected_fraud: 'fraudulent',
  other: 'other',
};

/** How each PSP names a canonical code; `null`: the PSP takes no code for it (the reason is omitted). */
export const PSP_REASON_CODES: Record<RefundReasonCode, { stripe: string | null; adyen: string }> = {
  customer_request: { stripe: 'requested_by_customer', adyen: 'CUSTOMER REQUEST' },
  duplicate: { stripe: 'duplicate', adyen: 'DUPLICATE' },
  fraudulent: { stripe: 'fraudulent', adyen: 'FRAUD' },
  other: { stripe: null, adyen: 'OTHER' },
};

const normalize = (text: string): string => text.trim().toLowerCase().replace(/[\s-]+/g, '_');

/**
 * What a refund's reason means to a PSP: its canonical `code`, and the merchant's own `text`
 * when the text is not a well-known spelling (to be sent along where the PSP has room).
 */
export function refundReasonFor(reason: string | null | undefined): { code: RefundReasonCode; text: string | null } | null {
  if (reason === null || reason === undefined) return null;
  const code = SPELLINGS[normalize(reason)];
  return code ? { code, text: null } : { code: 'other', text: reason };
}
