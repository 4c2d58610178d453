import type { ConnectorContext, ConnectorRegistry, Connector } from '../../connectors/connector.js';
import type { Db, Queryable } from '../../db/db.js';
import { AppError, invalidParam } from '../../http/errors.js';
import { decodeCursor, toPage } from '../../http/pagination.js';
import type { SecretBox } from '../../lib/crypto.js';
import { newConnectorShortId, newUuid, randomString } from '../../lib/ids.js';
import type { AuthContext } from '../merchants/merchants.service.js';
import { connectorAccountsRepository as repo, type ConnectorAccountRow } from './connector-accounts.repository.js';
import { STRIPE_KEY_PREFIX } from '../../connectors/stripe/stripe.connector.js';
import { ADYEN_HMAC_KEY_RE, ADYEN_LIVE_PREFIX_RE } from '../../connectors/adyen/adyen.connector.js';

export interface CreateConnectorAccountInput {
  connector: string;
  name?: string;
  credentials?: Record<string, string>;
  settings?: Record<string, unknown>;
  default?: boolean;
}

export function renderConnectorAccount(row: ConnectorAccountRow) {
  return {
    object: 'connector_account' as const,
    id: row.id,
    short_id: row.short_id,
    connector: row.connector,
    name: row.name,
    status: row.status,
    is_default: row.is_default,
    test_mode: row.test_mode,
    settings: row.settings,
    webhook_path: `/v1/connectors/${row.connector}/webhooks/${row.id}`,
    created_at: row.created_at.toISOString(),
    deleted_at: row.deleted_at ? row.deleted_at.toISOString() : null,
  };
}

export class ConnectorAccountsService {
  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
    private readonly connectors: ConnectorRegistry,
  ) {}

  /** Decrypted secrets by account id, with the sealed values they came from (see `contextFor`). */
  private readonly opened = new Map<string, { credentialsSealed: string | null; webhookSecretSealed: string; credentials: Readonly<Record<string, unknown>>; webhookSecret: string }>();

  async create(auth: AuthContext, input: CreateConnectorAccountInput) {
    if (!this.connectors.has(input.connector)) {
      throw invalidParam('connector', `Unknown connector "${input.connector}"; supported: ${[...this.connectors.keys()].join(', ')}.`);
    }
    if (this.connectors.get(input.connector)!.testModeOnly && !auth.testMode) {
      throw invalidParam('connector', `The ${input.connector} connector moves no real money and exists in test mode only; a live-mode account needs a real PSP (${[...this.connectors.values()].filter((c) => !c.testModeOnly).map((c) => c.name).join(', ')}).`);
    }
    // an empty or blank secret would let anyone sign the PSP's webhooks (an HMAC with an empty
    // key is no secret): refused for every connector and credential, before any other check
    for (const [key, value] of Object.entries(input.credentials ?? {})) {
      if (typeof value === 'string' && value.trim() === '') {
        throw invalidParam(`credentials.${key}`, `credentials.${key} must not be empty or blank${key === 'webhook_secret' ? '; leave webhook_secret out to have one generated' : ''}.`);
      }
    }
    const settings = input.connector === 'adyen' ? { environment: 'test', ...(input.settings ?? {}) } : input.settings ?? {};
    validateSettings(input.connector, auth.testMode, settings);
    validateCredentials(input.connector, auth.testMode, input.credentials ?? {});
    const id = newUuid();
    const credentials = { ...(input.credentials ?? {}) };
    // The PSP signs its webhooks with this secret: the merchant's own (as issued by the PSP:
    // Stripe's whsec_…, Adyen's HMAC key) when given, otherwise one we generate and show once.
    const secretField = input.connector === 'adyen' ? 'hmac_key' : 'webhook_secret';
    const webhookSecret = credentials[secretField] ?? `whsec_${randomString(32)}`;
    delete credentials[secretField];

    const row = await this.db.transaction(async (tx) => {
      // serialize account changes of one merchant: "the first account becomes the default" and
      // "one default" must hold under concurrent creates
      await tx.query('SELECT id FROM merchants WHERE id = $1 FOR NO KEY UPDATE', [auth.merchantId]);
      const makeDefault = input.default === true || !(await repo.hasDefault(tx, auth.merchantId, auth.testMode));
      if (makeDefault) await repo.clearDefault(tx, auth.merchantId, auth.testMode);
      return repo.insert(tx, {
        id,
        short_id: newConnectorShortId(),
        merchant_id: auth.merchantId,
        test_mode: auth.testMode,
        connector: input.connector,
        name: input.name ?? null,
        status: 'active',
        is_default: makeDefault,
        settings,
        credentials_sealed: Object.keys(credentials).length ? this.box.seal(JSON.stringify(credentials), id) : null,
        webhook_secret_sealed: this.box.seal(webhookSecret, id),
      });
    });
    return { ...renderConnectorAccount(row), webhook_secret: webhookSecret };
  }

  async retrieve(auth: AuthContext, idOrShortId: string, db: Queryable = this.db): Promise<ConnectorAccountRow> {
    const row = await repo.find(db, auth.merchantId, auth.testMode, idOrShortId);
    if (!row) throw new AppError('connector_account_not_found', `No such connector account: ${idOrShortId}.`, { param: 'id' });
    return row;
  }

  async list(auth: AuthContext, limit: number, cursor?: string) {
    const rows = await repo.list(this.db, auth.merchantId, auth.testMode, limit, decodeCursor(cursor));
    return toPage(rows, limit, renderConnectorAccount);
  }

  async makeDefault(auth: AuthContext, idOrShortId: string) {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT id FROM merchants WHERE id = $1 FOR NO KEY UPDATE', [auth.merchantId]);
      const row = await repo.find(tx, auth.merchantId, auth.testMode, idOrShortId, true);
      if (!row) throw new AppError('connector_account_not_found', `No such connector account: ${idOrShortId}.`, { param: 'id' });
      if (row.status !== 'active') {
        throw new AppError('connector_account_inactive', 'An inactive connector account cannot become the default.', { param: 'id' });
      }
      await repo.clearDefault(tx, auth.merchantId, auth.testMode);
      return renderConnectorAccount(await repo.setDefault(tx, row.id));
    });
  }

  async remove(auth: AuthContext, idOrShortId: string, hard: boolean) {
    return this.db.transaction(async (tx) => {
      // The merchant's row serializes its account changes. FOR NO KEY UPDATE, not FOR UPDATE: a
      // payment or refund being written holds the account FOR KEY SHARE and then checks its
      // foreign key to the merchant (KEY SHARE), so FOR UPDATE here, followed by this account's
      // FOR UPDATE, would deadlock with it.
      await tx.query('SELECT id FROM merchants WHERE id = $1 FOR NO KEY UPDATE', [auth.merchantId]);
      const row = await repo.find(tx, auth.merchantId, auth.testMode, idOrShortId, true);
      if (!row) throw new AppError('connector_account_not_found', `No such connector account: ${idOrShortId}.`, { param: 'id' });
      if (hard) {
        // Without the account nothing could finish these: a pending refund would hold its amount
        // for ever, an authorization could never be captured or canceled.
        const work = await repo.unfinishedWork(tx, row.id);
        if (work.pendingRefunds > 0 || work.uncapturedPayments > 0) {
          throw new AppError('connector_account_in_use',
            `This connector account still has ${work.pendingRefunds} pending refund(s) and ${work.uncapturedPayments} uncaptured payment(s); ` +
            'it can be hard-deleted once they are finished (capture or cancel the payments; pending refunds finish with their PSP). ' +
            'Deactivate it meanwhile (DELETE without hard=true): nothing new routes through it.', { param: 'id' });
        }
        await repo.hardDelete(tx, row.id);
        return { id: row.id, short_id: row.short_id, object: 'connector_account' as const, deleted: true as const };
      }
      return renderConnectorAccount(await repo.softDelete(tx, row.id));
    });
  }

  connectorFor(row: Pick<ConnectorAccountRow, 'connector'>): Connector {
    const connector = this.connectors.get(row.connector);
    if (!connector) throw new Error(`connector ${row.connector} is not registered`);
    return connector;
  }

  /**
   * Decrypts what an adapter needs to act for this account. The decrypted secrets are kept per
   * account for as long as its sealed values stay the same (a rotation seals new ones), so a
   * refund does not pay two AES-GCM opens; the process holds them in memory to use them anyway.
   */
  contextFor(row: ConnectorAccountRow): ConnectorContext {
    let open = this.opened.get(row.id);
    if (!open || open.credentialsSealed !== row.credentials_sealed || open.webhookSecretSealed !== row.webhook_secret_sealed) {
      open = {
        credentialsSealed: row.credentials_sealed,
        webhookSecretSealed: row.webhook_secret_sealed,
        credentials: Object.freeze(row.credentials_sealed ? (JSON.parse(this.box.open(row.credentials_sealed, row.id)) as Record<string, unknown>) : {}),
        webhookSecret: this.box.open(row.webhook_secret_sealed, row.id),
      };
      if (this.opened.size >= 10_000) this.opened.clear();
      this.opened.set(row.id, open);
    }
    return {
      accountId: row.id,
      shortId: row.short_id,
      testMode: row.test_mode,
      settings: row.settings,
      credentials: open.credentials,
      webhookSecret: open.webhookSecret,
    };
  }
}

/**
 * What each connector needs to act, checked before anything is stored: a Stripe account needs its
 * secret key (of its own mode: `sk_test_` in test mode, `sk_live_` in live mode) and the signing
 * secret of the webhook endpoint registered at Stripe.
 */
function validateCredentials(connector: string, testMode: boolean, credentials: Record<string, string>): void {
  if (connector === 'adyen') return validateAdyenCredentials(credentials);
  if (connector !== 'stripe') return;
  const allowed = ['secret_key', 'webhook_secret'];
  for (const key of Object.keys(credentials)) {
    if (!allowed.includes(key)) throw invalidParam(`credentials.${key}`, `Unknown stripe credential: ${key}; expected secret_key and webhook_secret.`);
  }
  const prefix = testMode ? STRIPE_KEY_PREFIX.test : STRIPE_KEY_PREFIX.live;
  const secretKey = credentials.secret_key;
  if (typeof secretKey !== 'string' || !secretKey.startsWith(prefix) || secretKey.length <= prefix.length || /\s/.test(secretKey)) {
    throw invalidParam('credentials.secret_key', `A ${testMode ? 'test' : 'live'}-mode Stripe account needs a secret key starting with ${prefix}.`);
  }
  const webhookSecret = credentials.webhook_secret;
  if (typeof webhookSecret !== 'string' || !/^whsec_\S+$/.test(webhookSecret)) {
    throw invalidParam('credentials.webhook_secret', 'credentials.webhook_secret must be the whsec_… signing secret of the webhook endpoint registered at Stripe.');
  }
}

/**
 * An Adyen account needs its API key (Customer Area: Developers → API credentials), the merchant
 * account it acts for, and the HMAC key of its standard notification webhook (hex).
 */
function validateAdyenCredentials(credentials: Record<string, string>): void {
  const allowed = ['api_key', 'merchant_account', 'hmac_key'];
  for (const key of Object.keys(credentials)) {
    if (!allowed.includes(key)) throw invalidParam(`credentials.${key}`, `Unknown adyen credential: ${key}; expected api_key, merchant_account and hmac_key.`);
  }
  const { api_key: apiKey, merchant_account: merchantAccount, hmac_key: hmacKey } = credentials;
  if (typeof apiKey !== 'string' || apiKey.length < 16 || /[\s\x00-\x1f]/.test(apiKey)) {
    throw invalidParam('credentials.api_key', 'credentials.api_key must be the API key of an Adyen API credential (Developers → API credentials).');
  }
  if (typeof merchantAccount !== 'string' || !/^[A-Za-z0-9_.-]{1,80}$/.test(merchantAccount)) {
    throw invalidParam('credentials.merchant_account', 'credentials.merchant_account must be the Adyen merchant account code (letters, digits, _ . -).');
  }
  if (typeof hmacKey !== 'string' || !ADYEN_HMAC_KEY_RE.test(hmacKey)) {
    throw invalidParam('credentials.hmac_key', 'credentials.hmac_key must be the hex HMAC key of the Adyen webhook (64 to 256 hex digits).');
  }
}

/** Adyen: `environment` is the account's mode (`test` for a test-mode account, `live` for a
 *  live one), and a live account names its live URL prefix. No setting names a host. */
function validateAdyenSettings(testMode: boolean, settings: Record<string, unknown>): void {
  for (const key of Object.keys(settings)) {
    if (key !== 'environment' && key !== 'live_url_prefix') throw invalidParam(`settings.${key}`, `Unknown adyen setting: ${key}.`);
  }
  const environment = testMode ? 'test' : 'live';
  if (settings.environment !== environment) {
    throw invalidParam('settings.environment', `A ${environment}-mode Adyen account has settings.environment "${environment}".`);
  }
  if (testMode) {
    if (settings.live_url_prefix !== undefined) throw invalidParam('settings.live_url_prefix', 'A test-mode Adyen account has no live_url_prefix.');
  } else if (typeof settings.live_url_prefix !== 'string' || !ADYEN_LIVE_PREFIX_RE.test(settings.live_url_prefix)) {
    throw invalidParam('settings.live_url_prefix', 'A live Adyen account needs settings.live_url_prefix, the prefix of its live endpoints (Customer Area: Developers → API URLs), e.g. 1797a841fbb37ca7-AdyenDemo.');
  }
}

function validateSettings(connector: string, testMode: boolean, settings: Record<string, unknown>): void {
  if (connector === 'adyen') return validateAdyenSettings(testMode, settings);
  if (connector !== 'sandbox') {
    const [key] = Object.keys(settings);
    if (key !== undefined) throw invalidParam(`settings.${key}`, `Unknown ${connector} setting: ${key}.`);
    return;
  }
  for (const [key, value] of Object.entries(settings)) {
    if (key === 'base_url') {
      if (typeof value !== 'string' || !/^https?:\/\/[^\s]+$/.test(value)) {
        throw invalidParam('settings.base_url', 'settings.base_url must be an http(s) URL of a psp-sim server.');
      }
    } else if (key === 'pending_delay_ms') {
      if (!Number.isSafeInteger(value) || (value as number) < 0 || (value as number) > 86_400_000) {
        throw invalidParam('settings.pending_delay_ms', 'settings.pending_delay_ms must be an integer from 0 to 86400000.');
      }
    } else {
      throw invalidParam(`settings.${key}`, `Unknown sandbox setting: ${key}.`);
    }
  }
}
