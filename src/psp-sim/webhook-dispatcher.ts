/**
 * Webhook delivery for the psp-sim: signs each PSP event with the account's secret and POSTs it
 * to the account's registered URL, with the webhook faults (delay, duplicates, reordering) applied.
 * Kept simple on purpose — it is a test tool — but it is real HTTP with retries, so the gateway's
 * inbound endpoint is exercised exactly as a PSP would exercise it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import { signSandboxWebhook, SANDBOX_SIGNATURE_HEADER } from '../connectors/sandbox/sandbox-signature.js';
import type { SandboxWebhookEvent } from '../connectors/sandbox/sandbox-webhook.js';
import type { SimWebhookFaults } from './faults.js';

export interface SimWebhookTarget {
  url: string;
  secret: string;
}

export type SimEventStatus = 'scheduled' | 'held' | 'delivered' | 'failed' | 'no_target' | 'disabled';

/**
 * An event a wire sends that the model does not emit (e.g. Adyen's AUTHORISATION or CAPTURE): the
 * same outline as the model's, so `GET /_sim/events` lists and filters both alike.
 */
export interface SimWireEvent {
  id: string;
  /** The wire's own name for it, e.g. `AUTHORISATION`. */
  type: string;
  /** Unix seconds. */
  created: number;
  /** `payment_ref` is the model's payment ref. */
  data: { payment_ref: string; [key: string]: unknown };
}

export type SimEvent = SandboxWebhookEvent | SimWireEvent;

/** An event as `GET /_sim/events` shows it. */
export interface SimEventRecord {
  event: SimEvent;
  account_id: string;
  status: SimEventStatus;
  /** HTTP attempts made, copies and retries included. */
  attempts: number;
  /** Attempts answered with a 2xx (2 for a delivered duplicate). */
  deliveries: number;
  last_error: string | null;
}

/** How one wire puts the model's events on the network: the body, and the signature headers. */
export interface SimWebhookEncoder {
  /** The body sent for one model event, built when the event happens (a snapshot); null when the
   *  wire has nothing to say about it (the event is then neither sent nor listed). */
  body(event: SandboxWebhookEvent, accountId: string): string | null;
  /** The headers that sign one delivery attempt (fresh timestamp per attempt). */
  headers(secret: string, rawBody: string): Record<string, string>;
  /** Signs the body itself, when the signature lives inside it (Adyen's `hmacSignature`); called
   *  once per delivery attempt with the target's secret. Default: the body as built. */
  signBody?(secret: string, rawBody: string): string;
  /** Whether an answer acknowledges the delivery. Default: any 2xx. */
  accepts?(status: number, responseBody: string): boolean;
}

/**
 * When a copy of an event is tried again after a failed attempt (an error, a timeout, or an answer
 * the encoder does not accept). Once the schedule is used up the copy is given up for good: its
 * event is listed `failed`.
 */
export interface SimRetrySchedule {
  /** The wait before each retry, in order (0: at once). */
  waitsMs: readonly number[];
  /** Once `waitsMs` is used up: one more retry every this many ms… */
  thenEveryMs?: number;
  /** …as long as it starts within this long of the first attempt. */
  giveUpAfterMs?: number;
}

/** `maxAttempts` attempts in all, the first retry after `backoffMs`, doubling (the sandbox and
 *  Stripe wires: 4 attempts, 100 ms, so a test's failing target gives up in under a second). */
export function doublingRetrySchedule(maxAttempts = 4, backoffMs = 100): SimRetrySchedule {
  return { waitsMs: Array.from({ length: Math.max(0, maxAttempts - 1) }, (_, i) => backoffMs * 2 ** i) };
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/**
 * Adyen's retry schedule for a notification that was not acknowledged: three retries at once,
 * then after 2, 5, 10, 15 and 30 minutes, 1, 2, 4 and 8 hours, then every 8 hours until 30 days
 * have passed (docs/psp-sim.md). `timeScale` multiplies every wait and the 30 days (0.0002: two
 * minutes are 24 ms, eight hours 5.76 s, thirty days 8.6 minutes), so a test can live through the
 * schedule; 1 is Adyen's own clock.
 */
export function adyenRetrySchedule(timeScale = 1): SimRetrySchedule {
  const waits = [0, 0, 0, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR];
  return { waitsMs: waits.map((w) => w * timeScale), thenEveryMs: 8 * HOUR * timeScale, giveUpAfterMs: 30 * 24 * HOUR * timeScale };
}

/** The wait before retry number `retry` (1 = the first retry) of a copy first tried `elapsedMs`
 *  ago, or undefined when the schedule gives up. */
export function nextRetryWait(schedule: SimRetrySchedule, retry: number, elapsedMs: number): number | undefined {
  if (retry <= schedule.waitsMs.length) return schedule.waitsMs[retry - 1];
  const every = schedule.thenEveryMs;
  if (every === undefined || elapsedMs + every > (schedule.giveUpAfterMs ?? 0)) return undefined;
  return every;
}

/** The sandbox wire: the model's event as JSON, `Sandbox-Signature`. */
export const sandboxWebhookEncoder: SimWebhookEncoder = {
  body: (event) => JSON.stringify(event),
  headers: (secret, rawBody) => ({ [SANDBOX_SIGNATURE_HEADER]: signSandboxWebhook(secret, rawBody) }),
};

export interface SimWebhookDispatcherOptions {
  /** The wire's body and signature. Default `sandboxWebhookEncoder`. */
  encoder?: SimWebhookEncoder;
  /** The live webhook faults (read at each event). */
  faults: () => SimWebhookFaults;
  logger: FastifyBaseLogger;
  /** Default the global `fetch`. */
  fetch?: typeof fetch;
  /** When a failed attempt is tried again, and when it is given up. Default
   *  `doublingRetrySchedule(maxAttempts, backoffMs)`. */
  retrySchedule?: SimRetrySchedule;
  /** Without `retrySchedule`: attempts per copy of an event before giving up. Default 4. */
  maxAttempts?: number;
  /** Without `retrySchedule`: wait before the first retry, doubled for each further one. Default 100 ms. */
  backoffMs?: number;
  /** Timeout of one attempt. Default 5000 ms. */
  attemptTimeoutMs?: number;
  /** With `reorder`, a batch is sent (reversed) once it has this many events. Default 3. */
  reorderBatchSize?: number;
  /** With `reorder`, a smaller batch is sent (reversed) after this long. Default 250 ms. */
  reorderHoldMs?: number;
  /** Events kept for `GET /_sim/events`; the oldest are dropped beyond. Default 10000. */
  maxEvents?: number;
}

interface Entry {
  record: SimEventRecord;
  rawBody: string;
  copies: number;
  delayMs: number;
}

export class SimWebhookDispatcher {
  private readonly targets = new Map<string, SimWebhookTarget>();
  private readonly entries: Entry[] = [];
  private held: Entry[] = [];
  private holdTimer: NodeJS.Timeout | undefined;
  private readonly stop = new AbortController();
  private readonly doFetch: typeof fetch;
  private readonly retrySchedule: SimRetrySchedule;
  private readonly attemptTimeoutMs: number;
  private readonly reorderBatchSize: number;
  private readonly reorderHoldMs: number;
  private readonly maxEvents: number;

  constructor(private readonly opts: SimWebhookDispatcherOptions) {
    this.doFetch = opts.fetch ?? fetch;
    this.retrySchedule = opts.retrySchedule ?? doublingRetrySchedule(opts.maxAttempts ?? 4, opts.backoffMs ?? 100);
    this.attemptTimeoutMs = opts.attemptTimeoutMs ?? 5000;
    this.reorderBatchSize = opts.reorderBatchSize ?? 3;
    this.reorderHoldMs = opts.reorderHoldMs ?? 250;
    this.maxEvents = opts.maxEvents ?? 10_000;
  }

  setTarget(accountId: string, target: SimWebhookTarget): void {
    this.targets.set(accountId, target);
  }

  deleteTarget(accountId: string): boolean {
    return this.targets.delete(accountId);
  }

  dispatch(accountId: string, event: SandboxWebhookEvent): void {
    const rawBody = (this.opts.encoder ?? sandboxWebhookEncoder).body(event, accountId);
    if (rawBody !== null) this.dispatchBody(accountId, event, rawBody);
  }

  /** Sends a body a wire built itself (an event the model does not emit), with the same chaos. */
  dispatchBody(accountId: string, event: SimEvent, rawBody: string): void {
    const faults = this.opts.faults();
    const entry: Entry = {
      record: { event, account_id: accountId, status: 'scheduled', attempts: 0, deliveries: 0, last_error: null },
      rawBody,
      copies: faults.duplicate ? 2 : 1,
      delayMs: faults.delay_ms,
    };
    this.entries.push(entry);
    if (this.entries.length > this.maxEvents) this.entries.splice(0, this.entries.length - this.maxEvents);

    if (!faults.enabled) entry.record.status = 'disabled';
    else if (!this.targets.has(accountId)) entry.record.status = 'no_target';
    else if (faults.reorder) this.hold(entry);
    else void this.sendLater([entry]);
  }

  /** Sends every held (reorder) event now, reversed. Returns how many were released. */
  flush(): number {
    const batch = this.held;
    this.held = [];
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    if (batch.length > 0) void this.sendLater(batch.reverse());
    return batch.length;
  }

  list(filter: { accountId?: string; paymentRef?: string; type?: string } = {}): SimEventRecord[] {
    return this.entries
      .map((e) => e.record)
      .filter(
        (r) =>
          (filter.accountId === undefined || r.account_id === filter.accountId) &&
          (filter.paymentRef === undefined || r.event.data.payment_ref === filter.paymentRef) &&
          (filter.type === undefined || r.event.type === filter.type),
      );
  }

  /** Stops every timer and in-flight delivery (server close). */
  close(): void {
    this.stop.abort();
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
  }

  private hold(entry: Entry): void {
    entry.record.status = 'held';
    this.held.push(entry);
    if (this.held.length >= this.reorderBatchSize) this.flush();
    else this.holdTimer ??= setTimeout(() => this.flush(), this.reorderHoldMs);
  }

  /** Sends a batch one event at a time (so the order the receiver sees is the batch order). */
  private async sendLater(batch: Entry[]): Promise<void> {
    for (const entry of batch) entry.record.status = 'scheduled';
    try {
      const delayMs = Math.max(...batch.map((e) => e.delayMs));
      if (delayMs > 0) await sleep(delayMs, undefined, { signal: this.stop.signal });
      for (const entry of batch) {
        let delivered = true;
        for (let copy = 0; copy < entry.copies; copy += 1) delivered = (await this.deliverCopy(entry)) && delivered;
        entry.record.status = delivered ? 'delivered' : 'failed';
      }
    } catch (err) {
      if (!this.stop.signal.aborted) this.opts.logger.error({ err }, 'psp-sim webhook delivery crashed');
    }
  }

  private async deliverCopy(entry: Entry): Promise<boolean> {
    const { record } = entry;
    const firstAttemptAt = Date.now();
    for (let attempt = 1; ; attempt += 1) {
      // Looked up on each attempt so re-registering a target redirects retries too.
      const target = this.targets.get(record.account_id);
      if (!target) {
        record.last_error = 'no webhook target registered';
        return false;
      }
      record.attempts += 1;
      const encoder = this.opts.encoder ?? sandboxWebhookEncoder;
      try {
        const body = encoder.signBody ? encoder.signBody(target.secret, entry.rawBody) : entry.rawBody;
        const res = await this.doFetch(target.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'settle-psp-sim',
            ...encoder.headers(target.secret, body),
          },
          body,
          signal: AbortSignal.any([this.stop.signal, AbortSignal.timeout(this.attemptTimeoutMs)]),
        });
        const answer = await res.text(); // read whole, so the connection can be reused
        if (encoder.accepts ? encoder.accepts(res.status, answer) : res.ok) {
          record.deliveries += 1;
          return true;
        }
        record.last_error = res.ok ? `HTTP ${res.status} without the expected acknowledgement` : `HTTP ${res.status}`;
      } catch (err) {
        if (this.stop.signal.aborted) throw err;
        record.last_error = err instanceof Error ? err.message : String(err);
      }
      this.opts.logger.warn({ event_id: record.event.id, attempt, error: record.last_error }, 'psp-sim webhook attempt failed');
      const wait = nextRetryWait(this.retrySchedule, attempt, Date.now() - firstAttemptAt);
      if (wait === undefined) {
        this.opts.logger.warn({ event_id: record.event.id, attempts: attempt, error: record.last_error }, 'psp-sim gave up a webhook');
        return false;
      }
      if (wait > 0) await sleep(wait, undefined, { signal: this.stop.signal });
    }
  }
}
