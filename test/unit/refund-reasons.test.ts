import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PSP_REASON_CODES, REFUND_REASON_CODES, refundReasonFor } from '../../src/connectors/refund-reasons.js';

test('the four native reason codes map to themselves, with no text to send along', () => {
  for (const code of REFUND_REASON_CODES) assert.deepEqual(refundReasonFor(code), { code, text: null });
});

test('the seeds\' and PSPs\' spellings map to the canonical codes whatever their case and separators', () => {
  assert.deepEqual(refundReasonFor('requested_by_customer'), { code: 'customer_request', text: null });
  assert.deepEqual(refundReasonFor('partial_return'), { code: 'customer_request', text: null });
  assert.deepEqual(refundReasonFor('Customer Request'), { code: 'customer_request', text: null });
  assert.deepEqual(refundReasonFor('FRAUD'), { code: 'fraudulent', text: null });
  assert.deepEqual(refundReasonFor(' duplicate-charge '), { code: 'duplicate', text: null });
});

test('any other text is sent as "other" carrying the text as given', () => {
  assert.deepEqual(refundReasonFor('partial return of 2 items'), { code: 'other', text: 'partial return of 2 items' });
  assert.deepEqual(refundReasonFor('Kunde hat storniert'), { code: 'other', text: 'Kunde hat storniert' });
});

test('no reason means no reason for the PSP', () => {
  assert.equal(refundReasonFor(undefined), null);
  assert.equal(refundReasonFor(null), null);
});

test('every canonical code has a Stripe and an Adyen spelling', () => {
  for (const code of REFUND_REASON_CODES) {
    assert.ok(code in PSP_REASON_CODES);
    assert.equal(typeof PSP_REASON_CODES[code].adyen, 'string');
  }
  assert.equal(PSP_REASON_CODES.customer_request.stripe, 'requested_by_customer');
  assert.equal(PSP_REASON_CODES.other.stripe, null);
});
