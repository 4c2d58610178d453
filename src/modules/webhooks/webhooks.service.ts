import { lookup } from 'node:dns/promises';
import { createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Agent, request, type Dispatcher } from 'undici';
import type { Config } from '../../config.js';
import type { Db } from '../../db/db.js';
import { AppError, invalidParam } from '../../http/errors.js';
import { decodeCursor, toPage } from '../../http/pagination.js';
import { hmacSha256Hex, type SecretBox } from '../../lib/crypto.js';
import { newId, randomString } from '../../lib/ids.js';
import type { Logger } from '../../lib/logger.js';
import type { SettleEvent } from '../../sdk/verify-signature.js';
import type { AuthContext } from '../merchants/merchants.service.js';
import { deliveredBody, dialectEventNames, dialectEventTypes, nativeEventTypes, type WebhookDialect } from './dialects.js';
import { EVENT_TYPES } from './events.repository.js';
import {
  BlockedAddressError,
  blockedAddressesReason,
  blockedHostReason,
  guardedLookup,
  ipLiteral,
  isLocalhostName,
  parseWebhookUrl,
  type AddressPolicy,
  type ResolveAll,
} from './url-guard.js';
import { webhooksRepository as repo, type AttemptCategory, type ClaimedDelivery, type WebhookEndpointRow } from './webhooks.repository.js';

export interface WebhooksServiceOptions {
  /** How host names are resolved, at endpoint creation and for every new connection. Default:
   *  the system resolver (`dns.lookup`). Tests map names to addresses with it. */
  resolveAll?: ResolveAll;
}

const systemResolveAll: ResolveAll = (hostname, family) => lookup(hostname, { all: true, family: family ?? 0 });

export interface CreateWebhookEndpointInput {
  url: string;
  enabled_events: string[];
  description?: string | null;
  /** The events' names and shapes; default `settle` (see dialects.ts). */
  dialect?: WebhookDialect;
}

export interface ListEndpointsInput {
  /** 1–100; default 10 (applied by the route schema). */
  limit?: number;
  cursor?: string;
}

export interface ListEventsInput extends ListEndpointsInput {
  type?: string;
  /** Events about this object (a payment's or a refund's id). */
  object_id?: string;
  /** Events with at least one delivery in this status. */
  delivery_status?: 'pending' | 'succeeded' | 'failed';
}

/** An event as stored and delivered (contract section 7.1): the type merchants' receivers see. */
export type EventJson = SettleEvent;

/**
 * The `Settle-Signature` header value for `body` sent at unix time `t` (seconds):
 * `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. Verified by `src/sdk/verify-signature.ts`.
 */
export function signPayload(secret: string, body: string, t: number): string {
  return `t=${t},v1=${hmacSha256Hex(secret, `${t}.${body}`)}`;
}

/**
 * The Standard Webhooks signature (https://www.standardwebhooks.com) of `body` for message `id`
 * sent at unix time `t`: `v1,<base64 HMAC-SHA256(key, "<id>.<t>.<body>")>`, where the key is the
 * base64 text after `whsec_` decoded (endpoint secrets are `whsec_` + 32 base64 characters, a
 * 24-byte key), so that the Standard Webhooks libraries verify deliveries with the same secret.
 */
export function standardWebhookSignature(secret: string, id: string, t: number, body: string): string {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${t}.${body}`).digest('base64')}`;
}

export function renderEndpoint(row: WebhookEndpointRow) {
  return {
    id: row.id,
    object: 'webhook_endpoint' as const,
    url: row.url,
    enabled_events: dialectEventTypes(row.dialect, row.enabled_events),
    dialect: row.dialect,
    description: row.description,
    status: row.status,
    test_mode: row.test_mode,
    created_at: row.created_at.toISOString(),
  };
}

const EVENT_TYPE_SET: ReadonlySet<string> = new Set(EVENT_TYPES);
/** How much of a response body is read (and discarded) so the connection can be reused. */
const MAX_DRAIN_BYTES = 64 * 1024;
const DEFAULT_LIMIT = 10;

export class WebhooksService {
  /** One connection pool per address policy. Every new connection resolves the host and checks
   *  the very addresses it then connects to (the resolved address is pinned for the connection,
   *  so DNS rebinding cannot switch it); a kept-alive connection was checked when it was opened. */
  private readonly agents: Record<AddressPolicy, Dispatcher>;
  /** How long a claimed delivery stays invisible to other workers: the POST is aborted after
   *  `webhookTimeoutMs`, and 30 s more covers recording the outcome. */
  private readonly leaseMs: number;
  private readonly resolveAll: ResolveAll;
  /** POSTs this process has started and not yet recorded (see `dispatchDue`). */
  private readonly inFlight = new Set<Promise<void>>();
  private closing: Promise<void> | undefined;

  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
    private readonly config: Config,
    private readonly logger: Logger,
    options: WebhooksServiceOptions = {},
  ) {
    this.leaseMs = config.webhookTimeoutMs + 30_000;
    this.resolveAll = options.resolveAll ?? systemResolveAll;
    const agent = (policy: AddressPolicy) =>
      new Agent({ connect: { timeout: config.webhookTimeoutMs, lookup: guardedLookup(this.resolveAll, policy) } });
    this.agents = { public: agent('public'), development: agent('development') };
  }

  /** Live mode allows public addresses only, unless the operator allows private ones
   *  (`SETTLE_ALLOW_PRIVATE_WEBHOOK_URLS`); test mode allows loopback and private ones too. */
  private policyFor(testMode: boolean): AddressPolicy {
    return !testMode && !this.config.allowPrivateWebhookUrls ? 'public' : 'development';
  }

  async createEndpoint(auth: AuthContext, input: CreateWebhookEndpointInput) {
    const dialect = input.dialect ?? 'settle';
    const enabledEvents = dialect === 'settle' ? validateEnabledEvents(input.enabled_events) : validateDialectEvents(dialect, input.enabled_events);
    const url = await this.validateUrl(input.url, auth.testMode);
    const id = newId('we');
    const secret = `whsec_${randomString(32)}`;
    const max = this.config.webhookEndpointsMax;
    const row = await this.db.transaction(async (tx) => {
      // serializes the merchant's creates, so that concurrent ones cannot both pass the cap
      await tx.query('SELECT id FROM merchants WHERE id = $1 FOR NO KEY UPDATE', [auth.merchantId]);
      if ((await repo.countEndpoints(tx, auth.merchantId, auth.testMode)) >= max) {
        throw new AppError('webhook_endpoints_limit_reached',
          `This merchant already has the maximum of ${max} ${auth.testMode ? 'test' : 'live'}-mode webhook endpoints; delete one before creating another (one endpoint can subscribe to every event type with ["*"]).`);
      }
      return repo.insertEndpoint(tx, {
        id,
        merchant_id: auth.merchantId,
        test_mode: auth.testMode,
        url,
        enabled_events: enabledEvents,
        dialect,
        description: input.description ?? null,
        // bound to the endpoint id, so a sealed secret cannot be moved to another endpoint's row
        secret_sealed: this.box.seal(secret, id),
      });
    });
    return { ...renderEndpoint(row), secret };
  }

  async listEndpoints(auth: AuthContext, input: ListEndpointsInput) {
    const limit = input.limit ?? DEFAULT_LIMIT;
    const rows = await repo.listEndpoints(this.db, auth.merchantId, auth.testMode, limit, decodeCursor(input.cursor));
    return toPage(rows, limit, renderEndpoint);
  }

  async retrieveEndpoint(auth: AuthContext, id: string) {
    const row = await repo.findEndpoint(this.db, auth.merchantId, auth.testMode, id);
    if (!row) throw endpointNotFound(id);
    return renderEndpoint(row);
  }

  /** Soft delete: the row stays for the delivery history; its pending deliveries end as failed. */
  async deleteEndpoint(auth: AuthContext, id: string) {
    await this.db.transaction(async (tx) => {
      const row = await repo.findEndpoint(tx, auth.merchantId, auth.testMode, id, true);
      if (!row) throw endpointNotFound(id);
      await repo.softDeleteEndpoint(tx, row.id);
      await repo.failPendingDeliveries(tx, row.id, 'endpoint deleted');
    });
    return { id, object: 'webhook_endpoint' as const, deleted: true as const };
  }

  async listEvents(auth: AuthContext, input: ListEventsInput) {
    const limit = input.limit ?? DEFAULT_LIMIT;
    if (input.type !== undefined && !EVENT_TYPE_SET.has(input.type)) {
      throw invalidParam('type', `Unknown event type "${input.type}"; one of: ${EVENT_TYPES.join(', ')}.`);
    }
    const rows = await repo.listEvents(this.db, auth.merchantId, auth.testMode, limit, decodeCursor(input.cursor), input.type, {
      objectId: input.object_id,
      deliveryStatus: input.delivery_status,
    });
    // the stored body is the event exactly as delivered
    return toPage(rows, limit, (row) => JSON.parse(row.body) as EventJson);
  }

  async retrieveEvent(auth: AuthContext, id: string) {
    const event = await repo.findEvent(this.db, auth.merchantId, auth.testMode, id);
    if (!event) throw new AppError('event_not_found', `No such event: ${id}.`, { param: 'id' });
    const [attempts, deliveries] = await Promise.all([repo.attemptsForEvent(this.db, event.id), repo.deliveriesForEvent(this.db, event.id)]);
    return {
      ...(JSON.parse(event.body) as EventJson),
      delivery_attempts: attempts.map((a) => ({
        endpoint_id: a.endpoint_id,
        attempt: a.attempt,
        http_status: a.http_status,
        category: a.category,
        error: a.error,
        duration_ms: a.duration_ms,
        attempted_at: a.attempted_at.toISOString(),
      })),
      deliveries: deliveries.map((d) => ({
        endpoint_id: d.endpoint_id,
        status: d.status,
        attempts: d.attempts,
        next_attempt_at: d.status === 'pending' ? d.next_attempt_at.toISOString() : null,
      })),
    };
  }

  /**
   * Makes the event due now for every currently matching enabled endpoint, with a fresh retry
   * schedule. A delivery a worker is sending at this moment loses its lease, so that worker's
   * outcome is not recorded over the new cycle; the merchant may then receive the event twice,
   * which at-least-once delivery allows and which they asked for.
   */
  async redeliver(auth: AuthContext, id: string) {
    await this.db.transaction(async (tx) => {
      const event = await repo.findEvent(tx, auth.merchantId, auth.testMode, id);
      if (!event) throw new AppError('event_not_found', `No such event: ${id}.`, { param: 'id' });
      await repo.scheduleRedelivery(tx, event.id);
    });
    return this.retrieveEvent(auth, id);
  }

  /**
   * Claims up to `limit` (default 50) due deliveries in a short transaction, commits, then sends
   * them concurrently outside any transaction, records each outcome, and returns how many were
   * attempted once all are recorded. The claim is fair between merchants (see `claimDue`). Safe
   * to run in several processes at once.
   */
  async deliverDue(limit = 50): Promise<number> {
    const claimed = await this.claim(limit);
    // concurrently: the lease covers one POST plus recording, not a queue of them
    await Promise.all(claimed.map((d) => this.deliverOne(d)));
    return claimed.length;
  }

  /**
   * One pass of the delivery worker: claims as many due deliveries as this process has free
   * slots (`SETTLE_WEBHOOK_CONCURRENCY`) and starts sending them without waiting for them, so a
   * slow endpoint holds one slot for at most `SETTLE_WEBHOOK_TIMEOUT_MS` and never a whole batch:
   * the next pass claims other merchants' deliveries meanwhile. Returns how many were claimed.
   */
  async dispatchDue(): Promise<number> {
    const free = this.config.webhookConcurrency - this.inFlight.size;
    if (free <= 0) return 0;
    const claimed = await this.claim(free);
    for (const d of claimed) {
      const sending: Promise<void> = this.deliverOne(d).finally(() => this.inFlight.delete(sending));
      this.inFlight.add(sending);
    }
    return claimed.length;
  }

  /** POSTs started by `dispatchDue` and not yet recorded. */
  get sending(): number {
    return this.inFlight.size;
  }

  private claim(limit: number): Promise<ClaimedDelivery[]> {
    return this.db.transaction((tx) => repo.claimDue(tx, limit, this.leaseMs, this.config.webhookMerchantConcurrency));
  }

  private async deliverOne(d: ClaimedDelivery): Promise<void> {
    const attemptedAt = new Date();
    const started = performance.now();
    let httpStatus: number | null = null;
    let outcome: Outcome;
    try {
      httpStatus = await this.post(d);
      outcome = {
        category: 'http_status',
        error: httpStatus >= 300 && httpStatus < 400 ? `redirects are not followed (HTTP ${httpStatus})` : null,
      };
    } catch (err) {
      outcome = categorize(err, this.config.webhookTimeoutMs);
      // the operator's log keeps the transport detail; the merchant sees the category only
      this.logger.debug({ delivery_id: d.id, endpoint_id: d.endpoint_id, code: (err as { code?: string }).code, err: (err as Error).message }, 'webhook transport error');
    }
    const { category, error } = outcome;
    const durationMs = Math.round(performance.now() - started);
    const succeeded = httpStatus !== null && httpStatus >= 200 && httpStatus < 300;
    const schedule = this.config.webhookRetrySchedule;
    // attempt n failed → wait schedule[n-1]; after the last entry the delivery is given up
    const retryInSeconds = succeeded ? undefined : d.attempts <= schedule.length ? schedule[d.attempts - 1] : null;

    try {
      const applied = await this.db.transaction(async (tx) => {
        // the attempt happened whatever the lease says: it is history and is always kept
        await repo.insertAttempt(tx, {
          delivery_id: d.id,
          event_id: d.event_id,
          endpoint_id: d.endpoint_id,
          attempt: d.attempts,
          http_status: httpStatus,
          category,
          error,
          duration_ms: durationMs,
          attempted_at: attemptedAt,
        });
        return repo.recordOutcome(tx, { id: d.id, lease: d.lease, httpStatus, error, retryInSeconds });
      });
      const log = { delivery_id: d.id, event_id: d.event_id, endpoint_id: d.endpoint_id, merchant_id: d.merchant_id, attempt: d.attempts, http_status: httpStatus, category, error, duration_ms: durationMs };
      if (!applied) this.logger.warn(log, 'webhook outcome not recorded: the delivery was rescheduled or ended meanwhile');
      else if (succeeded) this.logger.debug(log, 'webhook delivered');
      else if (retryInSeconds === null) this.logger.warn(log, 'webhook delivery failed: retry schedule exhausted');
      else this.logger.info({ ...log, retry_in_s: retryInSeconds }, 'webhook attempt failed');
    } catch (err) {
      // the lease runs out and the delivery is attempted again: at least once, never lost
      this.logger.error({ err, delivery_id: d.id, event_id: d.event_id }, 'could not record a webhook attempt');
    }
  }

  /**
   * One POST; resolves with the HTTP status, rejects on a transport failure or a blocked host.
   * Redirects are never followed (undici's `request` does not), so a 3xx cannot lead the
   * gateway to another host.
   */
  private async post(d: ClaimedDelivery): Promise<number> {
    const policy = this.policyFor(d.test_mode);
    // IP literals never go through `lookup`, so they are checked here; names are checked on the
    // addresses they resolve to, in the agent's lookup, for every new connection
    const reason = blockedHostReason(new URL(d.url).hostname, policy);
    if (reason) throw new BlockedAddressError(reason);
    const secret = this.box.open(d.secret_sealed, d.endpoint_id);
    const t = Math.floor(Date.now() / 1000);
    const body = deliveredBody(d.dialect, d.body);
    const res = await request(d.url, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'Settle-Webhooks/1.0',
        'settle-signature': signPayload(secret, body, t),
        'settle-event-id': d.event_id,
        'settle-delivery-attempt': String(d.attempts),
        // the same delivery, signed per Standard Webhooks; the id is the event's, as on every retry
        'webhook-id': d.event_id,
        'webhook-timestamp': String(t),
        'webhook-signature': standardWebhookSignature(secret, d.event_id, t, d.body),
      },
      dispatcher: this.agents[policy],
      signal: AbortSignal.timeout(this.config.webhookTimeoutMs),
      headersTimeout: this.config.webhookTimeoutMs,
      bodyTimeout: this.config.webhookTimeoutMs,
    });
    // read (up to a limit) and discarded so the connection can be reused; never stored or shown
    await res.body.dump({ limit: MAX_DRAIN_BYTES }).catch(() => {});
    return res.statusCode;
  }

  /** Waits for the POSTs in flight to be recorded (each ends by its timeout), then releases the
   *  outbound connection pools (process shutdown, tests). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.inFlight]);
      await Promise.all(Object.values(this.agents).map((a) => a.close()));
    })();
    return this.closing;
  }

  /**
   * Returns the URL to store (normalized) or throws 400 invalid_param `url`. A host name is
   * resolved and every address checked; in test mode a name that does not resolve (yet) is
   * accepted, since every connection is checked again when sending.
   */
  private async validateUrl(raw: string, testMode: boolean): Promise<string> {
    const check = parseWebhookUrl(raw, { requireHttps: !testMode });
    if (!check.ok) throw invalidParam('url', check.message);
    const policy = this.policyFor(testMode);
    const hostname = check.url.hostname;
    const refuse = (reason: string) =>
      invalidParam('url', policy === 'public'
        ? `Live-mode webhook endpoints must be publicly reachable: ${reason}.`
        : `Webhook endpoints must not point at link-local, cloud metadata, unspecified or reserved addresses: ${reason}.`);
    let reason = blockedHostReason(hostname, policy);
    if (!reason && ipLiteral(hostname) === undefined && !isLocalhostName(hostname)) {
      let addresses: string[] | undefined;
      try {
        addresses = (await this.resolveAll(hostname, undefined)).map((a) => a.address);
      } catch {
        if (!testMode) throw invalidParam('url', `The host ${hostname} could not be resolved.`);
      }
      if (addresses) reason = blockedAddressesReason(hostname, addresses, policy);
    }
    if (reason) throw refuse(reason);
    return check.url.href;
  }
}

function endpointNotFound(id: string): AppError {
  return new AppError('webhook_endpoint_not_found', `No such webhook endpoint: ${id}.`, { param: 'id' });
}

/** `["*"]`, or a non-empty list of known event types (duplicates dropped, order kept). */
function validateEnabledEvents(types: readonly string[]): string[] {
  if (!Array.isArray(types) || types.length === 0) {
    throw invalidParam('enabled_events', 'enabled_events must be ["*"] or a non-empty list of event types.');
  }
  if (types.includes('*')) {
    if (types.some((t) => t !== '*')) {
      throw invalidParam('enabled_events', '"*" already subscribes to every event type and cannot be combined with others.');
    }
    return ['*'];
  }
  types.forEach((t, i) => {
    if (!EVENT_TYPE_SET.has(t)) {
      throw invalidParam(`enabled_events[${i}]`, `Unknown event type "${t}"; one of: ${EVENT_TYPES.join(', ')}, or "*".`);
    }
  });
  return [...new Set(types)];
}

/** A dialect endpoint's events, in the dialect's names (or `*` for all of them), as the native types to store. */
function validateDialectEvents(dialect: Exclude<WebhookDialect, 'settle'>, names: readonly string[]): string[] {
  const names_ = dialectEventNames(dialect);
  if (!Array.isArray(names) || names.length === 0) {
    throw invalidParam('enabled_events', `enabled_events must be ["*"] or a non-empty list of: ${names_.join(', ')}.`);
  }
  if (names.includes('*') && names.some((t) => t !== '*')) {
    throw invalidParam('enabled_events', '"*" already subscribes to every event type and cannot be combined with others.');
  }
  const found = nativeEventTypes(dialect, names);
  if ('unknown' in found) {
    throw invalidParam(`enabled_events[${found.unknown}]`,
      `Unknown event type "${names[found.unknown]}" for the ${dialect} dialect; one of: ${names_.join(', ')}, or "*".`);
  }
  return found.types;
}

interface Outcome {
  category: AttemptCategory;
  /** A fixed text per category (never a socket error's text or a response body), or null. */
  error: string | null;
}

/** An error and its causes (undici and Node wrap them). */
function errorChain(err: unknown): Array<{ code?: unknown; name?: unknown; cause?: unknown }> {
  const chain = [];
  for (let e = err as { code?: unknown; name?: unknown; cause?: unknown } | undefined, depth = 0; e && typeof e === 'object' && depth < 5; e = e.cause as typeof e, depth++) chain.push(e);
  return chain;
}

const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EAI_NODATA', 'ENODATA', 'ESERVFAIL', 'ENONAME', 'ENOTIMP', 'EREFUSED', 'ECONNREFUSED_DNS']);
const TLS_CODES = new Set(['EPROTO', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'HOSTNAME_MISMATCH']);
const TIMEOUT_CODES = new Set(['TimeoutError', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);

/**
 * The category of a failed attempt and the fixed text the merchant sees. Deliberately coarse:
 * the merchant learns whether the receiver answered, timed out, refused, could not be resolved
 * or failed TLS, never the socket's error text, a banner or a body of whatever answered, so an
 * endpoint URL cannot be used to read the gateway's network.
 */
export function categorize(err: unknown, timeoutMs: number): Outcome {
  const chain = errorChain(err);
  const blocked = chain.find((e) => e instanceof BlockedAddressError);
  // our own text: it names the host of the merchant's URL and the class of its address only
  if (blocked) return { category: 'blocked_address', error: (blocked as BlockedAddressError).message };
  const codes = chain.flatMap((e) => [e.code, e.name].filter((c): c is string => typeof c === 'string'));
  if (codes.includes('ESETTLE_BLOCKED_ADDRESS')) return { category: 'blocked_address', error: 'blocked: the address is not allowed' };
  if (codes.some((c) => TIMEOUT_CODES.has(c))) return { category: 'timeout', error: `timeout: no response within ${timeoutMs} ms` };
  if (codes.some((c) => DNS_CODES.has(c))) return { category: 'dns', error: 'dns: the host name could not be resolved' };
  if (codes.some((c) => TLS_CODES.has(c) || c.startsWith('ERR_TLS_') || c.startsWith('ERR_SSL_') || c.startsWith('CERT_'))) {
    return { category: 'tls', error: 'tls: the TLS handshake failed' };
  }
  if (codes.includes('ECONNREFUSED')) return { category: 'connection_refused', error: 'connection refused' };
  return { category: 'connection_failed', error: 'connection failed before a response' };
}
