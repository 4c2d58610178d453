import type { FastifyRequest } from 'fastify';
import { isDatabaseUnavailable } from '../db/db.js';

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
  webhook_endpoints_limit_reached: [400, 'invalid_request_error'],
  invalid_api_key: [401, 'authentication_error'],
  card_declined: [402, 'connector_error'],
  feature_disabled: [403, 'permission_error'],
  insufficient_permissions: [403, 'permission_error'],
  csrf_token_invalid: [403, 'permission_error'],
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
  connector_account_in_use: [409, 'invalid_request_error'],
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

/** The codes answered with `status`, for the OpenAPI document. */
export function errorCodesByStatus(status: number): ErrorCode[] {
  return (Object.keys(CODES) as ErrorCode[]).filter((c) => CODES[c][0] === status);
}

/** The error types answered with `status`. */
export function errorTypesByStatus(status: number): ErrorType[] {
  return [...new Set(errorCodesByStatus(status).map((c) => CODES[c][1]))];
}

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

/** Any error thrown while handling a request, as the `AppError` it answers with (unknown → logged, 500). */
export function asAppError(raw: Error & { statusCode?: number; code?: string }, req: FastifyRequest): AppError {
  let err: AppError;
  if (raw instanceof AppError) {
    err = raw;
  } else if (raw.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    err = new AppError('payload_too_large', 'The request body is too large.');
  } else if (isDatabaseUnavailable(raw)) {
    req.log.warn({ err: raw.message, request_id: req.id }, 'database unavailable');
    err = databaseUnavailable();
  } else if (raw.statusCode === 503 && raw.code === 'FST_ERR_REP_ALREADY_SENT') {
    err = new AppError('service_unavailable', 'The server is shutting down.');
  } else if (raw.statusCode && raw.statusCode >= 400 && raw.statusCode < 500) {
    // Fastify's own client errors (malformed URL, bad Content-Length, …)
    err = new AppError('invalid_param', 'The request is malformed.', { param: 'request' });
  } else {
    req.log.error({ err: raw, request_id: req.id }, 'unhandled error');
    err = new AppError('internal_error', 'An unexpected error occurred. It has been logged; quote the request_id when reporting it.');
  }
  return err;
}

/** Seconds a client is told to wait when the database is unreachable (a restart takes a few). */
export const DATABASE_RETRY_AFTER_S = 2;

/**
 * 503 while the database is unreachable. Nothing the client was answered for is lost, and a retry
 * with the same Idempotency-Key is safe: work the request had begun (a pending refund) resumes.
 */
export function databaseUnavailable(): AppError {
  return new AppError('service_unavailable',
    `The database is unavailable. Retry in ${DATABASE_RETRY_AFTER_S} s with the same Idempotency-Key.`,
    { headers: { 'Retry-After': String(DATABASE_RETRY_AFTER_S) } });
}
