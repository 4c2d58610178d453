/**
 * Model-based test of refunds: random sequences of payment, capture, cancel, refund and
 * idempotent-retry calls go through the HTTP layer (app.inject) and through the reference model
 * in ./model.ts; after every step the gateway's answer, its stored payments and refunds, the
 * sandbox PSP's refunded totals and the ledger invariants must all agree with the model.
 *
 * Refunds of `pm_card_refund_pending` payments stay pending for the whole run (each run's
 * connector account has a one-day `pending_delay_ms`, and no sync worker or webhook runs here), so
 * the sequences also cover balances held by in-flight refunds.
 *
 * Knobs (environment): FC_SEED and FC_PATH (replay a failure, as printed; random otherwise),
 * FC_RUNS (default 25), FC_MAX_COMMANDS (default 23, after 1–2 opening payments), FC_SHRINK_MS
 * (default 30000: after the first failure, shrinking stops looking for a smaller one after this).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SandboxPsp } from '../../src/psp-sim/psp-model.js';
import { createSandboxConnector } from '../../src/connectors/sandbox/sandbox.connector.js';
import { postgresOrSkip } from '../helpers/databases.js';
import { BACKENDS, createHarness, type CallOptions, type Harness, type Res } from '../helpers/harness.js';
import {
  cancel,
  capture,
  createdPayment,
  expectedCreatePayment,
  isRefundable,
  isStoredStatus,
  MAX_AMOUNT,
  PAYMENT_METHODS,
  refund,
  refundable,
  RefundsModel,
  type CaptureMethod,
  type Expected,
  type KeyedRequest,
  type ModelPayment,
  type PaymentMethod,
} from './model.js';

const NUM_RUNS = Number(process.env.FC_RUNS ?? 25);
/** Random commands per run, after 1–2 opening payments (so few commands are skipped for want of one). */
const MAX_COMMANDS = Number(process.env.FC_MAX_COMMANDS ?? 23);
const SEED = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const PATH = process.env.FC_PATH;
const SHRINK_MS = Number(process.env.FC_SHRINK_MS ?? 30_000);
/** Payments per run at most, so one list call (limit 100) always sees them all. */
const MAX_PAYMENTS = 12;

interface Stats {
  runs: number;
  commands: number;
  refundsCreated: number;
  replays: number;
  /** Refunds refused because pending refunds held the whole remaining balance. */
  heldOut: number;
  /** When the first run failed: shrinking after that is bounded by SHRINK_MS. */
  failedAt?: number;
  answers: Map<string, number>;
}

interface Real {
  h: Harness;
  /** The run's own merchant's test key: every run starts from an empty merchant on the shared database. */
  key: string;
  psp: SandboxPsp;
  stats: Stats;
}

type Cmd = fc.AsyncCommand<RefundsModel, Real>;

// ------------------------------------------------------------------------------------- checks

function tally(real: Real, res: Res): void {
  const label = res.status < 400 ? String(res.status) : `${res.status} ${res.body?.error?.code}`;
  real.stats.answers.set(label, (real.stats.answers.get(label) ?? 0) + 1);
}

/** A first-time request: the answer the model predicts, and never marked as a replay. */
function assertAnswer(res: Res, expected: Expected, what: string): void {
  assert.equal(res.status, expected.status, `${what}: expected ${expected.status} ${expected.code ?? ''}, got ${res.status} ${res.raw}`);
  if (expected.code !== undefined) assert.equal(res.body?.error?.code, expected.code, `${what}: ${res.raw}`);
  assert.equal(res.headers['idempotent-replayed'], undefined, `${what}: a first request was answered as a replay`);
}

/** Everything the gateway stores must equal the model, and every money invariant must hold. */
async function assertMatchesModel(model: RefundsModel, real: Real, after: string): Promise<void> {
  const ctx = `after ${after}`;
  const payments = await real.h.call('GET', '/v1/payments?limit=100', { key: real.key });
  assert.equal(payments.status, 200, payments.raw);
  const byId = new Map<string, any>(payments.body.data.map((p: any) => [p.id, p]));
  assert.deepEqual([...byId.keys()].sort(), model.payments.map((p) => p.id).sort(), `${ctx}: the merchant's payments`);

  const refunds = await real.h.call('GET', '/v1/refunds?limit=100', { key: real.key });
  assert.equal(refunds.status, 200, refunds.raw);
  const refundsById = new Map<string, any>(refunds.body.data.map((r: any) => [r.id, r]));
  const modelRefunds = model.payments.flatMap((p) => p.refunds.map((r) => ({ ...r, paymentId: p.id })));
  assert.deepEqual([...refundsById.keys()].sort(), modelRefunds.map((r) => r.id).sort(), `${ctx}: the merchant's refunds`);
  for (const r of modelRefunds) {
    const got = refundsById.get(r.id);
    assert.deepEqual(
      { payment_id: got.payment_id, amount: got.amount, status: got.status },
      { payment_id: r.paymentId, amount: r.amount, status: r.status },
      `${ctx}: refund ${r.id}`,
    );
  }

  for (const m of model.payments) {
    const got = byId.get(m.id);
    assert.deepEqual(
      {
        status: got.status,
        amount_capturable: got.amount_capturable,
        amount_captured: got.amount_captured,
        amount_refunded: got.amount_refunded,
        amount_refundable: got.amount_refundable,
      },
      {
        status: m.status,
        amount_capturable: m.capturable,
        amount_captured: m.captured,
        amount_refunded: m.refunded,
        amount_refundable: refundable(m),
      },
      `${ctx}: payment ${m.id} (${m.paymentMethod}, ${m.captureMethod})`,
    );
    // from the gateway's own data, whatever the model says: refunds that did not fail never exceed
    // the capture, and amount_refunded is the sum of the succeeded ones
    const own = refunds.body.data.filter((r: any) => r.payment_id === m.id);
    const sum = (status: string) => own.filter((r: any) => r.status === status).reduce((s: number, r: any) => s + r.amount, 0);
    assert.ok(sum('succeeded') + sum('pending') <= got.amount_captured,
      `${ctx}: payment ${m.id} has ${sum('succeeded')} refunded and ${sum('pending')} pending of ${got.amount_captured} captured`);
    assert.equal(sum('succeeded'), got.amount_refunded, `${ctx}: payment ${m.id} amount_refunded vs its succeeded refunds`);
    // every refund also shows in its payment's transactions, with the same amount and status
    assert.deepEqual(
      got.transactions.filter((t: any) => t.type === 'refund').map((t: any) => `${t.refund_id}:${t.amount}:${t.status}`).sort(),
      m.refunds.map((r) => `${r.id}:${r.amount}:${r.status}`).sort(),
      `${ctx}: refund transactions of ${m.id}`,
    );
    // the PSP moved (or holds pending) exactly the money the gateway says it did
    if (got.connector_ref && m.status !== 'failed') {
      const psp = real.psp.totals(got.connector_ref);
      const pspPending = psp.refunds.filter((r) => r.status === 'pending').reduce((s, r) => s + r.amount, 0);
      assert.deepEqual({ refunded: psp.amount_refunded, pending: pspPending }, { refunded: m.refunded, pending: m.pending }, `${ctx}: PSP totals of ${m.id}`);
    }
  }

  const verified = await real.h.rt.services.ledger.verify();
  assert.deepEqual(verified.violations, [], `${ctx}: ledger violations`);
}

// ------------------------------------------------------------------------------------ commands

/** `pick` chooses a payment; with `bias`, one the command can act on when there is one. */
function choose(model: RefundsModel, pick: number, bias: boolean, wanted: (p: ModelPayment) => boolean): ModelPayment {
  const pool = bias ? model.payments.filter(wanted) : [];
  const from = pool.length > 0 ? pool : model.payments;
  return from[pick % from.length];
}

class CreatePayment implements Cmd {
  constructor(
    readonly amount: number,
    readonly currency: string,
    readonly paymentMethod: PaymentMethod,
    readonly captureMethod: CaptureMethod,
  ) {}
  check(m: Readonly<RefundsModel>) {
    return m.payments.length < MAX_PAYMENTS;
  }
  async run(model: RefundsModel, real: Real) {
    real.stats.commands += 1;
    const res = await real.h.call('POST', '/v1/payments', {
      key: real.key,
      body: { amount: this.amount, currency: this.currency, payment_method: this.paymentMethod, capture_method: this.captureMethod },
    });
    tally(real, res);
    assertAnswer(res, expectedCreatePayment(this.paymentMethod), this.toString());
    const id = res.status === 201 ? res.body.id : res.body.error.payment_id;
    assert.match(String(id), /^pay_/, `${this}: the payment id is missing from ${res.raw}`);
    const next = createdPayment(id, { amount: this.amount, currency: this.currency, paymentMethod: this.paymentMethod, captureMethod: this.captureMethod });
    if (res.status === 201) assert.equal(res.body.status, next.status, this.toString());
    model.payments.push(next);
    await assertMatchesModel(model, real, this.toString());
  }
  toString() {
    return `pay(${this.amount} ${this.currency}, ${this.paymentMethod}, ${this.captureMethod})`;
  }
}

/** How much to capture or refund, relative to what remains when the command runs. */
type AmountSpec = { t: 'all' } | { t: 'pct'; pct: number } | { t: 'exact' } | { t: 'over'; by: number } | { t: 'abs'; n: number };

function resolveAmount(spec: AmountSpec, remaining: number): number | undefined {
  switch (spec.t) {
    case 'all':
      return undefined;
    case 'pct':
      return Math.max(1, Math.floor((remaining * spec.pct) / 100));
    case 'exact':
      return Math.max(1, remaining);
    case 'over':
      return remaining + spec.by;
    case 'abs':
      return spec.n;
  }
}

const showSpec = (s: AmountSpec) => (s.t === 'pct' ? `${s.pct}%` : s.t === 'over' ? `+${s.by}` : s.t === 'abs' ? String(s.n) : s.t);

class Capture implements Cmd {
  constructor(readonly pick: number, readonly bias: boolean, readonly spec: AmountSpec) {}
  check(m: Readonly<RefundsModel>) {
    return m.payments.length > 0;
  }
  async run(model: RefundsModel, real: Real) {
    real.stats.commands += 1;
    const p = choose(model, this.pick, this.bias, (q) => q.status === 'requires_capture');
    const amount = resolveAmount(this.spec, p.capturable);
    const predicted = capture(p, amount);
    const res = await real.h.call('POST', `/v1/payments/${p.id}/capture`, { key: real.key, body: amount === undefined ? {} : { amount } });
    tally(real, res);
    const what = `${this} on ${p.id} (${p.status}, amount ${amount ?? 'all'})`;
    assertAnswer(res, predicted.expected, what);
    if (res.status === 200) assert.equal(res.body.amount_captured, predicted.next.captured, what);
    model.replace(predicted.next);
    await assertMatchesModel(model, real, what);
  }
  toString() {
    return `capture(#${this.pick}${this.bias ? '*' : ''}, ${showSpec(this.spec)})`;
  }
}

class Cancel implements Cmd {
  constructor(readonly pick: number, readonly bias: boolean) {}
  check(m: Readonly<RefundsModel>) {
    return m.payments.length > 0;
  }
  async run(model: RefundsModel, real: Real) {
    real.stats.commands += 1;
    const p = choose(model, this.pick, this.bias, (q) => q.status === 'requires_capture');
    const predicted = cancel(p);
    const res = await real.h.call('POST', `/v1/payments/${p.id}/cancel`, { key: real.key });
    tally(real, res);
    const what = `${this} on ${p.id} (${p.status})`;
    assertAnswer(res, predicted.expected, what);
    model.replace(predicted.next);
    await assertMatchesModel(model, real, what);
  }
  toString() {
    return `cancel(#${this.pick}${this.bias ? '*' : ''})`;
  }
}

/** How a full refund is asked for: no body, an empty body, `{}`, `amount: 0`, or a body without an amount. */
type FullVariant = 'none' | 'empty' | 'object' | 'zero' | 'reason';
type Route = 'path' | 'refunds' | 'payments_refund';

/** The request for a refund of `amount` (undefined = a full refund in the given variant). */
function refundRequest(p: ModelPayment, route: Route, full: FullVariant | null, amount: number | undefined, withCurrency: boolean) {
  const fields: Record<string, unknown> = {};
  if (full === 'zero') fields.amount = 0;
  if (full === 'reason') fields.reason = 'customer_request';
  if (full === null) fields.amount = amount;
  if (withCurrency) fields.currency = p.currency.toLowerCase(); // case-insensitive on input
  if (route === 'refunds') return { url: '/v1/refunds', body: { payment_id: p.id, ...fields } };
  if (route === 'payments_refund') return { url: '/v1/payments/refund', body: { payment_intent_id: p.id, ...fields } };
  const url = `/v1/payments/${p.id}/refunds`;
  const bare = Object.keys(fields).length === 0;
  if (bare && full === 'none') return { url };
  if (bare && full === 'empty') return { url, payload: '', headers: { 'content-type': 'application/json' } };
  return { url, body: fields };
}

/** Which payments a refund prefers: refundable ones, spent ones (refunded, or nothing left), or any. */
type RefundTarget = 'refundable' | 'spent' | 'any';

class Refund implements Cmd {
  constructor(
    readonly pick: number,
    readonly target: RefundTarget,
    /** null = a partial refund sized by `spec`. */
    readonly full: FullVariant | null,
    readonly spec: AmountSpec,
    readonly route: Route,
    readonly keyed: boolean,
    readonly withCurrency: boolean,
  ) {}
  check(m: Readonly<RefundsModel>) {
    return m.payments.length > 0;
  }
  async run(model: RefundsModel, real: Real) {
    real.stats.commands += 1;
    const p =
      this.target === 'spent'
        ? choose(model, this.pick, true, (q) => q.status === 'refunded' || (isRefundable(q) && refundable(q) === 0))
        : choose(model, this.pick, this.target === 'refundable', isRefundable);
    const amount = this.full === null ? resolveAmount(this.spec, refundable(p)) : undefined;
    const predicted = refund(p, amount);
    const req = refundRequest(p, this.route, this.full, amount, this.withCurrency);
    const idempotencyKey = this.keyed ? model.freshKey() : undefined;
    const res = await real.h.call('POST', req.url, { key: real.key, idempotencyKey, ...req });
    tally(real, res);
    const what = `${this} on ${p.id} (${p.paymentMethod}, ${p.status}, refundable ${refundable(p)}, amount ${amount ?? 'full'})`;
    assertAnswer(res, predicted.expected, what);
    if (res.status === 422 && p.pending > 0 && refundable(p) === 0) real.stats.heldOut += 1;
    if (predicted.amount !== undefined) {
      real.stats.refundsCreated += 1;
      const next = predicted.apply(res.body.id);
      assert.match(res.body.id, /^re_/, what);
      assert.deepEqual(
        {
          object: res.body.object,
          payment_id: res.body.payment_id,
          amount: res.body.amount,
          status: res.body.status,
          failure_code: res.body.failure_code,
          payment: res.body.payment,
        },
        {
          object: 'refund',
          payment_id: p.id,
          amount: predicted.amount,
          status: predicted.refundStatus,
          failure_code: predicted.refundStatus === 'failed' ? 'refund_rejected' : null,
          payment: { id: p.id, status: next.status, amount_captured: next.captured, amount_refunded: next.refunded, amount_refundable: refundable(next) },
        },
        what,
      );
      model.replace(next);
    }
    // a 400 is not stored: the key stays unused, nothing to replay
    if (idempotencyKey && isStoredStatus(res.status)) model.keyed.push({ key: idempotencyKey, paymentId: p.id, ...req, first: { status: res.status, raw: res.raw } });
    await assertMatchesModel(model, real, what);
  }
  toString() {
    const how = this.full === null ? showSpec(this.spec) : `full:${this.full}`;
    return `refund(#${this.pick} ${this.target}, ${how}, ${this.route}${this.keyed ? ', keyed' : ''}${this.withCurrency ? ', currency' : ''})`;
  }
}

/**
 * The same key again: the very same request, or the same request written differently (keys
 * reordered, whitespace, no body for an empty one, the `X-Idempotency-Key` alias) — both replayed
 * byte for byte; or another body, or another path — both refused.
 */
type RetryVariant = 'same' | 'equivalent' | 'body' | 'path';

/** The same JSON object with its keys in reverse order (nested objects too). */
function reorder(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value as Record<string, unknown>).reverse().map(([k, v]) => [k, reorder(v)]));
}

function retryRequest(first: KeyedRequest, variant: RetryVariant): { url: string } & CallOptions {
  const key = { 'idempotency-key': first.key };
  switch (variant) {
    case 'same':
      return { url: first.url, body: first.body, payload: first.payload, headers: { ...first.headers, ...key } };
    case 'equivalent': {
      const alias = { 'x-idempotency-key': first.key };
      if (first.body) {
        const payload = JSON.stringify(reorder(first.body), null, 2);
        return { url: first.url, payload, headers: { 'content-type': 'application/json', ...alias } };
      }
      // no body and an empty body are the same request
      if (first.payload === undefined) return { url: first.url, payload: '', headers: { 'content-type': 'application/json', ...alias } };
      return { url: first.url, headers: alias };
    }
    case 'body':
      return { url: first.url, body: { ...(first.body ?? {}), description: 'not the first request' }, headers: key };
    case 'path': {
      const { payment_id: _a, payment_intent_id: _b, ...fields } = first.body ?? {};
      const onPath = first.url === `/v1/payments/${first.paymentId}/refunds`;
      return onPath
        ? { url: '/v1/refunds', body: { payment_id: first.paymentId, ...fields }, headers: key }
        : { url: `/v1/payments/${first.paymentId}/refunds`, body: fields, headers: key };
    }
  }
}

class Retry implements Cmd {
  constructor(readonly pick: number, readonly variant: RetryVariant) {}
  check(m: Readonly<RefundsModel>) {
    return m.keyed.length > 0;
  }
  async run(model: RefundsModel, real: Real) {
    real.stats.commands += 1;
    const first: KeyedRequest = model.keyed[this.pick % model.keyed.length];
    const { url, ...sent } = retryRequest(first, this.variant);
    const res = await real.h.call('POST', url, { key: real.key, ...sent });
    tally(real, res);
    const firstBody = first.body ? JSON.stringify(first.body) : first.payload === undefined ? 'no body' : 'empty body';
    const what = `${this} of ${first.key} (first ${first.url} ${firstBody} → ${first.first.status})`;
    if (this.variant === 'same' || this.variant === 'equivalent') {
      real.stats.replays += 1;
      assert.equal(res.status, first.first.status, `${what}: ${res.raw}`);
      assert.equal(res.raw, first.first.raw, `${what}: the replay is not byte-identical`);
      assert.equal(res.headers['idempotent-replayed'], 'true', what);
    } else {
      assertAnswer(res, { status: 422, code: 'idempotency_key_reused' }, what);
    }
    await assertMatchesModel(model, real, what);
  }
  toString() {
    return `retry(key #${this.pick}, ${this.variant})`;
  }
}

// ---------------------------------------------------------------------------------- arbitraries

const pick = fc.nat({ max: 1000 });
const amountSpec: fc.Arbitrary<AmountSpec> = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 99 }).map((pct) => ({ t: 'pct' as const, pct })), weight: 4 },
  { arbitrary: fc.constant({ t: 'exact' as const }), weight: 2 },
  { arbitrary: fc.integer({ min: 1, max: 500 }).map((by) => ({ t: 'over' as const, by })), weight: 2 },
  { arbitrary: fc.integer({ min: 1, max: 12_000 }).map((n) => ({ t: 'abs' as const, n })), weight: 1 },
  { arbitrary: fc.constantFrom(MAX_AMOUNT, MAX_AMOUNT + 1).map((n) => ({ t: 'abs' as const, n })), weight: 1 },
);

/** Usually aim at a payment the command can act on; sometimes at any payment (mostly an error then). */
const bias = fc.boolean().chain((coin) => (coin ? fc.constant(true) : fc.boolean()));

const createPayment = fc
  .record({
    amount: fc.oneof(
      { arbitrary: fc.integer({ min: 1, max: 10_000 }), weight: 8 },
      { arbitrary: fc.constantFrom(1, 2, 100), weight: 2 },
      { arbitrary: fc.constantFrom(MAX_AMOUNT - 1, MAX_AMOUNT), weight: 1 },
    ),
    currency: fc.constantFrom('USD', 'INR', 'JPY'),
    method: fc.constantFrom<PaymentMethod>(...PAYMENT_METHODS, 'pm_card_visa', 'pm_card_visa'),
    capture: fc.constantFrom<CaptureMethod>('automatic', 'automatic', 'manual'),
  })
  .map((r) => new CreatePayment(r.amount, r.currency, r.method, r.capture));
const captureCmd = fc
  .tuple(pick, bias, fc.oneof(fc.constant<AmountSpec>({ t: 'all' }), amountSpec))
  .map(([p, b, s]) => new Capture(p, b, s));
const cancelCmd = fc.tuple(pick, bias).map(([p, b]) => new Cancel(p, b));
const refundCmd = fc
  .record({
    pick,
    target: fc.constantFrom<RefundTarget>('refundable', 'refundable', 'refundable', 'refundable', 'spent', 'any'),
    full: fc.option(fc.constantFrom<FullVariant>('none', 'empty', 'object', 'zero', 'reason'), { freq: 2 }),
    spec: amountSpec,
    route: fc.constantFrom<Route>('path', 'path', 'refunds', 'payments_refund'),
    keyed: fc.boolean(),
    currency: fc.boolean(),
  })
  .map((r) => new Refund(r.pick, r.target, r.full, r.spec, r.route, r.keyed, r.currency));
const retryCmd = fc.tuple(pick, fc.constantFrom<RetryVariant>('same', 'same', 'equivalent', 'body', 'path')).map(([p, v]) => new Retry(p, v));

// fc.commands picks among its arbitraries uniformly: repeat one to weight it
const commandArbs: fc.Arbitrary<Cmd>[] = [
  ...Array<typeof createPayment>(2).fill(createPayment),
  captureCmd,
  cancelCmd,
  ...Array<typeof refundCmd>(6).fill(refundCmd),
  retryCmd,
  retryCmd,
];

// ------------------------------------------------------------------------------------- the test

/** One run: a fresh merchant (on the backend's one shared database), its opening payments, then the commands. */
function runProperty(h: Harness, psp: SandboxPsp, stats: Stats) {
  return fc.asyncProperty(
    fc.array(createPayment, { minLength: 1, maxLength: 2 }),
    fc.commands(commandArbs, { maxCommands: MAX_COMMANDS, size: 'max' }),
    async (opening, cmds) => {
      // every run costs a database round of its own: once the budget is spent, the candidates left
      // "pass" and fast-check reports the smallest failure found so far
      if (stats.failedAt !== undefined && Date.now() - stats.failedAt > SHRINK_MS) return;
      stats.runs += 1;
      const merchant = await h.newMerchant(`Model run ${stats.runs}`);
      // the default account from now on: its pending refunds stay pending for the whole run
      const account = await h.call('POST', '/v1/connector_accounts', {
        key: merchant.testKey,
        body: { connector: 'sandbox', name: 'slow refunds', default: true, settings: { pending_delay_ms: 86_400_000 } },
      });
      assert.equal(account.status, 201, account.raw);
      const setup = () => ({ model: new RefundsModel(`model-${stats.runs}`), real: { h, key: merchant.testKey, psp, stats } });
      try {
        await fc.asyncModelRun(setup, [...opening, ...cmds]);
      } catch (err) {
        stats.failedAt ??= Date.now();
        throw err;
      }
    },
  );
}

for (const backend of BACKENDS) {
  test(`refunds agree with the reference model after every step of random call sequences (${backend})`, { timeout: 600_000 }, async (t) => {
    if (backend === 'postgres' && !(await postgresOrSkip(t))) return;
    const psp = new SandboxPsp();
    const h = await createHarness(backend, { connectors: new Map([['sandbox', createSandboxConnector({ psp })]]) });
    const stats: Stats = { runs: 0, commands: 0, refundsCreated: 0, replays: 0, heldOut: 0, answers: new Map() };
    const started = Date.now();
    try {
      await fc.assert(runProperty(h, psp, stats), {
        numRuns: NUM_RUNS,
        includeErrorInReport: true,
        ...(SEED === undefined ? {} : { seed: SEED }),
        ...(PATH === undefined ? {} : { path: PATH }),
      });
    } finally {
      psp.dispose();
      await h.close();
    }
    const answers = [...stats.answers].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}×${n}`).join(', ');
    console.log(
      `[refunds model ${backend}] ${stats.runs} runs, ${stats.commands} commands, ${stats.refundsCreated} refunds created, ` +
        `${stats.replays} replays, ${stats.heldOut} refused while pending refunds held the balance, ` +
        `${((Date.now() - started) / 1000).toFixed(1)}s; answers: ${answers}`,
    );
    // the sequences must reach the interesting states, or passing proves little (skipped for tiny FC_RUNS)
    if (NUM_RUNS >= 10) {
      for (const label of ['201', '409 not_refundable', '409 already_refunded', '422 amount_too_large', '402 card_declined']) {
        assert.ok(stats.answers.has(label), `no command was answered ${label} in ${stats.runs} runs: ${answers}`);
      }
      assert.ok(stats.replays > 0, 'no idempotent replay was exercised');
    }
  });
}
