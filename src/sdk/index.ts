/** The merchant-side helpers of Settle: verifying webhook signatures. */
export {
  DEFAULT_TOLERANCE_SECONDS,
  SettleSignatureError,
  constructEvent,
  verifySettleSignature,
  type SettleEvent,
  type VerifySettleSignatureOptions,
} from './verify-signature.js';
