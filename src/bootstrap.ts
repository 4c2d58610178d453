import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config.js';
import { createSandboxConnector } from './connectors/sandbox/sandbox.connector.js';
import { createStripeConnector } from './connectors/stripe/stripe.connector.js';
import { createAdyenConnector } from './connectors/adyen/adyen.connector.js';
import type { Connector, ConnectorRegistry } from './connectors/connector.js';
import type { Db } from './db/db.js';
import { migrate } from './db/migrate.js';
import { openDb } from './db/open.js';
import { SecretBox } from './lib/crypto.js';
import { encryptionKeysRepository } from './modules/encryption/encryption-keys.repository.js';
import { EncryptionKeyMismatchError } from './modules/encryption/encryption-keys.service.js';
import { randomString } from './lib/ids.js';
import type { Logger } from './lib/logger.js';
import { createServices, type Services } from './services.js';

export interface Secrets {
  adminKey: string;
  encryptionKey: Buffer;
  /** Which secrets were generated on this start (printed once, never logged). */
  generated: { adminKey: boolean; encryptionKey: boolean };
}

/**
 * The admin key and the credential encryption key come from the environment; when unset they
 * are generated once and kept (mode 0600) in the data directory, so a development gateway
 * restarts with the same ones. Several processes sharing a Postgres database must share them:
 * set SETTLE_ENCRYPTION_KEY and SETTLE_ADMIN_KEY, or point them at the same data directory.
 */
export function loadSecrets(config: Config, opts: { mayGenerateEncryptionKey: boolean } = { mayGenerateEncryptionKey: true }): Secrets {
  const generated = { adminKey: false, encryptionKey: false };
  const fromFile = (name: string, make: () => string): string => {
    const path = join(config.dataDir, name);
    if (existsSync(path)) return readFileSync(path, 'utf8').trim();
    mkdirSync(config.dataDir, { recursive: true });
    const value = make();
    writeFileSync(path, `${value}\n`, { mode: 0o600, flag: 'wx' });
    return value;
  };
  let adminKey = config.adminKey;
  if (!adminKey) {
    const existed = existsSync(join(config.dataDir, 'admin.key'));
    adminKey = fromFile('admin.key', () => `sk_admin_${randomString(40)}`);
    generated.adminKey = !existed;
  }
  let encryptionKey = config.encryptionKey;
  if (!encryptionKey) {
    const existed = existsSync(join(config.dataDir, 'encryption.key'));
    if (!existed && !opts.mayGenerateEncryptionKey) {
      // a new key could not read the secrets already sealed: never generate one for such a database
      throw new EncryptionKeyMismatchError(
        `This database's secrets are sealed with an encryption key, and this process has none: SETTLE_ENCRYPTION_KEY is unset ` +
          `and ${join(config.dataDir, 'encryption.key')} does not exist. Set SETTLE_ENCRYPTION_KEY to the database's key, or ` +
          'start from the data directory that holds it (docs/security.md).',
      );
    }
    encryptionKey = Buffer.from(fromFile('encryption.key', () => randomString(64, '0123456789abcdef')), 'hex');
    generated.encryptionKey = !existed;
  }
  return { adminKey, encryptionKey, generated };
}

export function createConnectors(config: Config): ConnectorRegistry {
  const sandbox = createSandboxConnector({ timeoutMs: config.connectorTimeoutMs });
  const stripe = createStripeConnector({ apiBase: config.stripeApiBase, timeoutMs: config.connectorTimeoutMs });
  const adyen = createAdyenConnector({ checkoutBase: config.adyenCheckoutBase, timeoutMs: config.connectorTimeoutMs });
  return new Map<string, Connector>([sandbox, stripe, adyen].map((c) => [c.name, c]));
}

export interface Runtime {
  config: Config;
  db: Db;
  secrets: Secrets;
  services: Services;
  connectors: ConnectorRegistry;
}

/**
 * Opens the database, applies migrations, checks the encryption key against the database's
 * fingerprint (EncryptionKeyMismatchError when it cannot read its secrets) and wires the services.
 */
export async function createRuntime(config: Config, logger: Logger, overrides: { db?: Db; connectors?: ConnectorRegistry } = {}): Promise<Runtime> {
  const db = overrides.db ?? (await openDb(config, logger));
  try {
    await migrate(db);
    const fingerprint = await encryptionKeysRepository.fingerprint(db);
    const secrets = loadSecrets(config, { mayGenerateEncryptionKey: fingerprint === undefined });
    const box = new SecretBox(secrets.encryptionKey, config.encryptionKeyPrevious ? [config.encryptionKeyPrevious] : []);
    const connectors = overrides.connectors ?? createConnectors(config);
    const services = createServices({ config, db, logger, box, connectors, adminKey: secrets.adminKey });
    if ((await services.encryptionKeys.checkAtStart()) === 'rotating') {
      logger.warn('the database is sealed with SETTLE_ENCRYPTION_KEY_PREVIOUS: run `settle keys rotate` to re-seal it with SETTLE_ENCRYPTION_KEY');
    }
    return { config, db, secrets, services, connectors };
  } catch (err) {
    if (!overrides.db) await db.close();
    throw err;
  }
}

export interface DemoMerchant {
  merchantId: string;
  testKey: string;
  liveKey: string;
  testAccountShortId: string;
}

/** On an empty database: a demo merchant, its keys and a test-mode sandbox connector account
 *  (live mode needs a real PSP's account, which only the merchant can bring). */
export async function seedDemoMerchant(services: Services): Promise<DemoMerchant | undefined> {
  if (await services.merchants.first()) return undefined;
  const { merchant, keys } = await services.merchants.create('Demo Merchant');
  const test = await services.connectorAccounts.create({ merchantId: merchant.id, testMode: true, keyPrefix: '' }, { connector: 'sandbox', name: 'Sandbox (test)' });
  return { merchantId: merchant.id, testKey: keys.test, liveKey: keys.live, testAccountShortId: test.short_id };
}
