/**
 * The only reader of `process.env`. Everything is validated once at start; a bad configuration
 * lists every bad key and the process exits (see main.ts).
 */
import { availableParallelism } from 'node:os';

export interface Config {
  /** `postgres://…` selects a real server; unset → embedded PGlite in `dataDir`. */
  databaseUrl: string | undefined;
  /** Embedded database and generated secrets live here. Default `./.settle`. */
  dataDir: string;
  /** Default 8080. */
  port: number;
  /** Default `127.0.0.1`. */
  host: string;
  /** Bearer token for `/v1/admin/*`. Unset → generated and kept in the data directory. */
  adminKey: string | undefined;
  /** 32 bytes as 64 hex chars or base64. Unset → generated and kept in the data directory. */
  encryptionKey: Buffer | undefined;
  /** During a key rotation, the key being replaced: accepted for reading, never for sealing
   *  (see docs/security.md). Unset by default. */
  encryptionKeyPrevious: Buffer | undefined;
  /** pino level. Default `info`. */
  logLevel: string;
  /** Maximum request body in bytes. Default 65536 (64 KiB). */
  bodyLimit: number;
  /** Largest inbound PSP webhook body in bytes (its own limit: a payment with hundreds of refunds
   *  is listed whole in every refund webhook). Default 8 MiB. */
  inboundBodyLimit: number;
  /** `pg` pool size per process. Default 4 × CPU cores, between 4 and 20 (8 on 2 cores). */
  dbPoolSize: number;
  /** Named prepared statements on PostgreSQL (parsed and planned once per connection). Set false
   *  behind a transaction pooler such as PgBouncer < 1.21 in `pool_mode=transaction`; left true
   *  there, the first refused statement turns them off for the process. Default true. */
  dbPreparedStatements: boolean;
  /** Refund steps of different payments that may share one database transaction under load
   *  (see src/db/group.ts); 1 runs every step in a transaction of its own. Default 16. */
  refundGroupMax: number;
  /** How long stored idempotent responses are kept. Default 24 hours. */
  idempotencyRetentionHours: number;
  /** An in-flight idempotency key whose owner has not finished after this long is presumed dead
   *  (crashed process) and may be taken over by a retry. Default 30000 ms. */
  idempotencyLockMs: number;
  /** Requests per second per API key (token bucket, burst = 2×). 0 disables. Default 100. */
  rateLimitPerSecond: number;
  /** Requests with an invalid API key (or admin key) allowed per client address per minute;
   *  past it, that address gets 429 for each further invalid key (a valid key is still
   *  answered). 0 disables. Default 30. */
  authFailuresPerMinute: number;
  /** How long a console session lasts after sign-in, in minutes. Default 480 (8 hours). */
  consoleSessionMinutes: number;
  /** Behind a reverse proxy: which X-Forwarded-For hops to believe for the client's address
   *  (Fastify's trustProxy: true, a hop count, or addresses/CIDRs). Unset → the socket's peer. */
  trustProxy: boolean | number | string[] | undefined;
  /** Redis URL for a rate limit shared across processes. Unset → per-process memory. */
  redisUrl: string | undefined;
  /** Outbound webhook retry delays in seconds (before jitter); after the last one the delivery
   *  is marked failed. Default: 1m 5m 30m 2h 5h 10h 10h 12h 12h 12h (≈ 3 days in all). */
  webhookRetrySchedule: number[];
  /** Timeout for one outbound webhook POST. Default 10000 ms. */
  webhookTimeoutMs: number;
  /** Most outbound webhook POSTs of one merchant in flight at once, over all processes, so one
   *  merchant's slow endpoints cannot hold every delivery slot. Default 8. */
  webhookMerchantConcurrency: number;
  /** Most outbound webhook POSTs one process has in flight at once. Default 64. */
  webhookConcurrency: number;
  /** Most webhook endpoints a merchant may have per mode. Default 16. */
  webhookEndpointsMax: number;
  /** Timeout for one call to a PSP over HTTP. Default 10000 ms. */
  connectorTimeoutMs: number;
  /** Refund sync backoff: first delay and cap, in ms. Defaults 1000 and 300000. */
  refundSyncBaseMs: number;
  refundSyncMaxMs: number;
  /** How often background workers poll when idle. Default 500 ms. */
  workerPollMs: number;
  /** How often an open `GET /v1/events/stream` looks for new events. Default 500 ms. */
  eventStreamPollMs: number;
  /** How long an event stream may stay silent before a comment line keeps proxies from closing it. Default 15000 ms. */
  eventStreamHeartbeatMs: number;
  /** What `settle serve` runs: `api` (HTTP API only), `worker` (background workers, with only
   *  /healthz, /readyz and /metrics over HTTP) or `all` (both). `--role` overrides it. Default `all`. */
  role: ServeRole;
  /** How often the background reconciliation runs, in ms; 0 turns it off. Default 900000 (15 min). */
  reconcileIntervalMs: number;
  /** The background reconciliation checks every payment with activity in this many hours. Default 24. */
  reconcileLookbackHours: number;
  /** The background reconciliation leaves payments changed in the last this-many ms for its next
   *  run (their webhooks may be in flight). Default 60000. */
  reconcileSettleMs: number;
  /** Reconciliation reports a refund pending longer than this many hours on a PSP that cannot be
   *  asked where it stands (Adyen): its notification never came. Default 24. */
  reconcileStalePendingHours: number;
  /** On SIGTERM, how long /readyz answers 503 (so a load balancer stops sending requests) before
   *  the listener closes. Default 2000 ms. */
  shutdownDelayMs: number;
  /** After that, how long requests in flight and running background work get to finish before
   *  the process exits anyway (exit code 1). Default 30000 ms. */
  shutdownTimeoutMs: number;
  /** Run the background workers (outbox, refund sync, inbound webhooks, cleanup) in this process.
   *  Default true; false makes role `all` an `api` process. */
  workersEnabled: boolean;
  /** Allow live-mode webhook endpoints on loopback/private addresses (never in production).
   *  Default false. */
  allowPrivateWebhookUrls: boolean;
  /** Where the Stripe connector sends its API calls, e.g. `http://127.0.0.1:4100` (the psp-sim's
   *  Stripe wire). Unset → Stripe's own `https://api.stripe.com`. An operator setting only: a
   *  merchant's account settings never choose a PSP's host. */
  stripeApiBase: string | undefined;
  /** Where the Adyen connector sends a test-mode account's Checkout calls instead of Adyen's test
   *  endpoint (`https://checkout-test.adyen.com`), e.g. `http://127.0.0.1:4100` (the psp-sim's
   *  Adyen wire). A live-mode account always speaks to its own live endpoint. An operator
   *  setting only. */
  adyenCheckoutBase: string | undefined;
}

type Env = Record<string, string | undefined>;

export const SERVE_ROLES = ['api', 'worker', 'all'] as const;
export type ServeRole = (typeof SERVE_ROLES)[number];

export function isServeRole(value: string | undefined): value is ServeRole {
  return (SERVE_ROLES as readonly string[]).includes(value ?? '');
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

export function loadConfig(env: Env = process.env): Readonly<Config> {
  const problems: string[] = [];

  const int = (key: string, def: number, min: number, max: number): number => {
    const raw = env[key];
    if (raw === undefined || raw === '') return def;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${key} must be an integer from ${min} to ${max} (got "${raw}")`);
      return def;
    }
    return Number(raw);
  };
  const bool = (key: string, def: boolean): boolean => {
    const raw = env[key];
    if (raw === undefined || raw === '') return def;
    if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
    if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
    problems.push(`${key} must be true or false (got "${raw}")`);
    return def;
  };

  const databaseUrl = env.DATABASE_URL || undefined;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push('DATABASE_URL must start with postgres:// or postgresql://');
  }

  let encryptionKey: Buffer | undefined;
  if (env.SETTLE_ENCRYPTION_KEY) {
    encryptionKey = parseKey(env.SETTLE_ENCRYPTION_KEY);
    if (!encryptionKey) {
      problems.push('SETTLE_ENCRYPTION_KEY must be 32 bytes, as 64 hex characters or base64');
    }
  }

  let encryptionKeyPrevious: Buffer | undefined;
  if (env.SETTLE_ENCRYPTION_KEY_PREVIOUS) {
    encryptionKeyPrevious = parseKey(env.SETTLE_ENCRYPTION_KEY_PREVIOUS);
    if (!encryptionKeyPrevious) {
      problems.push('SETTLE_ENCRYPTION_KEY_PREVIOUS must be 32 bytes, as 64 hex characters or base64');
    } else if (!encryptionKey) {
      problems.push('SETTLE_ENCRYPTION_KEY_PREVIOUS needs SETTLE_ENCRYPTION_KEY (the key that replaces it)');
    } else if (encryptionKey.equals(encryptionKeyPrevious)) {
      problems.push('SETTLE_ENCRYPTION_KEY_PREVIOUS is the same key as SETTLE_ENCRYPTION_KEY');
    }
  }

  const adminKey = env.SETTLE_ADMIN_KEY || undefined;
  if (adminKey !== undefined && adminKey.length < 24) {
    problems.push('SETTLE_ADMIN_KEY must be at least 24 characters');
  }

  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  const logLevel = (env.LOG_LEVEL || 'info').toLowerCase();
  if (!levels.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${levels.join(', ')}`);

  let webhookRetrySchedule = [60, 300, 1800, 7200, 18000, 36000, 36000, 43200, 43200, 43200];
  if (env.WEBHOOK_RETRY_SCHEDULE) {
    const parts = env.WEBHOOK_RETRY_SCHEDULE.split(',').map((s) => s.trim());
    if (parts.length === 0 || parts.some((p) => !/^\d+(\.\d+)?$/.test(p))) {
      problems.push('WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds, e.g. "60,300,1800"');
    } else {
      webhookRetrySchedule = parts.map(Number);
    }
  }

  const role = env.SETTLE_ROLE || 'all';
  if (!isServeRole(role)) problems.push(`SETTLE_ROLE must be one of ${SERVE_ROLES.join(', ')} (got "${role}")`);

  const redisUrl = env.REDIS_URL || undefined;
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) problems.push('REDIS_URL must start with redis://');

  const stripeApiBase = pspBase(env, 'SETTLE_STRIPE_API_BASE', problems);
  const adyenCheckoutBase = pspBase(env, 'SETTLE_ADYEN_CHECKOUT_BASE', problems);

  const config: Config = {
    databaseUrl,
    dataDir: env.SETTLE_DATA_DIR || './.settle',
    port: int('PORT', 8080, 0, 65535),
    host: env.HOST || '127.0.0.1',
    adminKey,
    encryptionKey,
    encryptionKeyPrevious,
    logLevel,
    bodyLimit: int('SETTLE_BODY_LIMIT', 64 * 1024, 1024, 16 * 1024 * 1024),
    inboundBodyLimit: int('SETTLE_INBOUND_BODY_LIMIT', 8 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    // more connections than the database has cores to run them cost it CPU per statement
    // (measured: docs/benchmarks.md, "Pool size")
    dbPoolSize: int('SETTLE_DB_POOL_SIZE', defaultDbPoolSize(), 1, 500),
    dbPreparedStatements: bool('SETTLE_DB_PREPARED_STATEMENTS', true),
    refundGroupMax: int('SETTLE_REFUND_GROUP_MAX', 16, 1, 256),
    idempotencyRetentionHours: int('SETTLE_IDEMPOTENCY_RETENTION_HOURS', 24, 24, 24 * 365),
    idempotencyLockMs: int('SETTLE_IDEMPOTENCY_LOCK_MS', 30_000, 100, 3_600_000),
    rateLimitPerSecond: int('SETTLE_RATE_LIMIT_PER_SECOND', 100, 0, 1_000_000),
    authFailuresPerMinute: int('SETTLE_AUTH_FAILURES_PER_MINUTE', 30, 0, 1_000_000),
    consoleSessionMinutes: int('SETTLE_CONSOLE_SESSION_MINUTES', 480, 1, 7 * 24 * 60),
    trustProxy: trustProxy(env.SETTLE_TRUST_PROXY),
    redisUrl,
    webhookRetrySchedule,
    webhookTimeoutMs: int('SETTLE_WEBHOOK_TIMEOUT_MS', 10_000, 100, 120_000),
    webhookMerchantConcurrency: int('SETTLE_WEBHOOK_MERCHANT_CONCURRENCY', 8, 1, 1000),
    webhookConcurrency: int('SETTLE_WEBHOOK_CONCURRENCY', 64, 1, 10_000),
    webhookEndpointsMax: int('SETTLE_WEBHOOK_ENDPOINTS_MAX', 16, 1, 1000),
    connectorTimeoutMs: int('SETTLE_CONNECTOR_TIMEOUT_MS', 10_000, 50, 120_000),
    refundSyncBaseMs: int('SETTLE_REFUND_SYNC_BASE_MS', 1000, 10, 3_600_000),
    refundSyncMaxMs: int('SETTLE_REFUND_SYNC_MAX_MS', 300_000, 10, 86_400_000),
    workerPollMs: int('SETTLE_WORKER_POLL_MS', 500, 10, 60_000),
    eventStreamPollMs: int('SETTLE_EVENT_STREAM_POLL_MS', 500, 50, 60_000),
    eventStreamHeartbeatMs: int('SETTLE_EVENT_STREAM_HEARTBEAT_MS', 15_000, 100, 300_000),
    role: isServeRole(role) ? role : 'all',
    reconcileIntervalMs: int('SETTLE_RECONCILE_INTERVAL_MS', 900_000, 0, 86_400_000),
    reconcileLookbackHours: int('SETTLE_RECONCILE_LOOKBACK_HOURS', 24, 1, 24 * 90),
    reconcileSettleMs: int('SETTLE_RECONCILE_SETTLE_MS', 60_000, 0, 86_400_000),
    reconcileStalePendingHours: int('SETTLE_RECONCILE_STALE_PENDING_HOURS', 24, 1, 24 * 90),
    shutdownDelayMs: int('SETTLE_SHUTDOWN_DELAY_MS', 2000, 0, 600_000),
    shutdownTimeoutMs: int('SETTLE_SHUTDOWN_TIMEOUT_MS', 30_000, 100, 3_600_000),
    workersEnabled: bool('SETTLE_WORKERS', true),
    allowPrivateWebhookUrls: bool('SETTLE_ALLOW_PRIVATE_WEBHOOK_URLS', false),
    stripeApiBase,
    adyenCheckoutBase,
  };

  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

/** A PSP's base URL from the operator's environment: http(s), a host, no path, query or credentials. */
function pspBase(env: Env, key: string, problems: string[]): string | undefined {
  const raw = env[key];
  if (raw === undefined || raw === '') return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || !/^https?:$/.test(url.protocol) || url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) {
    problems.push(`${key} must be an http(s) URL with no path, e.g. http://127.0.0.1:4100 (got "${raw}")`);
    return undefined;
  }
  return url.origin;
}

function parseKey(raw: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(raw)) return Buffer.from(raw, 'hex');
  const b = Buffer.from(raw, 'base64');
  return b.length === 32 ? b : undefined;
}

/** `true`, a number of hops, or a comma-separated list of proxy addresses or CIDRs. */
function trustProxy(raw: string | undefined): boolean | number | string[] | undefined {
  const v = raw?.trim();
  if (!v || v === 'false') return undefined;
  if (v === 'true') return true;
  if (/^\d+$/.test(v)) return Number(v);
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * The V8 old-space cap, in MB, that the deployment files give node (`--max-old-space-size`: the
 * `npm start` script, the Dockerfile's and the systemd unit's `NODE_OPTIONS`), and that the bench
 * and the process tests run the gateway with. Without a cap V8 sizes the heap for the machine's
 * memory and, under a high allocation rate, lets it grow to several times the live data (peak RSS
 * ~300 MB in the bench against 130–170 MB with this cap, at no measurable CPU cost); the live
 * data stays under ~200 MB at the bench's heaviest loads. docs/operations.md, "Memory".
 */
const NODE_HEAP_MB = 384;
/** The node flag that sets it. */
export const NODE_HEAP_ARG = `--max-old-space-size=${NODE_HEAP_MB}`;

/** 4 connections per CPU core, between 4 and 20. */
export const defaultDbPoolSize = (): number => Math.min(20, Math.max(4, 4 * availableParallelism()));
