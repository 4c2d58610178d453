import type { Registry } from 'prom-client';
import { Counter, Gauge } from 'prom-client';
import type { Config } from './config.js';
import type { ConnectorRegistry } from './connectors/connector.js';
import type { Db } from './db/db.js';
import { groupLimits } from './db/group.js';
import { constantTimeEqual, hashSecret, type SecretBox } from './lib/crypto.js';
import type { Logger } from './lib/logger.js';
import { ApiKeysService } from './modules/api-keys/api-keys.service.js';
import { ConsoleSessionsService } from './modules/console/console-sessions.service.js';
import { ConnectorAccountsService } from './modules/connector-accounts/connector-accounts.service.js';
import { EventStreamService } from './modules/events/event-stream.service.js';
import { EncryptionKeysService } from './modules/encryption/encryption-keys.service.js';
import { FeaturesService } from './modules/features/features.service.js';
import { IdempotencyService } from './modules/idempotency/idempotency.service.js';
import { InboundWebhooksService } from './modules/inbound/inbound.service.js';
import { LedgerService } from './modules/ledger/ledger.service.js';
import { MerchantsService } from './modules/merchants/merchants.service.js';
import { PaymentsService } from './modules/payments/payments.service.js';
import { DifferencesRecorder, ReconciliationService } from './modules/reconciliation/reconciliation.service.js';
import { RefundsService } from './modules/refunds/refunds.service.js';
import { WebhooksService } from './modules/webhooks/webhooks.service.js';

/** Platform admin authentication: one key, compared in constant time. */
export class AdminAuth {
  private readonly hash: Buffer;
  constructor(adminKey: string) {
    this.hash = hashSecret(adminKey);
  }
  check(presented: string | undefined): boolean {
    return presented !== undefined && constantTimeEqual(hashSecret(presented), this.hash);
  }
}

/** Gauges read from the database when /metrics is scraped, and the refund path's transaction counts. */
export class MetricsService {
  private gauges: { pendingRefunds?: Gauge; pendingDeliveries?: Gauge; inboundBacklog?: Gauge; openDifferences?: Gauge } = {};
  constructor(
    private readonly db: Db,
    private readonly refunds: RefundsService,
    private readonly reconciliation: ReconciliationService,
  ) {}
  register(registry: Registry): void {
    const stats = this.refunds.transactionStats; // live counts
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({ name, help, registers: [registry], collect() {
        this.reset();
        this.inc(read());
      } });
    counter('settle_refund_db_transactions_total', 'Database transactions run for refund steps that lock a payment (one per group)', () => stats.transactions);
    counter('settle_refund_db_transaction_members_total', 'Refund steps run in those transactions (more than the transactions when steps were grouped)', () => stats.members);
    counter('settle_refund_db_groups_rolled_back_total', 'Groups rolled back because a member failed; their members then ran alone', () => stats.groupsRolledBack);
    const found = this.reconciliation.found; // live counts per kind
    new Counter({
      name: 'settle_reconciliation_differences_total',
      help: 'Differences with the PSP found by reconciliation in this process (each stored once), by kind',
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [kind, n] of found) this.inc({ kind }, n);
      },
    });
    this.gauges = {
      pendingRefunds: new Gauge({ name: 'settle_refunds_pending', help: 'Refunds waiting for a final PSP outcome', registers: [registry] }),
      pendingDeliveries: new Gauge({ name: 'settle_webhook_deliveries_pending', help: 'Outbound webhook deliveries not yet delivered', registers: [registry] }),
      inboundBacklog: new Gauge({ name: 'settle_inbound_webhooks_unprocessed', help: 'Inbound PSP webhooks stored but not yet processed', registers: [registry] }),
      openDifferences: new Gauge({ name: 'settle_reconciliation_differences_open', help: 'Differences with the PSP found by reconciliation and not resolved since', registers: [registry] }),
    };
  }
  async refresh(): Promise<void> {
    const r = await this.db.query<{ refunds: number; deliveries: number; inbound: number; differences: number }>(
      `SELECT (SELECT count(*) FROM refunds WHERE status = 'pending')::int AS refunds,
              (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending')::int AS deliveries,
              (SELECT count(*) FROM inbound_webhooks WHERE status = 'received')::int AS inbound,
              (SELECT count(*) FROM reconciliation_differences WHERE status = 'open')::int AS differences`,
    );
    this.gauges.pendingRefunds?.set(r.rows[0].refunds);
    this.gauges.pendingDeliveries?.set(r.rows[0].deliveries);
    this.gauges.inboundBacklog?.set(r.rows[0].inbound);
    this.gauges.openDifferences?.set(r.rows[0].differences);
  }
}

export interface Services {
  admin: AdminAuth;
  merchants: MerchantsService;
  apiKeys: ApiKeysService;
  consoleSessions: ConsoleSessionsService;
  features: FeaturesService;
  connectorAccounts: ConnectorAccountsService;
  payments: PaymentsService;
  refunds: RefundsService;
  idempotency: IdempotencyService;
  ledger: LedgerService;
  webhooks: WebhooksService;
  eventStream: EventStreamService;
  inbound: InboundWebhooksService;
  reconciliation: ReconciliationService;
  metrics: MetricsService;
  encryptionKeys: EncryptionKeysService;
}

export function createServices(deps: {
  config: Config;
  db: Db;
  logger: Logger;
  box: SecretBox;
  connectors: ConnectorRegistry;
  adminKey: string;
}): Services {
  const { config, db, logger, box, connectors } = deps;
  const connectorAccounts = new ConnectorAccountsService(db, box, connectors);
  const refunds = new RefundsService(db, connectorAccounts, logger, {
    syncBaseMs: config.refundSyncBaseMs,
    syncMaxMs: config.refundSyncMaxMs,
    orphanGraceMs: config.connectorTimeoutMs + 5000,
    groups: groupLimits(db.kind, config.dbPoolSize, config.refundGroupMax),
  });
  const merchants = new MerchantsService(db);
  const admin = new AdminAuth(deps.adminKey);
  const payments = new PaymentsService(db, connectorAccounts, logger);
  const differences = new DifferencesRecorder();
  const inbound = new InboundWebhooksService(db, connectorAccounts, refunds, logger, { payments, differences });
  const reconciliation = new ReconciliationService(db, connectorAccounts, inbound, logger, { payments, refunds }, differences);
  return {
    admin,
    merchants,
    consoleSessions: new ConsoleSessionsService(db, merchants, admin, deps.adminKey, config.consoleSessionMinutes),
    apiKeys: new ApiKeysService(db, merchants),
    features: new FeaturesService(db),
    connectorAccounts,
    payments,
    refunds,
    idempotency: new IdempotencyService(db, box, { lockMs: config.idempotencyLockMs, retentionHours: config.idempotencyRetentionHours }),
    ledger: new LedgerService(db),
    webhooks: new WebhooksService(db, box, config, logger),
    eventStream: new EventStreamService(db, { pollMs: config.eventStreamPollMs, heartbeatMs: config.eventStreamHeartbeatMs }),
    inbound,
    reconciliation,
    metrics: new MetricsService(db, refunds, reconciliation),
    encryptionKeys: new EncryptionKeysService(db, box),
  };
}
