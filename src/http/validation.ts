import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import { normalizeCurrency } from '../lib/money.js';
import { AppError, invalidParam } from './errors.js';

/**
 * Two validators: bodies are checked strictly (no type coercion, unknown fields refused, so
 * `"amount": "100"` is an error, not 100); path and query parameters arrive as strings and are
 * coerced to the schema's types.
 */
const strict = new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: false, strict: false });
const coercing = new Ajv({ allErrors: false, coerceTypes: true, removeAdditional: false, useDefaults: true, strict: false });
for (const ajv of [strict, coercing]) {
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  ajv.addKeyword({ keyword: 'example' });
}

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const fn: ValidateFunction = (httpPart === 'body' ? strict : coercing).compile(schema as object);
  const hasCurrency = (schema as { properties?: Record<string, unknown> }).properties?.currency !== undefined;
  return (data: unknown) => {
    if (fn(data)) {
      // A currency is checked here, with the rest of the input, so that an unknown code is a 400
      // before any lookup can answer 404 for the object the path names.
      const currency = hasCurrency ? (data as { currency?: unknown } | null)?.currency : undefined;
      if (typeof currency === 'string' && !normalizeCurrency(currency)) {
        return { error: invalidParam('currency', `Unknown currency: ${currency}.`) as unknown as Error };
      }
      return { value: data };
    }
    const err = fn.errors?.[0];
    return { error: toAppError(err, httpPart ?? 'body') as unknown as Error };
  };
};

/** `/line_items/1/quantity` → `line_items[1].quantity`. */
export function paramName(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').filter(Boolean);
  if (child !== undefined) parts.push(child);
  let out = '';
  for (const part of parts) {
    const name = part.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(name) ? `[${name}]` : out ? `.${name}` : name;
  }
  return out;
}

function toAppError(err: ErrorObject | undefined, httpPart: string): AppError {
  if (!err) return new AppError('invalid_param', 'The request is invalid.');
  const p = err.params as Record<string, unknown>;
  let param: string;
  let message: string;
  switch (err.keyword) {
    case 'additionalProperties':
      param = paramName(err.instancePath, String(p.additionalProperty));
      message = `Unknown parameter: ${param}.`;
      break;
    case 'required':
      param = paramName(err.instancePath, String(p.missingProperty));
      message = `Missing required parameter: ${param}.`;
      break;
    default:
      param = paramName(err.instancePath);
      message = describe(err, param);
  }
  if (!param) {
    // the whole body (e.g. a JSON array or string where an object is expected)
    return new AppError('invalid_param', httpPart === 'body' ? 'The request body must be a JSON object.' : message, {
      param: httpPart === 'body' ? 'body' : httpPart,
    });
  }
  // metadata violations are reported on `metadata` or `metadata.<key>` (contract section 1)
  return new AppError('invalid_param', message, { param });
}

function describe(err: ErrorObject, param: string): string {
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'type':
      return `Invalid ${param}: must be ${p.type === 'integer' ? 'an integer' : `of type ${String(p.type)}`}.`;
    case 'minimum':
    case 'exclusiveMinimum':
      return `Invalid ${param}: must be at least ${String(p.limit)}.`;
    case 'maximum':
    case 'exclusiveMaximum':
      return `Invalid ${param}: must be at most ${String(p.limit)}.`;
    case 'minLength':
      return `Invalid ${param}: must be at least ${String(p.limit)} characters.`;
    case 'maxLength':
      return `Invalid ${param}: must be at most ${String(p.limit)} characters.`;
    case 'maxProperties':
      return `Invalid ${param}: at most ${String(p.limit)} keys are allowed.`;
    case 'minItems':
      return `Invalid ${param}: must have at least ${String(p.limit)} items.`;
    case 'maxItems':
      return `Invalid ${param}: must have at most ${String(p.limit)} items.`;
    case 'enum':
      return `Invalid ${param}: must be one of ${(p.allowedValues as unknown[]).join(', ')}.`;
    case 'pattern':
    case 'format':
      return `Invalid ${param}: malformed value.`;
    case 'propertyNames':
      return `Invalid ${param}: keys must be 1 to 40 characters.`;
    default:
      return `Invalid ${param}.`;
  }
}

/** U+0000 and unpaired UTF-16 surrogates: PostgreSQL text cannot hold the first, jsonb neither. */
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * The parameter (`line_items[0].name`, `metadata.note`) whose value or key holds a character the
 * database cannot store, '' for the value itself, or undefined when there is none.
 */
export function findUnstorableText(value: unknown, path = ''): string | undefined {
  if (typeof value === 'string') return UNSTORABLE.test(value) ? path : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findUnstorableText(value[i], `${path}[${i}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const [key, child] of Object.entries(value)) {
    if (UNSTORABLE.test(key)) return path;
    const found = findUnstorableText(child, path ? `${path}.${key}` : key);
    if (found !== undefined) return found;
  }
  return undefined;
}
