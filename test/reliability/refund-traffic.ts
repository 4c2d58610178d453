/**
 * Refund load over HTTP that keeps a record of every attempt, and retries what a careful client
 * must retry — no response, a 5xx, or 409 idempotency_key_in_use — with the SAME key and body
 * until it gets a final answer. The gateway under it may be killed and restarted at another
 * address (`baseUrl` is read on every attempt).
 */
import { client, type HttpRes } from '../helpers/processes.js';
import { sleep } from './fixtures.js';

export interface RefundRequest {
  key: string;
  paymentId: string;
  path: string;
  /** undefined: no body at all (a full refund). */
  body: Record<string, unknown> | undefined;
  /** The amount the body asks for, when it names one. */
  amount?: number;
  attempts: Attempt[];
  /** The first final answer (2xx or a 4xx other than idempotency_key_in_use). */
  final?: Answer;
}

export interface Answer {
  status: number;
  raw: string;
  body: any;
  replayed: boolean;
}

export type Attempt =
  | { kind: 'answer'; status: number; code?: string; replayed: boolean }
  | { kind: 'no_response'; error: string; at: number }
  | { kind: 'hung' };

export interface TrafficFigures {
  /** HTTP requests sent (every attempt, retries included). */
  attempts: number;
  /** Attempts that repeated a key after a non-final outcome. */
  retries: number;
  noResponse: number;
  serverErrors: number;
  keyInUse: number;
  hung: number;
}

export interface TrafficOptions {
  baseUrl: string;
  apiKey: string;
  /** An attempt without an answer after this long counts as hung (a violation). Default 20000 ms. */
  requestTimeoutMs?: number;
  /** Where each attempt goes, when several gateways share the load (read per attempt); default
   *  `baseUrl`. */
  pickBaseUrl?: () => string;
}

const ERROR_TYPES = new Set([
  'invalid_request_error', 'authentication_error', 'permission_error', 'idempotency_error', 'rate_limit_error', 'connector_error', 'api_error',
]);

/** What is wrong with a response's shape (contract sections 1–2), or undefined. */
export function malformation(res: HttpRes): string | undefined {
  const requestId = res.headers.get('request-id');
  if (!requestId || !/^req_/.test(requestId)) return `no Request-Id header`;
  if (typeof res.body !== 'object' || res.body === null) return `body is not JSON: ${res.raw.slice(0, 200)}`;
  if (res.status < 400) return undefined;
  const e = res.body.error;
  if (typeof e !== 'object' || e === null) return `no error envelope`;
  if (!ERROR_TYPES.has(e.type) || typeof e.code !== 'string' || typeof e.message !== 'string') return `bad error envelope`;
  // a replay repeats the first answer byte for byte, its request_id included
  const replayed = res.headers.get('idempotent-replayed') === 'true';
  if (!replayed && e.request_id !== requestId) return `error.request_id ${e.request_id} differs from Request-Id ${requestId}`;
  if (typeof e.request_id !== 'string' || !/^req_/.test(e.request_id)) return `error.request_id missing`;
  if (/\bat \S+:\d+:\d+|\b(SELECT|INSERT|UPDATE|DELETE)\b .*\b(FROM|INTO|SET)\b|node_modules/.test(res.raw)) return `leaks internals`;
  if (res.status === 503) {
    if (e.code !== 'service_unavailable' || !res.headers.get('retry-after')) return `a 503 must be service_unavailable with Retry-After`;
  } else if (res.status >= 500 && (res.status !== 500 || e.code !== 'internal_error')) {
    return `a ${res.status} must be 500 internal_error or 503 service_unavailable`;
  }
  return undefined;
}

/** Whether an answer ends a request's retries. */
export function isFinal(res: HttpRes): boolean {
  if (res.status >= 500) return false;
  return !(res.status === 409 && res.body?.error?.code === 'idempotency_key_in_use');
}

interface Retry {
  req: RefundRequest;
  notBefore: number;
}

export class RefundTraffic {
  /** Where attempts go; updated when the gateway is restarted elsewhere. */
  baseUrl: string;
  readonly requests: RefundRequest[] = [];
  readonly figures: TrafficFigures = { attempts: 0, retries: 0, noResponse: 0, serverErrors: 0, keyInUse: 0, hung: 0 };
  /** Malformed or hung responses, as they happened. */
  readonly violations: string[] = [];

  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly pickBaseUrl?: () => string;
  private readonly fresh: RefundRequest[] = [];
  private readonly retries: Retry[] = [];
  private stopped = false;
  private done = 0;
  private waiters: { count: number; resolve: () => void }[] = [];

  constructor(opts: TrafficOptions) {
    this.baseUrl = opts.baseUrl;
    this.apiKey = opts.apiKey;
    this.timeoutMs = opts.requestTimeoutMs ?? 20_000;
    this.pickBaseUrl = opts.pickBaseUrl;
  }

  add(reqs: RefundRequest[]): void {
    this.requests.push(...reqs);
    this.fresh.push(...reqs);
  }

  /** Requests without a final answer (sent or not). */
  unresolved(): RefundRequest[] {
    return this.requests.filter((r) => !r.final);
  }

  /** Attempts completed (answered or not) since the traffic was created. */
  get completed(): number {
    return this.done;
  }

  /** Resolves once `n` more attempts have completed. */
  afterAttempts(n: number): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ count: this.done + n, resolve }));
  }

  /** Workers finish the attempt they are in, then stop taking work. */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Runs `concurrency` workers over fresh requests and due retries until everything has a final
   * answer, `stop()` is called, or the deadline passes.
   */
  async run(opts: { concurrency: number; deadline: number }): Promise<void> {
    this.stopped = false;
    await Promise.all(Array.from({ length: opts.concurrency }, () => this.worker(opts.deadline)));
  }

  private async worker(deadline: number): Promise<void> {
    while (!this.stopped && Date.now() < deadline) {
      const next = this.take();
      if (next === 'wait') {
        await sleep(10);
        continue;
      }
      if (!next) return;
      await this.attempt(next);
    }
  }

  private take(): RefundRequest | 'wait' | undefined {
    const now = Date.now();
    const due = this.retries.findIndex((r) => r.notBefore <= now);
    if (due >= 0) return this.retries.splice(due, 1)[0].req;
    const fresh = this.fresh.shift();
    if (fresh) return fresh;
    return this.retries.length > 0 ? 'wait' : undefined;
  }

  /** One attempt of a request; a non-final outcome queues it for a retry. */
  private async attempt(req: RefundRequest): Promise<void> {
    if (req.attempts.length > 0) this.figures.retries++;
    const res = await this.send(req);
    this.done++;
    for (const w of this.waiters.filter((w) => this.done >= w.count)) w.resolve();
    this.waiters = this.waiters.filter((w) => this.done < w.count);

    let delay: number;
    if (res === 'hung') {
      req.attempts.push({ kind: 'hung' });
      delay = 100;
    } else if (typeof res === 'string') {
      req.attempts.push({ kind: 'no_response', error: res, at: Date.now() });
      delay = 100;
    } else {
      const replayed = res.headers.get('idempotent-replayed') === 'true';
      req.attempts.push({ kind: 'answer', status: res.status, code: res.body?.error?.code, replayed });
      if (isFinal(res)) {
        req.final = { status: res.status, raw: res.raw, body: res.body, replayed };
        return;
      }
      // the lease of a dead owner runs out by itself; a 5xx released the key at once
      delay = res.status === 409 ? 200 : Math.min(500, 50 * req.attempts.length);
    }
    this.retries.push({ req, notBefore: Date.now() + delay });
  }

  /**
   * Sends a request once: the response, an error string when there was none (connection refused
   * or reset), or 'hung'. Malformed answers and hangs are recorded as violations.
   */
  async send(req: RefundRequest): Promise<HttpRes | string | 'hung'> {
    this.figures.attempts++;
    const call = client(this.pickBaseUrl?.() ?? this.baseUrl, this.apiKey)('POST', req.path, req.body, { 'Idempotency-Key': req.key });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), this.timeoutMs)));
    try {
      const res = await Promise.race([call, timeout]);
      if (res === 'hung') {
        this.figures.hung++;
        this.violations.push(`${req.key}: no answer within ${this.timeoutMs} ms (hung request)`);
        call.catch(() => {});
        return 'hung';
      }
      if (res.status >= 500) this.figures.serverErrors++;
      if (res.status === 409 && res.body?.error?.code === 'idempotency_key_in_use') this.figures.keyInUse++;
      const bad = malformation(res);
      if (bad) this.violations.push(`${req.key}: malformed ${res.status} answer: ${bad}: ${res.raw.slice(0, 300)}`);
      return res;
    } catch (err) {
      this.figures.noResponse++;
      const cause = (err as { cause?: { code?: string } }).cause;
      return cause?.code ?? (err as Error).message;
    } finally {
      clearTimeout(timer);
    }
  }
}
