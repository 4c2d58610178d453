/**
 * What every reliability scenario sets up the same way: a seeded random source (printed, so a
 * failing run can be replayed), a merchant whose sandbox connector account talks to a psp-sim
 * process, captured payments, and the refund requests planned against them.
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import { ADMIN_KEY } from '../helpers/harness.js';
import { client } from '../helpers/processes.js';
import { SANDBOX_SETUP, type ConnectorSetup } from '../helpers/connectors.js';
import type { RefundRequest } from './refund-traffic.js';

export type Backend = 'postgres' | 'pglite';

/** A small seeded PRNG (mulberry32): the plan and the kill moments of a run replay from its seed. */
export class Rng {
  private a: number;
  constructor(readonly seed: number) {
    this.a = seed >>> 0;
  }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
}

/** `RELIABILITY_SEED=<n>` replays a run; otherwise a fresh seed, printed with the figures. */
export function seedFromEnv(): number {
  const raw = process.env.RELIABILITY_SEED;
  return raw && /^\d+$/.test(raw) ? Number(raw) : Math.floor(Math.random() * 2 ** 31);
}

/**
 * The gateway settings of every reliability run: a short idempotency lease (a retry takes over
 * a dead request's key after 1 s), fast refund sync with its backoff capped at 1 s (so the
 * bounded wait for pending refunds means something), fast worker polling, a 2 s PSP timeout.
 */
export const GATEWAY_ENV: Readonly<Record<string, string>> = {
  SETTLE_IDEMPOTENCY_LOCK_MS: '1000',
  SETTLE_REFUND_SYNC_BASE_MS: '50',
  SETTLE_REFUND_SYNC_MAX_MS: '1000',
  SETTLE_WORKER_POLL_MS: '50',
  SETTLE_CONNECTOR_TIMEOUT_MS: '2000',
};

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Merchant {
  apiKey: string;
  accountId: string;
  /** The account's name at the sim (where its webhooks are registered, `GET /_sim/events?account_id=`). */
  simAccount: string;
  /** Sim faults every `PUT /_sim/faults` of the run must keep: what the connector's wire cannot
   *  take as an account setting (the Stripe wire's pending delay). */
  simFaults: Record<string, unknown>;
}

/**
 * A merchant and its default connector account (the sandbox unless `setup` says otherwise)
 * pointed at the psp-sim, so the PSP's state lives outside the gateway and survives every gateway
 * kill. The gateway must run with `setup.gatewayEnv(simUrl)`.
 */
export async function setupMerchant(gatewayUrl: string, simUrl: string, name: string, setup: ConnectorSetup = SANDBOX_SETUP): Promise<Merchant> {
  const m = await client(gatewayUrl, ADMIN_KEY)('POST', '/v1/admin/merchants', { name });
  assert.equal(m.status, 201, m.raw);
  const apiKey: string = m.body.api_keys.test;
  // pending refunds (pm_card_refund_pending) settle at the PSP after 300 ms; the sync worker learns it
  const plan = setup.account(simUrl, { pendingDelayMs: 300 });
  const acct = await client(gatewayUrl, apiKey)('POST', '/v1/connector_accounts', { name: 'psp-sim', ...plan.body });
  assert.equal(acct.status, 201, acct.raw);
  if (!setup.statusQuery) {
    // a PSP that cannot be asked (Adyen) finishes refunds only by its notifications
    const hook = await client(simUrl)('PUT', `/_sim/accounts/${encodeURIComponent(plan.simAccount(acct.body))}/webhook`, {
      url: `${gatewayUrl}${acct.body.webhook_path}`,
      secret: acct.body.webhook_secret,
    });
    assert.equal(hook.status, 200, hook.raw);
  }
  return { apiKey, accountId: acct.body.id, simAccount: plan.simAccount(acct.body), simFaults: plan.faults };
}

export interface PaymentInfo {
  id: string;
  amount: number;
  connectorRef: string;
  card: string;
}

/**
 * Captured payments of random amounts. Most use a card whose refunds succeed; a few have refunds
 * the PSP rejects or leaves pending, so failed and pending refunds are part of every run.
 */
export async function createPayments(gatewayUrl: string, apiKey: string, count: number, rng: Rng): Promise<PaymentInfo[]> {
  const api = client(gatewayUrl, apiKey);
  const cards = ['pm_card_visa', 'pm_card_visa', 'pm_card_mastercard', 'pm_card_visa', 'pm_card_refund_pending', 'pm_card_visa', 'pm_card_refund_fails', 'pm_card_mastercard'];
  const out: PaymentInfo[] = [];
  // a few at a time: setting up is not what is under test
  for (let i = 0; i < count; i += 8) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(8, count - i) }, async (_, j) => {
        const card = cards[(i + j) % cards.length];
        const amount = rng.int(40, 200) * 100;
        const body = { amount, currency: 'USD', payment_method: card };
        let p = await api('POST', '/v1/payments', body, { 'Idempotency-Key': `setup-pay-${i + j}` });
        // a slow PSP during setup (scenarios run the gateway with a short PSP timeout): retry as told
        for (let attempt = 1; p.status >= 500 && attempt < 5; attempt++) {
          await sleep(200 * attempt);
          p = await api('POST', '/v1/payments', body, { 'Idempotency-Key': `setup-pay-${i + j}` });
        }
        assert.equal(p.status, 201, p.raw);
        assert.equal(p.body.status, 'succeeded', p.raw);
        return { id: p.body.id as string, amount, connectorRef: p.body.connector_ref as string, card };
      }),
    );
    out.push(...batch);
  }
  return out;
}

/**
 * Refund requests spread over the payments, a few payments hot so refunds race on one row:
 * mostly partial refunds of random amounts, some full refunds (no body, or a body without an
 * amount), through all three create routes. Each has its own idempotency key.
 */
export function planRefunds(payments: readonly PaymentInfo[], count: number, prefix: string, rng: Rng): RefundRequest[] {
  const hot = payments.slice(0, Math.max(1, Math.ceil(payments.length / 5)));
  const reqs: RefundRequest[] = [];
  for (let i = 0; i < count; i++) {
    const p = rng.next() < 0.4 ? rng.pick(hot) : rng.pick(payments);
    const kind = rng.next();
    let body: Record<string, unknown> | undefined;
    let amount: number | undefined;
    if (kind < 0.8) {
      amount = rng.int(1, Math.max(1, Math.floor(p.amount / 400))) * 100 + rng.int(0, 99);
      body = { amount, reason: rng.pick(['customer_request', 'duplicate', 'other']), metadata: { n: String(i) } };
    } else if (kind < 0.9) {
      body = undefined; // the whole refundable balance
    } else {
      body = { reason: 'other' };
    }
    const route = rng.next();
    let path = `/v1/payments/${p.id}/refunds`;
    if (route > 0.7) {
      path = route > 0.85 ? '/v1/payments/refund' : '/v1/refunds';
      body = { ...(body ?? {}), payment_id: p.id };
    }
    reqs.push({ key: `${prefix}-${i}`, paymentId: p.id, path, body, amount, attempts: [] });
  }
  return reqs;
}

export interface SimStats {
  refund_calls: number;
  refunds_created: number;
  duplicate_applications: number;
}

export async function simStats(simUrl: string): Promise<SimStats> {
  const r = await client(simUrl)('GET', '/_sim/stats');
  assert.equal(r.status, 200, r.raw);
  return r.body as SimStats;
}

export async function setSimFaults(simUrl: string, faults: Record<string, unknown>): Promise<void> {
  const r = await client(simUrl)('PUT', '/_sim/faults', faults);
  assert.equal(r.status, 200, r.raw);
}

export async function clearSimFaults(simUrl: string): Promise<void> {
  const r = await client(simUrl)('DELETE', '/_sim/faults');
  assert.equal(r.status, 200, r.raw);
}

/** One line per figure, so a run's numbers can be read (and compared) at a glance. */
export function printFigures(title: string, figures: Record<string, number | string>): void {
  const width = Math.max(...Object.keys(figures).map((k) => k.length));
  const lines = Object.entries(figures).map(([k, v]) => `  ${k.padEnd(width)}  ${v}`);
  console.log(`\n${title}\n${lines.join('\n')}\n`);
}

/** The last lines of a process's output, for a failure message. */
export function tail(output: string, lines = 40): string {
  return output.split('\n').slice(-lines).join('\n');
}

/** What a scenario hands back: its printed figures and every invariant violation found. */
export interface ScenarioReport {
  figures: Record<string, number | string>;
  violations: string[];
}

/** Fails with the first violations listed (the scenario printed its figures already). */
export function assertNoViolations(report: ScenarioReport): void {
  const { violations } = report;
  assert.equal(violations.length, 0, `${violations.length} invariant violations:\n- ${violations.slice(0, 20).join('\n- ')}`);
}

/** Where pending refunds stand in the database (a failure's diagnostics, Postgres only). */
export async function pendingRefundRows(databaseUrl: string): Promise<string> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const r = await c.query(
      `SELECT id, payment_id, amount, connector_ref, sync_attempts, next_sync_at - now() AS next_sync_in, now() - updated_at AS since_update
       FROM refunds WHERE status = 'pending' ORDER BY created_at LIMIT 20`);
    return r.rows.map((row) => JSON.stringify(row)).join('\n');
  } finally {
    await c.end();
  }
}
