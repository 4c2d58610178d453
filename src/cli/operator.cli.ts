/**
 * Operator commands for merchants made outside the API (the first-run demo merchant, `settle
 * merchants create`): a new secret key, a connector account. Each prints one JSON object on
 * stdout (the secret it shows is shown once) and returns the exit status.
 */
import { parseArgs } from 'node:util';
import type { Runtime } from '../bootstrap.js';
import { AppError } from '../http/errors.js';

type Mode = 'test' | 'live';

function modeOf(raw: string | undefined): Mode | undefined {
  if (raw === undefined) return 'test';
  return raw === 'test' || raw === 'live' ? raw : undefined;
}

/** `settle api-keys create --merchant <id> [--mode test|live]` */
export async function createApiKey(rt: Runtime, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { merchant: { type: 'string' }, mode: { type: 'string' } } });
  const mode = modeOf(values.mode);
  if (!values.merchant || !mode) {
    console.error('usage: settle api-keys create --merchant <merchant id> [--mode test|live]   (default test)');
    return 2;
  }
  try {
    const key = await rt.services.merchants.createKey(values.merchant, mode);
    console.log(JSON.stringify({ object: 'api_key', merchant_id: values.merchant, mode, key_prefix: key.prefix, secret: key.secret }, null, 2));
    return 0;
  } catch (err) {
    return reportAppError(err);
  }
}

/**
 * `settle connector-accounts create --merchant <id> [--mode test|live] [--connector sandbox]
 *  [--name N] [--settings JSON] [--credentials JSON] [--default]`
 */
export async function createConnectorAccount(rt: Runtime, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      merchant: { type: 'string' },
      mode: { type: 'string' },
      connector: { type: 'string' },
      name: { type: 'string' },
      settings: { type: 'string' },
      credentials: { type: 'string' },
      default: { type: 'boolean' },
    },
  });
  const mode = modeOf(values.mode);
  const usage =
    'usage: settle connector-accounts create --merchant <merchant id> [--mode test|live] [--connector sandbox] ' +
    "[--name N] [--settings '{…}'] [--credentials '{…}'] [--default]";
  if (!values.merchant || !mode) {
    console.error(usage);
    return 2;
  }
  const json = (flag: string, raw: string | undefined): Record<string, never> | undefined => {
    if (raw === undefined) return undefined;
    const parsed: unknown = JSON.parse(raw);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`--${flag} must be a JSON object`);
    return parsed as Record<string, never>;
  };
  let settings: Record<string, unknown> | undefined;
  let credentials: Record<string, string> | undefined;
  try {
    settings = json('settings', values.settings);
    credentials = json('credentials', values.credentials);
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  try {
    if (!(await rt.services.merchants.find(values.merchant))) throw new AppError('merchant_not_found', `No such merchant: ${values.merchant}.`);
    const account = await rt.services.connectorAccounts.create(
      { merchantId: values.merchant, testMode: mode === 'test', keyPrefix: '' },
      { connector: values.connector ?? 'sandbox', name: values.name, settings, credentials, default: values.default },
    );
    console.log(JSON.stringify(account, null, 2));
    return 0;
  } catch (err) {
    return reportAppError(err);
  }
}

/** A refusal the API would answer with 4xx: its message, exit 1. */
function reportAppError(err: unknown): number {
  if (!(err instanceof AppError)) throw err;
  console.error(`${err.code}: ${err.message}`);
  return 1;
}
