/**
 * The end state every reliability scenario must reach, checked from the outside (the gateway's
 * API, the psp-sim's operator API, the `settle ledger verify` and `settle reconcile` CLIs). Each check adds a violation
 * instead of throwing, so a run reports all of them together with its figures.
 */
import { createPostgresDb } from '../../src/db/postgres.js';
import { ADMIN_KEY, ENCRYPTION_KEY } from '../helpers/harness.js';
import { client, runSettle } from '../helpers/processes.js';
import { simStats, sleep, type PaymentInfo } from './fixtures.js';
import { isFinal, RefundTraffic, type RefundRequest } from './refund-traffic.js';

export interface OutcomeCheckOptions {
  gatewayUrl: string;
  simUrl: string;
  apiKey: string;
  traffic: RefundTraffic;
  payments: readonly PaymentInfo[];
  /** Bounded wait for the sync worker to finish pending refunds. */
  pendingWaitMs: number;
}

export interface OutcomeFigures {
  /** Keys answered 201 (one refund each). */
  acknowledged: number;
  succeeded: number;
  failed: number;
  /** Final 4xx answers (amount_too_large, already_refunded). */
  refused: number;
  /** 201 answers that said `pending` (unknown or pending PSP outcome). */
  answeredPending: number;
}

const REFUSALS: Record<number, string[]> = { 409: ['already_refunded'], 422: ['amount_too_large'] };

export async function checkRefundOutcome(opts: OutcomeCheckOptions): Promise<{ violations: string[]; figures: OutcomeFigures }> {
  const violations: string[] = [];
  const api = client(opts.gatewayUrl, opts.apiKey);
  const sim = client(opts.simUrl);
  const figures: OutcomeFigures = { acknowledged: 0, succeeded: 0, failed: 0, refused: 0, answeredPending: 0 };
  const reqs = opts.traffic.requests;

  const unresolved = reqs.filter((r) => !r.final);
  if (unresolved.length > 0) {
    violations.push(`${unresolved.length} requests never got a final answer, e.g. ${unresolved.slice(0, 5).map(describe).join('; ')}`);
  }

  // ---- every final answer is one the contract allows, and one refund is answered for one key only
  const byRefund = new Map<string, RefundRequest>();
  for (const r of reqs) {
    const a = r.final;
    if (!a) continue;
    if (a.status === 201) {
      figures.acknowledged++;
      if (a.body?.status === 'pending') figures.answeredPending++;
      if (a.body?.object !== 'refund' || !/^re_/.test(a.body?.id) || a.body.payment_id !== r.paymentId) {
        violations.push(`${r.key}: 201 is not a refund of ${r.paymentId}: ${a.raw.slice(0, 300)}`);
        continue;
      }
      if (r.amount !== undefined && a.body.amount !== r.amount) violations.push(`${r.key}: asked ${r.amount}, refund ${a.body.id} has ${a.body.amount}`);
      const other = byRefund.get(a.body.id);
      if (other) violations.push(`${r.key} and ${other.key} were both answered with refund ${a.body.id}`);
      byRefund.set(a.body.id, r);
    } else if (REFUSALS[a.status]?.includes(a.body?.error?.code)) {
      figures.refused++;
    } else {
      violations.push(`${r.key}: unexpected final answer ${a.status}: ${a.raw.slice(0, 300)}`);
    }
  }

  // ---- the sync worker drives every pending refund to a final state, within a bound
  const pendingLeft = await waitForNoPending(opts.gatewayUrl, opts.apiKey, opts.pendingWaitMs);
  if (pendingLeft.length > 0) {
    violations.push(`${pendingLeft.length} refunds still pending after ${opts.pendingWaitMs} ms: ${pendingLeft.slice(0, 10).map((id) => {
      const r = byRefund.get(id);
      return r ? `${id} (answered ${r.final!.body.status} to ${r.key} after ${r.attempts.map(attemptText).join(' → ')})` : id;
    }).join(', ')}`);
  }

  // ---- a retry with the same key answers the same thing, byte for byte: a final answer the
  // client saw must have been stored (contract section 3), whatever failed around it
  const replayer = new RefundTraffic({ baseUrl: opts.gatewayUrl, apiKey: opts.apiKey });
  await pool(reqs.filter((r) => r.final), 16, async (r) => {
    const a = r.final!;
    const deadline = Date.now() + 15_000;
    for (;;) {
      const res = await replayer.send(r);
      if (typeof res !== 'string' && isFinal(res)) {
        const replayed = res.headers.get('idempotent-replayed') === 'true';
        if (res.status !== a.status) {
          violations.push(`${r.key}: answered ${a.status}, a retry answered ${res.status}: ${res.raw.slice(0, 300)}`);
        } else if (a.status === 201 && res.body?.id !== a.body.id) {
          violations.push(`${r.key}: answered refund ${a.body.id}, a retry answered refund ${res.body?.id}`);
        } else if (a.status !== 201 && res.body?.error?.code !== a.body?.error?.code) {
          violations.push(`${r.key}: answered ${a.body?.error?.code}, a retry answered ${res.body?.error?.code}`);
        }
        if (!replayed) violations.push(`${r.key}: the answer was not stored: a retry re-ran the request (${res.status}, no Idempotent-Replayed)`);
        else if (res.raw !== a.raw) violations.push(`${r.key}: the replay is not byte-identical to the answer:\n  ${a.raw}\n  ${res.raw}`);
        return;
      }
      if (Date.now() > deadline) {
        violations.push(`${r.key}: a retry got no final answer within 15 s (last: ${typeof res === 'string' ? res : res.status})`);
        return;
      }
      await sleep(200);
    }
  });
  violations.push(...replayer.violations);

  // ---- every acknowledged refund exists, unchanged, in a final state; only refunds the PSP
  // rejects (pm_card_refund_fails) may fail
  const cards = new Map(opts.payments.map((p) => [p.id, p.card]));
  await pool([...byRefund.entries()], 16, async ([id, r]) => {
    const g = await api('GET', `/v1/refunds/${id}`);
    if (g.status !== 200) return void violations.push(`${r.key}: acknowledged refund ${id} cannot be read: ${g.status} ${g.raw.slice(0, 200)}`);
    if (g.body.amount !== r.final!.body.amount || g.body.payment_id !== r.paymentId) {
      violations.push(`refund ${id} was acknowledged as ${r.final!.body.amount} on ${r.paymentId}, is now ${g.body.amount} on ${g.body.payment_id}`);
    }
    if (g.body.status === 'succeeded') figures.succeeded++;
    else if (g.body.status === 'failed') {
      figures.failed++;
      if (cards.get(r.paymentId) !== 'pm_card_refund_fails') {
        violations.push(`refund ${id} of a ${cards.get(r.paymentId)} payment failed: ${g.body.failure_code}: ${g.body.failure_message}`);
      }
    }
  });

  // ---- per payment: no refund nobody was answered with; gateway totals = refunds = the PSP's
  await pool(opts.payments, 8, async (p) => {
    const refunds = await listRefunds(opts.gatewayUrl, opts.apiKey, p.id);
    const pay = await api('GET', `/v1/payments/${p.id}`);
    const psp = await sim('GET', `/_sim/payments/${encodeURIComponent(p.connectorRef)}`);
    if (pay.status !== 200 || psp.status !== 200) return void violations.push(`${p.id}: cannot read payment (${pay.status}) or PSP payment (${psp.status})`);

    let succeeded = 0;
    for (const rf of refunds) {
      if (!byRefund.has(rf.id)) violations.push(`${p.id}: refund ${rf.id} (${rf.amount}, ${rf.status}) exists but no request was answered with it`);
      if (rf.status === 'succeeded') succeeded += rf.amount;
    }
    const g = pay.body;
    if (g.amount_refunded !== succeeded) violations.push(`${p.id}: amount_refunded ${g.amount_refunded} but its succeeded refunds sum to ${succeeded}`);
    if (g.amount_refundable !== g.amount_captured - g.amount_refunded) {
      violations.push(`${p.id}: amount_refundable ${g.amount_refundable} with captured ${g.amount_captured} and refunded ${g.amount_refunded} (a hold was never released)`);
    }
    const status = g.amount_refunded === 0 ? 'succeeded' : g.amount_refunded === g.amount_captured ? 'refunded' : 'partially_refunded';
    if (g.status !== status) violations.push(`${p.id}: status ${g.status} with amount_refunded ${g.amount_refunded} of ${g.amount_captured}`);
    if (psp.body.amount_refunded !== g.amount_refunded) {
      violations.push(`${p.id}: the PSP refunded ${psp.body.amount_refunded}, the gateway booked ${g.amount_refunded}`);
    }

    const gateway = new Map(refunds.map((rf) => [rf.id, rf]));
    const seen = new Set<string>();
    for (const s of psp.body.refunds as { refund_ref: string; amount: number; status: string; reference: string | null }[]) {
      if (s.reference === null) {
        violations.push(`${p.id}: the PSP has refund ${s.refund_ref} that the gateway did not send`);
        continue;
      }
      if (seen.has(s.reference)) violations.push(`${p.id}: the PSP refunded gateway refund ${s.reference} twice`);
      seen.add(s.reference);
      const mine = gateway.get(s.reference);
      if (!mine) violations.push(`${p.id}: the PSP has refund ${s.refund_ref} for ${s.reference}, unknown to the gateway`);
      else if (mine.amount !== s.amount) violations.push(`${s.reference}: ${mine.amount} at the gateway, ${s.amount} at the PSP`);
      else if ((s.status === 'succeeded') !== (mine.status === 'succeeded')) {
        violations.push(`${s.reference}: ${mine.status} at the gateway, ${s.status} at the PSP`);
      }
    }
    for (const rf of refunds) {
      if (rf.status === 'succeeded' && !seen.has(rf.id)) violations.push(`${rf.id}: succeeded at the gateway, unknown to the PSP`);
    }
  });

  const stats = await simStats(opts.simUrl);
  if (stats.duplicate_applications !== 0) violations.push(`the PSP applied ${stats.duplicate_applications} refunds twice (GET /_sim/stats)`);
  return { violations, figures };
}

/** `settle ledger verify` against the database; a violation when it does not exit 0. */
export async function ledgerVerify(env: Record<string, string>): Promise<string[]> {
  const r = await runSettle(['ledger', 'verify'], { ...env, PATH: process.env.PATH ?? '' });
  return r.code === 0 ? [] : [`settle ledger verify exited ${r.code}:\n${r.output}`];
}

/**
 * `settle reconcile` over the run's payments: the gateway's payments, refunds and ledger agree
 * with the PSP's own record, and every payment could be checked. A violation for every
 * difference or unverifiable payment, or when it does not exit 0.
 */
export async function reconcileClean(env: Record<string, string>, opts: { statusQuery?: boolean } = {}): Promise<string[]> {
  const r = await runSettle(['reconcile', '--since', '1d'], {
    SETTLE_ENCRYPTION_KEY: ENCRYPTION_KEY, SETTLE_ADMIN_KEY: ADMIN_KEY, LOG_LEVEL: 'warn', ...env, PATH: process.env.PATH ?? '',
  });
  // a PSP without a status query (Adyen) can only be reported unverifiable, never differ
  const cannotTell = (l: string) => opts.statusQuery === false && l.startsWith('UNVERIFIED') && l.endsWith('the PSP cannot tell what it did for this payment');
  const lines = r.stdout.split('\n').filter((l) => (l.startsWith('DIFFERENCE') || l.startsWith('UNVERIFIED')) && !cannotTell(l));
  if (r.code === 0 && lines.length === 0 && /reconcile: checked [1-9]/.test(r.stdout)) return [];
  return [`settle reconcile exited ${r.code} (the gateway and the PSP disagree, or a payment could not be checked):\n${r.output}`];
}

/**
 * `settle ledger verify` and `settle reconcile` against the run's database (`DATABASE_URL` or
 * `SETTLE_DATA_DIR` in `dbEnv`), the gateway stopped: both at once on PostgreSQL; one after the
 * other on PGlite, whose data directory admits one process at a time.
 */
export async function ledgerAndReconcile(dbEnv: Record<string, string>, pspEnv: Record<string, string>, opts: { statusQuery?: boolean } = {}): Promise<string[]> {
  const reconcile = () => reconcileClean({ ...pspEnv, ...dbEnv }, opts);
  if (dbEnv.DATABASE_URL) return (await Promise.all([ledgerVerify(dbEnv), reconcile()])).flat();
  return [...(await ledgerVerify(dbEnv)), ...(await reconcile())];
}

/**
 * The gateway's totals equal the PSP's: over every payment the PSP processed, the sum of what the
 * gateway says was captured and refunded against the sum of what the psp-sim's operator API says
 * (`GET /_sim/payments/:ref`), with the first payments that disagree named. The figures are
 * returned for the run's report.
 */
export async function totalsAgreeWithPsp(databaseUrl: string, simUrl: string): Promise<{ violations: string[]; figures: Record<string, string | number> }> {
  const db = createPostgresDb({ connectionString: databaseUrl, max: 2 });
  const gateway = { captured: 0, refunded: 0 };
  const psp = { captured: 0, refunded: 0 };
  const disagreeing: string[] = [];
  let payments = 0;
  try {
    const rows = (await db.query<{ id: string; connector_ref: string; amount_captured: string; amount_refunded: string }>(
      `SELECT id, connector_ref, amount_captured, amount_refunded FROM payments
        WHERE connector_ref IS NOT NULL AND status <> 'processing' ORDER BY id`)).rows;
    await pool(rows, 8, async (row) => {
      const r = await fetch(`${simUrl}/_sim/payments/${encodeURIComponent(row.connector_ref)}`);
      const at = (await r.json()) as { amount_captured?: number; amount_refunded?: number };
      const g = { captured: Number(row.amount_captured), refunded: Number(row.amount_refunded) };
      const p = { captured: r.ok ? Number(at.amount_captured) : NaN, refunded: r.ok ? Number(at.amount_refunded) : NaN };
      payments++;
      gateway.captured += g.captured;
      gateway.refunded += g.refunded;
      psp.captured += p.captured;
      psp.refunded += p.refunded;
      if (g.captured !== p.captured || g.refunded !== p.refunded) {
        disagreeing.push(`${row.id}: gateway captured ${g.captured} refunded ${g.refunded}, PSP captured ${p.captured} refunded ${p.refunded}`);
      }
    });
  } finally {
    await db.close();
  }
  const figures = {
    'payments checked against the PSP': payments,
    'captured: gateway / PSP': `${gateway.captured} / ${psp.captured}`,
    'refunded: gateway / PSP': `${gateway.refunded} / ${psp.refunded}`,
  };
  const violations = disagreeing.length === 0 && payments > 0 ? [] : [
    `the gateway's totals are not the PSP's over ${payments} payments (captured ${gateway.captured} vs ${psp.captured}, refunded ${gateway.refunded} vs ${psp.refunded}); ` +
      `${disagreeing.length} disagree:\n${disagreeing.slice(0, 10).join('\n')}`,
  ];
  return { violations, figures };
}

interface SimEventRecord {
  event: { id: string; type: string; data: { payment_ref: string } };
  status: string;
  attempts: number;
  deliveries: number;
  last_error: string | null;
}

/**
 * Every webhook the sim sent for the account (`GET /_sim/events`) was acknowledged: none given
 * up for good (`failed`), none still waiting for its next retry, none sent nowhere. For a PSP that
 * finishes refunds by notification only (Adyen): one it gave up on would leave the gateway short
 * of what the PSP did, even where the rest happens to agree.
 */
export async function notificationsDelivered(simUrl: string, simAccount: string) {
  const r = await client(simUrl)('GET', `/_sim/events?account_id=${encodeURIComponent(simAccount)}`);
  const records = r.status === 200 ? (r.body.data as SimEventRecord[]) : [];
  const violations: string[] = [];
  if (r.status !== 200) violations.push(`GET /_sim/events answered ${r.status}: ${r.raw.slice(0, 200)}`);
  else if (records.length === 0) violations.push('the PSP sent no notification: the scenario proved nothing');
  const undelivered = records.filter((e) => e.status !== 'delivered');
  for (const e of undelivered.slice(0, 20)) {
    violations.push(`the PSP's ${e.event.type} notification ${e.event.id} (payment ${e.event.data.payment_ref}) ended ${e.status} after ${e.attempts} attempts: ${e.last_error}`);
  }
  if (undelivered.length > 20) violations.push(`… and ${undelivered.length - 20} more notifications not delivered`);
  return {
    violations,
    figures: {
      events: records.length,
      retried: records.filter((e) => e.attempts > e.deliveries).length,
      failedAttempts: records.reduce((n, e) => n + e.attempts - e.deliveries, 0),
      undelivered: undelivered.length,
    },
  };
}

/** Ids of refunds still pending after waiting up to `waitMs` for the sync worker. */
export async function waitForNoPending(gatewayUrl: string, apiKey: string, waitMs: number): Promise<string[]> {
  const api = client(gatewayUrl, apiKey);
  const deadline = Date.now() + waitMs;
  for (;;) {
    const r = await api('GET', '/v1/refunds?status=pending&limit=100').catch(() => undefined);
    const ids = r?.status === 200 ? (r.body.data as { id: string }[]).map((x) => x.id) : ['(list failed)'];
    if (ids.length === 0 || Date.now() > deadline) return ids;
    await sleep(100);
  }
}

async function listRefunds(gatewayUrl: string, apiKey: string, paymentId: string): Promise<{ id: string; amount: number; status: string }[]> {
  const api = client(gatewayUrl, apiKey);
  const out: { id: string; amount: number; status: string }[] = [];
  let cursor: string | null = null;
  do {
    const r = await api('GET', `/v1/payments/${paymentId}/refunds?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    if (r.status !== 200) throw new Error(`listing refunds of ${paymentId}: ${r.status} ${r.raw}`);
    out.push(...r.body.data);
    cursor = r.body.has_more ? r.body.next_cursor : null;
  } while (cursor);
  return out;
}

/** Runs `fn` over `items`, at most `n` at a time. */
export async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (i < items.length) await fn(items[i++]);
  }));
}

function attemptText(a: RefundRequest['attempts'][number]): string {
  return a.kind === 'answer' ? `${a.status}${a.code ? ` ${a.code}` : ''}${a.replayed ? ' (replayed)' : ''}` : a.kind === 'hung' ? 'hung' : `no response`;
}

function describe(r: RefundRequest): string {
  const last = r.attempts.at(-1);
  const how = !last ? 'never sent' : last.kind === 'answer' ? `last ${last.status} ${last.code ?? ''}` : last.kind;
  return `${r.key} (${r.attempts.length} attempts, ${how})`;
}
