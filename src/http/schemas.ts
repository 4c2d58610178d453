/** Shared JSON schemas; they validate input and generate the OpenAPI document. */
import { MAX_AMOUNT } from '../lib/money.js';

export const amountSchema = { type: 'integer', minimum: 1, maximum: MAX_AMOUNT } as const;

export const currencySchema = {
  type: 'string',
  minLength: 3,
  maxLength: 3,
  description: 'ISO 4217 code, case-insensitive on input, upper case on output.',
} as const;

export const metadataSchema = {
  type: 'object',
  maxProperties: 20,
  propertyNames: { minLength: 1, maxLength: 40 },
  additionalProperties: { type: 'string', maxLength: 500 },
  description: 'Up to 20 keys of 1–40 characters; values are strings of at most 500 characters.',
} as const;

export const listQuerySchema = {
  limit: { type: 'integer', minimum: 1, maximum: 100, default: 10 },
  cursor: { type: 'string', maxLength: 200 },
} as const;

export const idParam = (description: string) =>
  ({
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', minLength: 1, maxLength: 100, description } },
  }) as const;

/**
 * Any error envelope (contract section 2); operations name the envelope of each status they
 * answer (objects.ts `responses`).
 */
export const errorResponseSchema = {
  type: 'object',
  title: 'Error',
  description: 'The error envelope (contract section 2).',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      title: 'ErrorDetail',
      description: 'What went wrong.',
      required: ['type', 'code', 'message', 'request_id'],
      properties: {
        type: { type: 'string' },
        code: { type: 'string' },
        message: { type: 'string' },
        param: { type: 'string' },
        request_id: { type: 'string' },
      },
    },
  },
} as const;

export { listOf } from './objects.js';
