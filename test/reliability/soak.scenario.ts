/**
 * Load soak: bounded mixed traffic against a real `settle serve` process on a fresh PostgreSQL
 * database, its PSP a psp-sim process (so the PSP's growing state is not counted in the gateway's
 * memory). `concurrency` clients loop until the time is up, each picking an operation: automatic
 * and manual payments (some declined), captures (full and partial), cancels, partial and full
 * refunds through all three create routes (some rejected by the PSP, some left pending), retries
 * of finished requests with the same key (which must replay byte for byte), the same request sent
 * twice at once, and reads.
 *
 * Afterwards: no 5xx, every answer in the contract's shape and one the operation allows, the
 * gateway's resident memory flat after warm-up (the last third's average at most 1.5× the
 * first third's), no refund applied twice at the PSP, `settle ledger verify` clean, the
 * gateway's captured and refunded totals equal the PSP's, and `settle reconcile` finding no
 * difference.
 *
 * Used by test/reliability-ci/soak.test.ts (reduced) and test/reliability/soak.suite.ts (full).
 */
import { readFileSync } from 'node:fs';
import { createTempDatabase, type TempDatabase } from '../helpers/databases.js';
import { runSettle, spawnGateway, spawnPspSim, type HttpRes, type Proc } from '../helpers/processes.js';
import { printFigures, Rng, seedFromEnv, setupMerchant, simStats, tail, type ScenarioReport } from './fixtures.js';
import { reconcileClean, totalsAgreeWithPsp, waitForNoPending } from './invariants.js';
import { malformation } from './refund-traffic.js';

export interface SoakOptions {
  /** How long traffic runs, in ms (setup and checks come on top). */
  durationMs: number;
  /** Concurrent clients. Default 16. */
  concurrency?: number;
  /** The first part of the run whose memory samples are discarded. Default 20% of `durationMs`. */
  warmupMs?: number;
  /** How often the gateway's VmRSS is read. Default 1000 ms. */
  sampleEveryMs?: number;
  /** The last third's average RSS may be at most this many times the first third's. Default 1.5. */
  maxRssGrowth?: number;
  seed?: number;
}

/** The operations of the mix, with their weights. */
const MIX = {
  'payment (automatic)': 22,
  'payment (manual)': 9,
  capture: 9,
  cancel: 3,
  'refund (partial)': 15,
  'refund (full)': 5,
  retry: 10,
  'double send': 3,
  read: 24,
} as const;
type Op = keyof typeof MIX;

interface Payment {
  id: string;
  /** What the last answer said can still be refunded (payments are claimed by one client at a time). */
  refundable: number;
  capturable: number;
  card: string;
}

interface Finished {
  method: string;
  path: string;
  body: string | undefined;
  key: string;
  status: number;
  raw: string;
}

const REQUEST_TIMEOUT_MS = 30_000;
/** Bounds on what the clients remember, so the test process stays flat too. */
const POOL_LIMIT = 2000;
const REPLAY_LIMIT = 500;

export async function runSoak(opts: SoakOptions): Promise<ScenarioReport> {
  const seed = opts.seed ?? seedFromEnv();
  const rng = new Rng(seed);
  const concurrency = opts.concurrency ?? 16;
  const warmupMs = opts.warmupMs ?? Math.round(opts.durationMs * 0.2);
  const sampleEveryMs = opts.sampleEveryMs ?? 1000;
  const maxGrowth = opts.maxRssGrowth ?? 1.5;

  const violations: string[] = [];
  const violation = (what: string) => {
    if (violations.length < 200) violations.push(what);
  };
  const requests = new Map<string, number>();
  const latencies = new Map<string, number[]>();
  const statuses = new Map<number, number>();
  let serverErrors = 0;
  let replaysChecked = 0;
  let n = 0;

  let temp: TempDatabase | undefined;
  let sim: Proc | undefined;
  let gw: (Proc & { dataDir: string }) | undefined;
  let sampler: NodeJS.Timeout | undefined;
  const samples: { at: number; kb: number }[] = [];

  try {
    temp = await createTempDatabase();
    sim = await spawnPspSim();
    gw = await spawnGateway({ databaseUrl: temp.url, env: { LOG_LEVEL: 'warn' } });
    const base = gw.url;
    const pid = gw.proc.pid!;
    const merchant = await setupMerchant(base, sim.url, 'Soak');
    const key = merchant.apiKey;

    const send = async (type: string, method: string, path: string, body?: unknown, idempotencyKey?: string): Promise<HttpRes> => {
      const headers: Record<string, string> = { authorization: `Bearer ${key}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
      const payload = body === undefined ? undefined : JSON.stringify(body);
      requests.set(type, (requests.get(type) ?? 0) + 1);
      let res: Response;
      const t0 = performance.now();
      try {
        res = await fetch(base + path, { method, headers, body: payload, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      } catch (err) {
        violation(`${method} ${path}: no answer (${(err as Error).message})`);
        throw err;
      }
      const raw = await res.text();
      const ms = latencies.get(type) ?? [];
      if (ms.length < 50_000) ms.push(performance.now() - t0);
      latencies.set(type, ms);
      let parsed: unknown;
      try {
        parsed = raw ? JSON.parse(raw) : undefined;
      } catch {
        parsed = raw;
      }
      const out: HttpRes = { status: res.status, body: parsed, raw, headers: res.headers };
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status >= 500) {
        serverErrors++;
        violation(`${method} ${path} → ${res.status} ${raw.slice(0, 300)}`);
      }
      const bad = malformation(out);
      if (bad) violation(`${method} ${path} → ${res.status}: ${bad}`);
      if (idempotencyKey && (res.status < 400 || [402, 403, 404, 409, 422].includes(res.status)) && !(res.status === 409 && out.body?.error?.code === 'idempotency_key_in_use')) {
        remember({ method, path, body: payload, key: idempotencyKey, status: res.status, raw });
      }
      return out;
    };
    const expect = (res: HttpRes, what: string, allowed: Record<number, string[] | null>): boolean => {
      const codes = allowed[res.status];
      const code = res.body?.error?.code as string | undefined;
      if (codes === undefined || (codes !== null && !codes.includes(code ?? ''))) {
        violation(`${what} → unexpected ${res.status} ${res.raw.slice(0, 300)}`);
        return false;
      }
      return true;
    };

    // what the clients share: payments to capture or refund, finished requests to replay
    const authorized: Payment[] = [];
    const captured: Payment[] = [];
    const refunds: string[] = [];
    const finished: Finished[] = [];
    const remember = (f: Finished) => {
      if (finished.length >= REPLAY_LIMIT) finished.splice(rng.int(0, finished.length - 1), 1);
      finished.push(f);
    };
    const keep = (pool: Payment[], p: Payment) => {
      if (pool.length >= POOL_LIMIT) pool.shift();
      pool.push(p);
    };
    const claim = (pool: Payment[]): Payment | undefined => (pool.length ? pool.splice(rng.int(0, pool.length - 1), 1)[0] : undefined);

    const createPayment = async (manual: boolean) => {
      const card = manual ? 'pm_card_visa' : rng.pick(['pm_card_visa', 'pm_card_visa', 'pm_card_mastercard', 'pm_card_visa', 'pm_card_refund_fails', 'pm_card_refund_pending', 'pm_card_declined']);
      const amount = rng.int(100, 100_000);
      const type = manual ? 'payment (manual)' : 'payment (automatic)';
      const r = await send(type, 'POST', '/v1/payments', { amount, currency: 'USD', payment_method: card, ...(manual ? { capture_method: 'manual' } : {}), metadata: { soak: String(n) } }, `soak-${seed}-p${n++}`);
      if (card === 'pm_card_declined') {
        expect(r, `${type} with a declined card`, { 402: ['card_declined'] });
        return;
      }
      if (!expect(r, type, { 201: null })) return;
      if (r.body.status !== (manual ? 'requires_capture' : 'succeeded')) violation(`${type} answered status ${r.body.status}`);
      if (manual) keep(authorized, { id: r.body.id, refundable: 0, capturable: r.body.amount_capturable, card });
      else keep(captured, { id: r.body.id, refundable: r.body.amount_refundable, capturable: 0, card });
    };

    const capture = async () => {
      const p = claim(authorized);
      if (!p) return createPayment(true);
      const partial = rng.next() < 0.5;
      const amount = partial ? rng.int(1, p.capturable) : undefined;
      const r = await send('capture', 'POST', `/v1/payments/${p.id}/capture`, partial ? { amount } : undefined, `soak-${seed}-c${n++}`);
      if (!expect(r, 'capture', { 200: null })) return;
      if (r.body.status !== 'succeeded' || r.body.amount_captured !== (amount ?? p.capturable)) violation(`capture of ${p.id}: ${r.raw.slice(0, 300)}`);
      keep(captured, { ...p, refundable: r.body.amount_refundable, capturable: 0 });
    };

    const cancel = async () => {
      const p = claim(authorized);
      if (!p) return createPayment(true);
      const r = await send('cancel', 'POST', `/v1/payments/${p.id}/cancel`, undefined, `soak-${seed}-x${n++}`);
      if (expect(r, 'cancel', { 200: null }) && r.body.status !== 'canceled') violation(`cancel of ${p.id}: ${r.raw.slice(0, 300)}`);
    };

    const refund = async (full: boolean) => {
      const p = claim(captured);
      if (!p) return createPayment(false);
      const type = full ? 'refund (full)' : 'refund (partial)';
      if (p.refundable <= 0) {
        // everything is refunded or held by pending refunds: the gateway must say so, not refund more
        const r = await send(type, 'POST', `/v1/payments/${p.id}/refunds`, { amount: 1 }, `soak-${seed}-r${n++}`);
        expect(r, `${type} of an exhausted payment`, { 422: ['amount_too_large'], 409: ['already_refunded'] });
        if (rng.next() < 0.5) keep(captured, p); // pending refunds may still fail and free their amount
        return;
      }
      const amount = full ? undefined : rng.int(1, Math.max(1, Math.floor(p.refundable / 3)));
      const route = rng.next();
      const extra = { reason: rng.pick(['customer_request', 'duplicate', 'other']), metadata: { n: String(n) } };
      const [path, body] =
        route < 0.6 ? [`/v1/payments/${p.id}/refunds`, full ? undefined : { amount, ...extra }]
          : route < 0.8 ? ['/v1/refunds', { payment_id: p.id, ...(full ? {} : { amount, ...extra }) }]
            : ['/v1/payments/refund', { payment_intent_id: p.id, ...(full ? {} : { amount, ...extra }) }];
      const r = await send(type, 'POST', path, body, `soak-${seed}-r${n++}`);
      if (!expect(r, type, { 201: null })) {
        keep(captured, p);
        return;
      }
      const expected = amount ?? p.refundable;
      if (r.body.amount !== expected) violation(`${type} of ${p.id} for ${expected} recorded ${r.body.amount}`);
      const wantStatus = p.card === 'pm_card_refund_fails' ? 'failed' : p.card === 'pm_card_refund_pending' ? 'pending' : 'succeeded';
      if (r.body.status !== wantStatus) violation(`${type} of ${p.id} (${p.card}) answered ${r.body.status}`);
      if (refunds.length >= POOL_LIMIT) refunds.shift();
      refunds.push(r.body.id);
      const left = r.body.payment.amount_refundable as number;
      if (left > 0 || p.card === 'pm_card_refund_pending') keep(captured, { ...p, refundable: left });
    };

    const retry = async () => {
      const f = finished.length ? finished[rng.int(0, finished.length - 1)] : undefined;
      if (!f) return read();
      const r = await send('retry', f.method, f.path, f.body === undefined ? undefined : JSON.parse(f.body), f.key);
      replaysChecked++;
      if (r.status !== f.status || r.raw !== f.raw || r.headers.get('idempotent-replayed') !== 'true') {
        violation(`retry of ${f.method} ${f.path} (key ${f.key}) did not replay: first ${f.status} ${f.raw.slice(0, 150)}, now ${r.status} ${r.raw.slice(0, 150)} replayed=${r.headers.get('idempotent-replayed')}`);
      }
    };

    // the same new request twice at once: one runs, the other waits its turn (409 in use) or replays it
    const doubleSend = async () => {
      const k = `soak-${seed}-d${n++}`;
      const body = { amount: rng.int(100, 10_000), currency: 'USD', payment_method: 'pm_card_visa' };
      const [x, y] = await Promise.all([send('double send', 'POST', '/v1/payments', body, k), send('double send', 'POST', '/v1/payments', body, k)]);
      const made = [x, y].filter((r) => r.status === 201);
      const inUse = [x, y].filter((r) => r.status === 409 && r.body?.error?.code === 'idempotency_key_in_use');
      if (made.length + inUse.length !== 2 || made.length === 0) violation(`double send: ${x.status} ${x.raw.slice(0, 150)} / ${y.status} ${y.raw.slice(0, 150)}`);
      else if (made.length === 2 && (x.raw !== y.raw || [x, y].filter((r) => r.headers.get('idempotent-replayed') === 'true').length !== 1)) {
        violation(`double send made two different answers: ${x.raw.slice(0, 150)} / ${y.raw.slice(0, 150)}`);
      }
      if (made[0]) keep(captured, { id: made[0].body.id, refundable: made[0].body.amount_refundable, capturable: 0, card: 'pm_card_visa' });
    };

    const read = async () => {
      const p = captured.length ? captured[rng.int(0, captured.length - 1)] : undefined;
      const refundId = refunds.length ? refunds[rng.int(0, refunds.length - 1)] : undefined;
      const paths = [
        '/v1/payments?limit=10', '/v1/ledger/accounts', '/v1/events?limit=5', '/v1/refunds?limit=10',
        ...(p ? [`/v1/payments/${p.id}`, `/v1/payments/${p.id}/refunds`, `/v1/ledger/transactions?payment_id=${p.id}`] : []),
        ...(refundId ? [`/v1/refunds/${refundId}`] : []),
      ];
      const path = rng.pick(paths);
      expect(await send('read', 'GET', path), `GET ${path}`, { 200: null });
    };

    const ops: Record<Op, () => Promise<void>> = {
      'payment (automatic)': () => createPayment(false),
      'payment (manual)': () => createPayment(true),
      capture,
      cancel,
      'refund (partial)': () => refund(false),
      'refund (full)': () => refund(true),
      retry,
      'double send': doubleSend,
      read,
    };
    const weights = Object.entries(MIX) as [Op, number][];
    const total = weights.reduce((s, [, w]) => s + w, 0);
    const pick = (): Op => {
      let x = rng.next() * total;
      for (const [op, w] of weights) if ((x -= w) < 0) return op;
      return 'read';
    };

    // memory: the gateway's resident set, from /proc
    const started = Date.now();
    const sample = () => {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        if (m) samples.push({ at: Date.now() - started, kb: Number(m[1]) });
      } catch {
        // the process is gone: the requests will say so
      }
    };
    sample();
    sampler = setInterval(sample, sampleEveryMs);

    const deadline = started + opts.durationMs;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (Date.now() < deadline && violations.length < 200) {
          try {
            await ops[pick()]();
          } catch {
            // recorded as a violation by send()
          }
        }
      }),
    );
    clearInterval(sampler);
    sampler = undefined;
    sample();
    const trafficMs = Date.now() - started;

    // pending refunds are driven to an end by the gateway's sync worker
    const stillPending = await waitForNoPending(base, key, 30_000);
    if (stillPending.length) violation(`${stillPending.length} refunds still pending 30 s after the traffic: ${stillPending.slice(0, 5).join(', ')}`);
    const stats = await simStats(sim.url);
    if (stats.duplicate_applications !== 0) violation(`the PSP applied ${stats.duplicate_applications} refunds twice`);
    const ready = await fetch(`${base}/readyz`);
    if (ready.status !== 200) violation(`readyz answered ${ready.status} after the soak`);
    const verify = await runSettle(['ledger', 'verify'], { DATABASE_URL: temp.url, PATH: process.env.PATH ?? '' });
    if (verify.code !== 0) violation(`settle ledger verify exited ${verify.code}:\n${tail(verify.output)}`);
    // the gateway agrees with the PSP: its totals are the PSP's, and reconciliation finds nothing
    const totals = await totalsAgreeWithPsp(temp.url, sim.url);
    totals.violations.forEach(violation);
    const reconciled = await reconcileClean({ DATABASE_URL: temp.url });
    reconciled.forEach(violation);

    // flat memory: after warm-up, the last third's average against the first third's
    const warm = samples.filter((s) => s.at >= warmupMs && s.at <= trafficMs);
    const third = Math.floor(warm.length / 3);
    const avg = (xs: { kb: number }[]) => xs.reduce((s, x) => s + x.kb, 0) / xs.length;
    let growth = NaN;
    if (third < 2) violation(`only ${warm.length} memory samples after warm-up`);
    else {
      growth = avg(warm.slice(-third)) / avg(warm.slice(0, third));
      if (growth > maxGrowth) violation(`gateway memory grew ${growth.toFixed(2)}× after warm-up (${(avg(warm.slice(0, third)) / 1024).toFixed(0)} → ${(avg(warm.slice(-third)) / 1024).toFixed(0)} MiB)`);
    }

    const latency = (type: string) => {
      const ms = [...(latencies.get(type) ?? [])].sort((a, b) => a - b);
      const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]?.toFixed(0) ?? '?';
      return `p50 ${at(0.5)} ms, p99 ${at(0.99)} ms`;
    };
    const mb = (kb: number | undefined) => (kb === undefined ? '?' : `${(kb / 1024).toFixed(1)} MiB`);
    const figures: Record<string, number | string> = {
      seed,
      'traffic (s)': (trafficMs / 1000).toFixed(1),
      concurrency,
      requests: [...requests.values()].reduce((s, x) => s + x, 0),
      ...Object.fromEntries([...requests].sort(([a], [b]) => a.localeCompare(b)).map(([type, count]) => [`  ${type}`, `${count}  (${latency(type)})`])),
      'requests/s': ([...requests.values()].reduce((s, x) => s + x, 0) / (trafficMs / 1000)).toFixed(0),
      statuses: [...statuses].sort(([a], [b]) => a - b).map(([s, c]) => `${s}×${c}`).join(' '),
      '5xx': serverErrors,
      'replays checked': replaysChecked,
      'RSS start': mb(samples[0]?.kb),
      'RSS after warm-up': mb(warm[0]?.kb),
      'RSS end': mb(samples.at(-1)?.kb),
      'RSS peak': mb(Math.max(...samples.map((s) => s.kb))),
      'RSS by tenth of the run (MiB)': Array.from({ length: 10 }, (_, i) => {
        const slice = samples.filter((s) => s.at >= (i * trafficMs) / 10 && s.at < ((i + 1) * trafficMs) / 10);
        return slice.length ? (avg(slice) / 1024).toFixed(0) : '-';
      }).join(' '),
      'RSS last third / first third': Number.isNaN(growth) ? '?' : `${growth.toFixed(2)} (limit ${maxGrowth})`,
      'memory samples': samples.length,
      'PSP duplicate refund applications': stats.duplicate_applications,
      'ledger verify': verify.output.trim().split('\n').at(-1) ?? '',
      ...totals.figures,
      'settle reconcile': reconciled.length === 0 ? 'no difference' : 'differences (see violations)',
      violations: violations.length,
    };
    printFigures(`load soak (${(opts.durationMs / 1000).toFixed(0)} s, concurrency ${concurrency})`, figures);
    if (violations.length && gw) violations.push(`gateway output (tail):\n${tail(gw.output(), 20)}`);
    return { figures, violations };
  } finally {
    if (sampler) clearInterval(sampler);
    await Promise.all([gw?.kill(), sim?.kill()]);
    await temp?.drop().catch(() => {});
  }
}
