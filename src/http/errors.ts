/**
 * The one error class of the gateway, with the closed set of codes of the contract (section 2),
 * and the single place that maps them to an HTTP status and error `type`.
 */

type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'idempotency_error'
  | 'rate_limit_error'
  | 'connector_error'
  | 'api_error';

const CODES = {
  invalid_json: [400, 'invalid_request_error'],
  invalid_param: [400, 'invalid_request_error'],
  currency_mismatch: [400, 'invalid_request_error'],
  connector_account_override_forbidden: [400, 'invalid_request_error'],
  connector_account_inactive: [400, 'invalid_request_error'],
  invalid_api_key: [401, 'authentication_error'],
  card_declined: [402, 'connector_error'],
  feature_disabled: [403, 'permission_error'],
  insufficient_permissions: [403, 'permission_error'],
  payment_not_found: [404, 'invalid_request_error'],
  refund_not_found: [404, 'invalid_request_error'],
  connector_account_not_found: [404, 'invalid_request_error'],
  webhook_endpoint_not_found: [404, 'invalid_request_error'],
  event_not_found: [404, 'invalid_request_error'],
  merchant_not_found: [404, 'invalid_request_error'],
  not_found: [404, 'invalid_request_error'],
  not_refundable: [409, 'invalid_request_error'],
  already_refunded: [409, 'invalid_request_error'],
  originating_account_unavailable: [409, 'invalid_request_error'],
  not_capturable: [409, 'invalid_request_error'],
  not_cancelable: [409, 'invalid_request_error'],
  idempotency_key_in_use: [409, 'idempotency_error'],
  no_default_connector_account: [409, 'invalid_request_error'],
  payload_too_large: [413, 'invalid_request_error'],
  amount_too_large: [422, 'invalid_request_error'],
  idempotency_key_reused: [422, 'idempotency_error'],
  line_item_quantity_exceeded: [422, 'invalid_request_error'],
  rate_limited: [429, 'rate_limit_error'],
  internal_error: [500, 'api_error'],
  connector_unavailable: [502, 'connector_error'],
  service_unavailable: [503, 'api_error'],
} as const satisfies Record<string, readonly [number, ErrorType]>;

export type ErrorCode = keyof typeof CODES;

export interface AppErrorOptions {
  param?: string;
  /** Extra fields in the error object, e.g. `payment_id` on `card_declined`. */
  extra?: Record<string, unknown>;
  /** Extra response headers, e.g. `Retry-After`. */
  headers?: Record<string, string>;
}

export class AppError extends Error {
  readonly status: number;
  readonly type: ErrorType;
  readonly param?: string;
  readonly extra?: Record<string, unknown>;
  readonly headers?: Record<string, string>;

  constructor(readonly code: ErrorCode, message: string, opts: AppErrorOptions = {}) {
    super(message);
    this.name = 'AppError';
    [this.status, this.type] = CODES[code];
    this.param = opts.param;
    this.extra = opts.extra;
    this.headers = opts.headers;
  }
}

export const invalidParam = (param: string, message: string): AppError =>
  new AppError('invalid_param', message, { param });

export interface ErrorBody {
  error: {
    type: ErrorType;
    code: ErrorCode;
    message: string;
    param?: string;
    request_id: string;
    [extra: string]: unknown;
  };
}

export function errorBody(err: AppError, requestId: string): ErrorBody {
  return {
    error: {
      type: err.type,
      code: err.code,
      message: err.message,
      ...(err.param !== undefined ? { param: err.param } : {}),
      ...(err.extra ?? {}),
      request_id: requestId,
    },
  };
}

/** Statuses whose responses the idempotency layer stores and replays (section 3). */
export function isStorableStatus(status: number): boolean {
  return status < 400 || [402, 403, 404, 409, 422].includes(status);
}
