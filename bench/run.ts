/**
 * `npm run bench`: the refund hot path against its floors, and how its cost grows.
 *
 *   node dist/bench/run.js [--quick] [--only=http,pg,open,slowpsp,scaleout,growth,pglite] [--pool=N] [--cpu-prof]
 *                          [--label=TEXT] [--concurrency=1,16,64] [--skip=floor-db,replay,hot,nth,open] [--bare-schema]
 *                          [--gateway-node-args='--max-old-space-size=N …'] [--open-shares=0.1,0.25,0.5,0.8]
 *
 * Prints a table and writes bench/results/<timestamp>.json. See docs/benchmarks.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { defaultDbPoolSize, NODE_HEAP_ARG } from '../src/config.js';
import type { Db } from '../src/db/db.js';
import { groupLimits } from '../src/db/group.js';
import { createPgliteDb } from '../src/db/pglite.js';
import { createPostgresDb } from '../src/db/postgres.js';
import { startPgBouncer, pgbouncerBinary, type PgBouncer } from '../test/helpers/private-postgres.js';
import { LoadGenerator, RssWatch, RssWatches, spawnBareHttp, spawnGateway, spawnPspSim, type Server } from './processes.js';
import type { HttpJob, HttpPlan, LoadResult, Recording, Window } from './protocol.js';
import { profileOf, recordRefund, type StatementProfile } from './record.js';
import { StallSampler, type StallWindow } from './stall-sampler.js';
import { latencyOf, median, seriesOf, table, type Goal, type Latency, type Series } from './report.js';
import { BENCH_DATABASE_URL, checkCorrectness, createMerchant, createTempDatabase, paymentId, paymentRef, seedPayments, type BenchMerchant } from './seed.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const RESULTS = join(ROOT, 'bench/results');

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    pool: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'gateway-node-args': { type: 'string' },
    'open-shares': { type: 'string' },
    label: { type: 'string' },
    concurrency: { type: 'string' },
    skip: { type: 'string' },
    compare: { type: 'string' },
    'bare-schema': { type: 'boolean', default: false },
  },
});
/** Series to leave out (replay, hot, nth, floor-db): for quick comparisons while tuning. */
const skip = new Set((args.skip ?? '').split(',').filter(Boolean));
/**
 * Groups: `pg` is the closed-loop uniform series with floors, replays, hot payment and nth refund,
 * followed by the open loop (unless --skip=open); `open` alone runs only the c=64 closed loop
 * (the peak) and the open loop; `slowpsp` and `scaleout` each run on a database of their own.
 */
const GROUPS = ['http', 'pg', 'open', 'slowpsp', 'scaleout', 'growth', 'pglite'];
const groups = new Set((args.only ?? 'http,pg,slowpsp,scaleout,growth,pglite').split(','));
for (const g of groups) if (!GROUPS.includes(g)) throw new Error(`--only: unknown group ${g} (known: ${GROUPS.join(', ')})`);
const runsOpenLoop = groups.has('open') || (groups.has('pg') && !skip.has('open'));
const quick = args.quick!;
/** The gateway's pool size (SETTLE_DB_POOL_SIZE) and the floor's: unset = the gateway's default. */
const poolSize = args.pool ? Number(args.pool) : undefined;
const FLOOR_POOL = poolSize ?? defaultDbPoolSize();
const WARMUP_MS = quick ? 500 : 1500;
const DURATION_MS = quick ? 2500 : 6000;
const CONCURRENCY = args.concurrency ? args.concurrency.split(',').map(Number) : [1, 16, 64];
const UNIFORM_PAYMENTS = 100_000;
const UNIFORM_AMOUNT = 10_000;
const GROWTH_SMALL = 10_000;
const GROWTH_LARGE = quick ? 200_000 : 1_000_000;
const NTH_REFUNDS = 1000;
const PGLITE_PAYMENTS = 20_000;
/**
 * Open loop: shares of the closed-loop peak measured in the same run (`--open-shares=0.1,0.25,0.5,0.8`
 * for the latency at other loads; the goal is judged at 0.5).
 */
const OPEN_SHARES = (args['open-shares'] ?? '0.5,0.8').split(',').map(Number);
if (OPEN_SHARES.some((s) => !(s > 0 && s <= 1))) throw new Error(`--open-shares: shares of the peak in (0, 1], got ${args['open-shares']}`);
/** Most connections the open-loop generator may open. */
const OPEN_MAX_CONNECTIONS = 1024;
/** The slow PSP: latency drawn uniformly from this range (ms), and this many concurrent refunds. */
const SLOW_PSP_MS = [200, 400] as const;
const SLOW_PSP_CONCURRENCY = 512;
const SLOW_PSP_PAYMENTS = quick ? 15_000 : 30_000;
const READER_CONCURRENCY = 4;
const SCALE_PROCESSES = [1, 2, 4];
const SCALE_CONCURRENCY = 64;
const SCALE_PAYMENTS = quick ? 25_000 : 60_000;
/**
 * An experiment, not the gateway: with --bare-schema the uniform workload's database loses every
 * CHECK and foreign-key constraint and these secondary indexes (none is read by a refund) after
 * seeding. It bounds what the schema's integrity and its lists cost the refund path.
 */
const BARE_SCHEMA = args['bare-schema']!;
const BARE_DROPPED_INDEXES = [
  'refunds_list', 'refunds_sync', 'ledger_transactions_list', 'ledger_entries_account', 'ledger_entries_transaction',
  'events_list', 'idempotency_keys_created', 'payments_list', 'payments_order', 'payments_customer', 'payments_connector_ref',
];

const started = Date.now();
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const profDir = join(RESULTS, `cpuprof-${stamp}`);
const nodeArgs = [
  ...(args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []),
  ...(args['gateway-node-args'] ?? '').split(' ').filter(Boolean),
];
const series: Series[] = [];
const notes: string[] = [];
let statementProfile: StatementProfile | undefined;
let recording: Recording | undefined;
let pgss: unknown[] | undefined;
const growth: Record<string, unknown> = {};

const log = (msg: string) => console.error(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(3)}s] ${msg}`);

/** Deterministic shuffle (mulberry32), so two runs refund payments in the same order. */
function shuffled<T>(items: T[], seed: number): T[] {
  let a = seed >>> 0;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Payments handed out once each, in a random order. */
class PaymentPool {
  private next = 0;
  constructor(private readonly ids: string[]) {}
  get remaining() {
    return this.ids.length - this.next;
  }
  peek(max = Infinity): string[] {
    return this.ids.slice(this.next, this.next + Math.min(max, this.remaining));
  }
  consume(n: number): void {
    this.next += n;
  }
  take(n: number): string[] {
    const out = this.peek(n);
    this.next += out.length;
    return out;
  }
}

/** The database the current group runs on (its server's CPU is measured when it is local). */
let currentDbUrl: string | undefined;

const window = (concurrency: number, gw?: Server, extra: Partial<Window> = {}): Window => ({
  concurrency,
  postgresUrl: currentDbUrl,
  warmupMs: WARMUP_MS,
  durationMs: DURATION_MS,
  ...(gw ? { gateway: { metricsUrl: `${gw.url}/metrics`, pid: gw.pid } } : {}),
  ...extra,
});

/**
 * Refreshes PostgreSQL's statistics before a series, as autovacuum's analyze would between two
 * stretches of traffic in steady state. The bench starts from empty refunds, idempotency_keys and
 * ledger tables and grows them by thousands of rows a series; a prepared statement's generic
 * plan made while they were empty (a sequential scan) stays until an analyze invalidates it, and
 * autovacuum looks only once a minute. Whether it had looked before a series decided whether the
 * idempotency-key update cost 0.04 or 0.87 ms (pg_stat_statements), and the same build measured
 * R_db 0.41 in one run and 0.86 in the next.
 */
async function analyze(url: string | undefined): Promise<void> {
  if (url) await withClient(url, (c) => c.query('ANALYZE'));
}

/** Runs `fn` on a connection of its own to `url`, closed afterwards. */
async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** The gateway's counts of refund steps and the transactions they ran in (see TransactionGroups). */
interface RefundSteps { steps: number; transactions: number }

async function refundTransactions(gw: Server): Promise<RefundSteps | undefined> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  const steps = read('settle_refund_db_transaction_members_total');
  const transactions = read('settle_refund_db_transactions_total');
  return Number.isFinite(steps) && Number.isFinite(transactions) ? { steps, transactions } : undefined;
}

/** Refund steps per database transaction in each series of the system (warm-up included). */
const grouping: Record<string, { steps: number; transactions: number; perTransaction: number }> = {};

/** Records a series' refund steps and transactions between two readings of the same processes. */
function recordGrouping(seriesId: string, before: (RefundSteps | undefined)[], after: (RefundSteps | undefined)[]): void {
  let steps = 0;
  let transactions = 0;
  after.forEach((a, i) => {
    steps += (a?.steps ?? 0) - (before[i]?.steps ?? 0);
    transactions += (a?.transactions ?? 0) - (before[i]?.transactions ?? 0);
  });
  grouping[seriesId] = { steps, transactions, perTransaction: Number((steps / Math.max(1, transactions)).toFixed(2)) };
}

async function httpRun(load: LoadGenerator, gw: Server, key: string | undefined, plan: HttpPlan, w: Window, watchRss: boolean,
  seriesId?: string, more: Pick<HttpJob, 'urls' | 'reader'> & { rssPids?: number[] } = {}): Promise<{ r: LoadResult; rss: number | null; rssByPid?: Record<number, number> }> {
  await analyze(currentDbUrl);
  const watch = watchRss ? new RssWatches(more.rssPids ?? [gw.pid]) : undefined;
  const before = seriesId ? await refundTransactions(gw) : undefined;
  watch?.start();
  const r = await load.run({ kind: 'http', url: gw.url, authorization: key ? `Bearer ${key}` : undefined, plan, urls: more.urls, reader: more.reader, ...w });
  const rssByPid = watch?.stop();
  const rss = rssByPid ? Math.max(...Object.values(rssByPid)) : null;
  const after = before ? await refundTransactions(gw) : undefined;
  if (seriesId && before && after) recordGrouping(seriesId, [before], [after]);
  return { r, rss, rssByPid };
}

function logSeries(s: Series) {
  log(`${s.label} c=${s.concurrency}: ${s.rps.toFixed(0)} req/s, p50 ${s.latencyMs.p50.toFixed(2)} ms, p99 ${s.latencyMs.p99.toFixed(2)} ms, errors ${s.errors}` +
    (s.peakRssMb !== null ? `, RSS ${s.peakRssMb.toFixed(0)} MB` : '') +
    (s.gatewayCpuMsPerRequest !== null ? `, gateway cpu ${s.gatewayCpuMsPerRequest.toFixed(2)} ms/req (${s.gatewaySysPct?.toFixed(0)}% sys)` : '') +
    (s.postgresCpuMsPerRequest !== null ? `, postgres cpu ${s.postgresCpuMsPerRequest.toFixed(2)} ms/req` : '') +
    `, machine busy ${s.machineBusyPct.toFixed(0)}% (before: ${s.backgroundBusyPct.toFixed(0)}%)` +
    (s.errorSamples.length ? `\n    first errors: ${s.errorSamples.join('\n    ')}` : ''));
}

async function verified(db: Db, s: Series): Promise<Series> {
  s.correctness = await checkCorrectness(db);
  if (!s.correctness.ok) log(`CORRECTNESS FAILED after ${s.label}: ${JSON.stringify(s.correctness).slice(0, 2000)}`);
  return s;
}

async function pgStatStatements(url: string): Promise<boolean> {
  return withClient(url, async (c) => {
    try {
      await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      await c.query('SELECT pg_stat_statements_reset()');
      return true;
    } catch (err) {
      notes.push(`pg_stat_statements unavailable (${(err as Error).message.split('\n')[0]}); statement counts come from the recorded sequence`);
      return false;
    }
  });
}

async function readPgss(url: string, dbName: string, refunds: number): Promise<unknown[]> {
  const r = await withClient(url, (c) => c.query(
    `SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,
            round((calls::numeric / $2), 2) AS per_refund, left(regexp_replace(query, '\\s+', ' ', 'g'), 140) AS query
     FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
     WHERE d.datname = $1 ORDER BY total_exec_time DESC LIMIT 25`,
    [dbName, Math.max(1, refunds)],
  ));
  return r.rows;
}

// ------------------------------------------------------------------ F_http

async function floorHttp(load: LoadGenerator) {
  log('F_http: bare Fastify route');
  const bare = await spawnBareHttp();
  try {
    for (const c of CONCURRENCY) {
      const { r } = await httpRun(load, bare, undefined, { type: 'fixed', path: '/v1/payments/pay_x/refunds', body: '{}' },
        { ...window(c), warmupMs: 500, durationMs: quick ? 1500 : 3000 }, false);
      const s = seriesOf({ id: `fhttp-c${c}`, label: 'F_http bare route', kind: 'floor-http', backend: '-', workload: 'bare POST', concurrency: c }, r, null);
      series.push(s);
      logSeries(s);
    }
  } finally {
    await bare.stop();
  }
}

// ------------------------------------------------------------------ Postgres: uniform, floors, replays, hot payment, nth refund

async function postgresMain(load: LoadGenerator) {
  const temp = await createTempDatabase('main');
  const dataDir = mkdtempSync(join(tmpdir(), 'settle-bench-'));
  const db = createPostgresDb({ connectionString: temp.url, max: 4 });
  let gw: Server | undefined;
  try {
    log(`postgres: seeding ${UNIFORM_PAYMENTS} payments in ${temp.name}`);
    const m = await createMerchant(db, dataDir);
    await seedPayments(temp.url, m, 'u', 1, UNIFORM_PAYMENTS, UNIFORM_AMOUNT, true);
    await seedPayments(temp.url, m, 'h', 1, 1, 100_000_000);
    await seedPayments(temp.url, m, 'n', 1, 1, 10_000_000);
    if (BARE_SCHEMA) await stripSchema(db);
    await db.query('ANALYZE');
    const pool = new PaymentPool(shuffled(Array.from({ length: UNIFORM_PAYMENTS }, (_, i) => paymentId('u', i + 1)), 42));
    const hasPgss = await pgStatStatements(temp.url);
    currentDbUrl = temp.url;

    log('recording the SQL of one refund (in-process app, recording database handle)');
    const [warm, recorded] = pool.take(2);
    recording = await recordRefund(temp.url, m, warm, recorded, UNIFORM_AMOUNT);
    statementProfile = profileOf(recording);
    log(`one refund = ${statementProfile.statements} statements, ${statementProfile.roundTrips} round trips, ${statementProfile.transactions} transactions, ${statementProfile.commits} commits`);

    gw = await spawnGateway({ databaseUrl: temp.url, dataDir, poolSize, nodeArgs });
    log(`gateway pid ${gw.pid} at ${gw.url}`);

    // --only=open: just the closed-loop peak at c=64, then the open loop
    const full = groups.has('pg');
    for (const c of full ? CONCURRENCY : [64]) {
      // the system
      if (c === 64 && hasPgss) await pgStatStatements(temp.url);
      const { r, rss } = await httpRun(load, gw, m.key, { type: 'refunds', paymentIds: pool.peek(40_000), keyPrefix: `sys-c${c}` }, window(c, gw), true, `pg-uniform-c${c}`);
      pool.consume(r.consumed);
      const s = seriesOf({ id: `pg-uniform-c${c}`, label: 'refunds uniform', kind: 'system', backend: 'postgres', workload: `full refunds over ${UNIFORM_PAYMENTS.toLocaleString('en')} payments`, concurrency: c }, r, rss);
      if (c === 64 && hasPgss) pgss = await readPgss(temp.url, temp.name, r.count + r.warmupCount);
      series.push(await verified(db, s));
      logSeries(s);

      // F_db at the same concurrency
      if (skip.has('floor-db') || !full) continue;
      const targets = pool.peek(60_000).map((id) => ({ id, ref: paymentRef(id, UNIFORM_AMOUNT) }));
      await analyze(temp.url);
      const fr = await load.run({ kind: 'sql', url: temp.url, poolSize: FLOOR_POOL, groups: groupLimits('postgres', FLOOR_POOL), recording, targets, keyPrefix: `fdb-c${c}`, ...window(c) });
      pool.consume(fr.consumed);
      const fs = seriesOf({ id: `fdb-c${c}`, label: 'F_db replayed SQL', kind: 'floor-db', backend: 'postgres', workload: `the recorded statements, pool ${FLOOR_POOL}`, concurrency: c }, fr, null);
      series.push(await verified(db, fs));
      logSeries(fs);
    }

    if (runsOpenLoop) await openLoop(load, gw, m, pool, db);

    // replays: 20% of requests resend an earlier key
    if (!skip.has('replay') && full) {
      const { r, rss } = await httpRun(load, gw, m.key, { type: 'refunds', paymentIds: pool.peek(40_000), replayFraction: 0.2, keyPrefix: 'replay' }, window(64, gw), true);
      pool.consume(r.consumed);
      const s = seriesOf({ id: 'pg-replay-c64', label: 'refunds 20% replays', kind: 'system', backend: 'postgres', workload: '80% new full refunds, 20% retries of earlier keys', concurrency: 64 }, r, rss);
      series.push(await verified(db, s));
      logSeries(s);
      log(`  in the measured window: replays sent ${r.replaysSent}, answered as replays ${r.replayed}`);
    }

    // one hot payment, many small partial refunds
    if (!skip.has('hot') && full) {
      const { r, rss } = await httpRun(load, gw, m.key, { type: 'refunds', paymentIds: [paymentId('h', 1)], repeat: true, amount: 1, keyPrefix: 'hot' }, window(64, gw), true);
      const s = seriesOf({ id: 'pg-hot-c64', label: 'refunds one hot payment', kind: 'system', backend: 'postgres', workload: 'partial refunds of 1 on one payment', concurrency: 64 }, r, rss);
      series.push(await verified(db, s));
      logSeries(s);
    }

    // the 1st … 1000th partial refund of one payment, one at a time
    if (!skip.has('nth') && full) {
      const { r, rss } = await httpRun(load, gw, m.key, { type: 'refunds', paymentIds: [paymentId('n', 1)], repeat: true, amount: 100, keyPrefix: 'nth' },
        window(1, gw, { warmupMs: 0, durationMs: 120_000, maxRequests: NTH_REFUNDS, ordered: true }), true);
      const s = seriesOf({ id: 'pg-nth-c1', label: `refunds 1st..${NTH_REFUNDS}th of one payment`, kind: 'system', backend: 'postgres', workload: `${NTH_REFUNDS} sequential partial refunds of one payment`, concurrency: 1 }, r, rss);
      const lat = r.latencies;
      const first = median(lat.slice(0, 50));
      const last = median(lat.slice(Math.max(0, lat.length - 50)));
      s.extra = { firstMs: lat[0], lastMs: lat[lat.length - 1], medianFirst50Ms: first, medianLast50Ms: last, ratio: last / first, refunds: lat.length };
      growth.nth = s.extra;
      series.push(await verified(db, s));
      logSeries(s);
      log(`  median of refunds 1–50: ${first.toFixed(2)} ms, of ${lat.length - 49}–${lat.length}: ${last.toFixed(2)} ms (×${(last / first).toFixed(2)})`);
    }
  } finally {
    currentDbUrl = undefined;
    await gw?.stop();
    await db.close();
    await temp.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ open loop

const pct = (share: number) => Math.round(share * 100);
const ms = (l: Latency) => `${l.p50.toFixed(1)} / ${l.p99.toFixed(1)} / ${l.p999.toFixed(1)}`;

/**
 * Refunds at a fixed rate — 50% and 80% of the closed-loop peak measured just before on the same
 * gateway and database — instead of a closed loop of clients, which slows down with the system
 * and so hides queueing. Latency from the intended send time is the corrected figure.
 */
async function openLoop(load: LoadGenerator, gw: Server, m: BenchMerchant, pool: PaymentPool, db: Db) {
  const closed = series.filter((s) => s.id.startsWith('pg-uniform-c'));
  if (closed.length === 0) return;
  const peakOf = closed.reduce((a, b) => (b.rps > a.rps ? b : a));
  const peak = peakOf.rps;
  for (const share of OPEN_SHARES) {
    const rate = Math.max(1, Math.round(peak * share));
    const w = window(0, gw);
    const needed = Math.ceil((rate * (w.warmupMs + w.durationMs)) / 1000) + 1;
    if (pool.remaining < needed) {
      notes.push(`open loop at ${pct(share)}%: only ${pool.remaining} payments left, ${needed} needed; not run`);
      continue;
    }
    await analyze(currentDbUrl);
    const watch = new RssWatch(gw.pid);
    watch.start();
    const dbBefore = await databaseActivity(db);
    const stepsBefore = await refundTransactions(gw);
    const sampler = new StallSampler(currentDbUrl!, { gateway: gw.pid, generator: load.pid });
    await sampler.start();
    const r = await load.run({ kind: 'open', url: gw.url, authorization: `Bearer ${m.key}`, rate, connections: OPEN_MAX_CONNECTIONS,
      paymentIds: pool.peek(needed), keyPrefix: `open${pct(share)}`, ...w });
    await sampler.stop();
    const rss = watch.stop();
    const dbDuring = activityDelta(dbBefore, await databaseActivity(db));
    const stepsAfter = await refundTransactions(gw);
    if (stepsBefore && stepsAfter) recordGrouping(`pg-open-${pct(share)}`, [stepsBefore], [stepsAfter]);
    pool.consume(r.consumed);
    const o = r.open!;
    const s = seriesOf({ id: `pg-open-${pct(share)}`, label: `open loop ${pct(share)}% of peak`, kind: 'system', backend: 'postgres',
      workload: `${rate} refunds/s on a fixed schedule, ${pct(share)}% of the ${peak.toFixed(0)}/s closed-loop peak (c=${peakOf.concurrency})`, concurrency: o.connections }, r, rss);
    s.extra = {
      share, targetRate: rate, peakRps: Number(peak.toFixed(1)), peakSeries: peakOf.id, sent: o.sent, sentRate: Number(((o.sent * 1000) / w.durationMs).toFixed(1)),
      correctedMs: round(latencyOf(r.latencies)), uncorrectedMs: round(latencyOf(o.uncorrected)), generatorLagMs: round(latencyOf(o.lag)),
      connections: o.connections, inFlightAtWindowEnd: o.inFlightAtEnd, windowStartEpochMs: o.windowStartEpochMs,
      // what could stall answers: where the slow ones fall, the gateway's GC, the database's
      // checkpoints and autovacuum during the series (warm-up included)
      slow: o.slow, gatewayGc: r.gateway?.gc ?? null, gatewayEventLoopMaxMs: r.gateway?.eventLoopMaxMs ?? null, database: dbDuring,
    };
    // who used the cores and what the database waited on: over the window, and in the slots of the slow answers
    const start = o.windowStartEpochMs;
    const stalls = {
      window: sampler.summarize(start, start + w.durationMs),
      worstSlots: o.slow.worstSlots.map((x) => ({ atMs: x.atMs, slow: x.slow, maxMs: x.maxMs, ...sampler.summarize(start + x.atMs, start + x.atMs + 100 + x.maxMs) })),
    };
    (s.extra as Record<string, unknown>).stalls = stalls;
    series.push(await verified(db, s));
    logSeries(s);
    log(`  open loop ${rate}/s: corrected p50/p99/p99.9 ${ms(latencyOf(r.latencies))} ms, uncorrected ${ms(latencyOf(o.uncorrected))} ms, ` +
      `generator lag p99 ${latencyOf(o.lag).p99.toFixed(2)} ms, ${o.connections} connections`);
    const major = Object.entries(r.gateway?.gc ?? {}).map(([k, g]) => `${k} ${g.count} (${g.totalMs} ms, ${g.over100ms} ≥100 ms)`).join(', ');
    log(`  slow answers (> ${o.slow.slowMs} ms): ${o.slow.count} of ${r.count}, in ${o.slow.slotsWithSlow} of ${o.slow.slots} 100-ms slots; ` +
      `worst slots ${o.slow.worstSlots.map((x) => `${(x.atMs / 1000).toFixed(1)}s:${x.slow}/${x.maxMs}ms`).join(' ')}; ` +
      `gateway GC ${major || 'unknown'}; event-loop max ${r.gateway?.eventLoopMaxMs?.toFixed(1) ?? '?'} ms; ` +
      `database: ${dbDuring.checkpoints} checkpoint(s) (sync ${dbDuring.checkpointSyncMs} ms, ${dbDuring.buffersCheckpoint} buffers), ${dbDuring.autovacuums} autovacuum(s), ${dbDuring.autoanalyzes} autoanalyze(s)`);
    const cores = (x: StallWindow) => `cores ${x.busyPct}% busy (gateway ${x.gatewayPct}%, postgres ${x.postgresPct}%, generator ${x.generatorPct}%, other ${x.otherPct}% of a core); ` +
      `waiting: ${Object.entries(x.waits).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}; ${x.opened} connection(s) opened`;
    log(`  window: ${cores(stalls.window)}`);
    for (const x of stalls.worstSlots) log(`  slot ${(x.atMs / 1000).toFixed(1)}s (${x.slow} slow, up to ${x.maxMs} ms): ${cores(x)}`);
  }
}

interface DatabaseActivity { checkpoints: number; checkpointSyncMs: number; checkpointWriteMs: number; buffersCheckpoint: number; autovacuums: number; autoanalyzes: number }

/** The server's checkpoint counters (cluster-wide: a checkpoint stalls every database's commits)
 *  and the bench database's autovacuum and autoanalyze runs. */
async function databaseActivity(db: Db): Promise<DatabaseActivity> {
  const bg = await db.query<{ c: string; sync: string; write: string; buffers: string }>(
    'SELECT (checkpoints_timed + checkpoints_req)::text AS c, checkpoint_sync_time::text AS sync, checkpoint_write_time::text AS write, buffers_checkpoint::text AS buffers FROM pg_stat_bgwriter');
  const av = await db.query<{ v: string; a: string }>('SELECT coalesce(sum(autovacuum_count), 0)::text AS v, coalesce(sum(autoanalyze_count), 0)::text AS a FROM pg_stat_user_tables');
  const b = bg.rows[0];
  return { checkpoints: Number(b.c), checkpointSyncMs: Number(b.sync), checkpointWriteMs: Number(b.write), buffersCheckpoint: Number(b.buffers), autovacuums: Number(av.rows[0].v), autoanalyzes: Number(av.rows[0].a) };
}

function activityDelta(a: DatabaseActivity, b: DatabaseActivity): DatabaseActivity {
  return Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Math.round(v - a[k as keyof DatabaseActivity])])) as unknown as DatabaseActivity;
}

const round = (l: Latency): Latency => Object.fromEntries(Object.entries(l).map(([k, v]) => [k, Number(v.toFixed(3))])) as unknown as Latency;

// ------------------------------------------------------------------ a slow PSP over HTTP

/**
 * Established TCP connections to `port` on this machine (the gateway's connections to the PSP
 * simulator), sampled every 100 ms: how many PSP calls the gateway's HTTP client had open at once.
 */
class ConnectionSampler {
  private timer: NodeJS.Timeout | undefined;
  private readonly counts: number[] = [];
  constructor(private readonly port: number) {}
  start() {
    this.timer = setInterval(() => this.counts.push(this.count()), 100);
  }
  stop(): { max: number; median: number } {
    clearInterval(this.timer);
    return { max: Math.max(0, ...this.counts), median: this.counts.length ? median(this.counts) : 0 };
  }
  private count(): number {
    const hex = this.port.toString(16).toUpperCase().padStart(4, '0');
    let n = 0;
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
      let text = '';
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        // remote address's port is ours, state 01 = ESTABLISHED
        if (f.length > 3 && f[2].endsWith(`:${hex}`) && f[3] === '01') n++;
      }
    }
    return n;
  }
}

/**
 * The gateway's open transactions on `url`'s database (its connections, application_name
 * `settle`; not the bench's own ANALYZE), sampled every 100 ms from pg_stat_activity: the oldest
 * one's age, and what it was doing. A transaction (a pooled connection) held across a PSP call would live at
 * least as long as the PSP's fastest answer.
 */
class TransactionSampler {
  private timer: NodeJS.Timeout | undefined;
  private client: pg.Client | undefined;
  private busy = false;
  private maxAgeMs = 0;
  private samples = 0;
  /** What the oldest transaction seen was doing when it was seen. */
  private oldest: { state: string; waitEvent: string | null; query: string; applicationName: string } | undefined;
  constructor(private readonly url: string) {}
  async start() {
    this.client = new pg.Client({ connectionString: this.url });
    await this.client.connect();
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.client!.query<{ age: number; state: string; wait_event: string | null; query: string; application_name: string }>(
        `SELECT extract(epoch FROM clock_timestamp() - xact_start) * 1000 AS age, state, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query, application_name
         FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'settle' AND backend_type = 'client backend' AND xact_start IS NOT NULL
         ORDER BY xact_start LIMIT 1`,
      ).then((r) => {
        this.samples++;
        const row = r.rows[0];
        if (row && Number(row.age) > this.maxAgeMs) {
          this.maxAgeMs = Number(row.age);
          this.oldest = { state: row.state, waitEvent: row.wait_event, query: row.query, applicationName: row.application_name };
        }
      }, () => {}).finally(() => (this.busy = false));
    }, 100);
  }
  async stop(): Promise<{ oldestTransactionMs: number; samples: number; oldest?: TransactionSampler['oldest'] }> {
    clearInterval(this.timer);
    await this.client?.end().catch(() => {});
    return { oldestTransactionMs: Number(this.maxAgeMs.toFixed(1)), samples: this.samples, oldest: this.oldest };
  }
}

/**
 * The gateway calling the PSP simulator over HTTP, answering each refund in 200–400 ms, with 512
 * concurrent refund clients; meanwhile a reader GETs other payments. No database connection is
 * held across the PSP call, so throughput should follow min(clients / PSP latency, the fast-PSP
 * peak), and the reads should not wait for PSP calls.
 */
async function slowPsp(load: LoadGenerator) {
  const temp = await createTempDatabase('slowpsp');
  const dataDir = mkdtempSync(join(tmpdir(), 'settle-bench-'));
  const db = createPostgresDb({ connectionString: temp.url, max: 4 });
  let gw: Server | undefined;
  let sim: Server | undefined;
  try {
    sim = await spawnPspSim();
    const faults = await fetch(`${sim.url}/_sim/faults`, {
      method: 'PUT', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ latency_ms: SLOW_PSP_MS[0], latency_max_ms: SLOW_PSP_MS[1], ops: ['refund', 'refund_status'] }),
    });
    if (!faults.ok) throw new Error(`psp-sim refused the latency range: ${faults.status} ${await faults.text()}`);
    log(`slow PSP: psp-sim pid ${sim.pid} at ${sim.url}, refunds answered in ${SLOW_PSP_MS[0]}–${SLOW_PSP_MS[1]} ms; seeding ${SLOW_PSP_PAYMENTS} payments`);
    const m = await createMerchant(db, dataDir, { base_url: sim.url });
    await seedPayments(temp.url, m, 's', 1, SLOW_PSP_PAYMENTS, UNIFORM_AMOUNT, true);
    await seedPayments(temp.url, m, 'r', 1, 1000, UNIFORM_AMOUNT);
    // the fast-PSP peak: this run's closed-loop peak, or measured here with the in-process PSP
    const peaks = series.filter((s) => s.id.startsWith('pg-uniform-c'));
    const fast = peaks.length ? undefined : await createMerchant(db, dataDir);
    if (fast) await seedPayments(temp.url, fast, 'f', 1, 20_000, UNIFORM_AMOUNT, true);
    await db.query('ANALYZE');
    gw = await spawnGateway({ databaseUrl: temp.url, dataDir, poolSize, nodeArgs, env: { SETTLE_SHUTDOWN_DELAY_MS: '0' } });
    currentDbUrl = temp.url;
    // with the in-process PSP (no PSP wait at all) the same sampler gives the control figure: how
    // old the gateway's transactions get on this machine at this load without any PSP call
    let fastTransactions: Awaited<ReturnType<TransactionSampler['stop']>> | undefined;
    if (fast) {
      const control = new TransactionSampler(temp.url);
      await control.start();
      const { r, rss } = await httpRun(load, gw, fast.key, { type: 'refunds', paymentIds: shuffled(Array.from({ length: 20_000 }, (_, i) => paymentId('f', i + 1)), 5), keyPrefix: 'fast' },
        window(64, gw), true);
      fastTransactions = await control.stop();
      log(`  oldest open transaction with the in-process PSP ${fastTransactions.oldestTransactionMs} ms: ${JSON.stringify(fastTransactions.oldest)}`);
      const s = seriesOf({ id: 'pg-slowpsp-fast-c64', label: 'refunds, in-process PSP (fast peak)', kind: 'system', backend: 'postgres', workload: 'full refunds, in-process PSP, same gateway', concurrency: 64 }, r, rss);
      series.push(await verified(db, s));
      logSeries(s);
    }
    const fastPeak = fast ? series.at(-1)! : peaks.reduce((a, b) => (b.rps > a.rps ? b : a));

    const meanPspS = (SLOW_PSP_MS[0] + SLOW_PSP_MS[1]) / 2 / 1000;
    const bound = Math.min(SLOW_PSP_CONCURRENCY / meanPspS, fastPeak.rps);
    const conns = new ConnectionSampler(Number(new URL(sim.url).port));
    conns.start();
    const txs = new TransactionSampler(temp.url);
    await txs.start();
    const readPaths = Array.from({ length: 1000 }, (_, i) => `/v1/payments/${paymentId('r', i + 1)}`);
    // Each of the 512 clients waits at least 512 / throughput per refund: the warm-up must hold a
    // few such rounds and the window many, or no refund completes in it (on a busy machine one
    // round takes seconds).
    const roundMs = (1000 * SLOW_PSP_CONCURRENCY) / Math.max(1, bound);
    const w = window(SLOW_PSP_CONCURRENCY, gw, {
      warmupMs: Math.min(30_000, Math.max(WARMUP_MS, 3000, 2 * roundMs)),
      durationMs: Math.min(60_000, Math.max(DURATION_MS, 5000, 4 * roundMs)),
      processes: [{ label: 'psp-sim', pids: [sim.pid] }],
    });
    const { r, rss, rssByPid } = await httpRun(load, gw, m.key, { type: 'refunds', paymentIds: shuffled(Array.from({ length: SLOW_PSP_PAYMENTS }, (_, i) => paymentId('s', i + 1)), 11), keyPrefix: 'slow' },
      w, true, undefined, { reader: { paths: readPaths, concurrency: READER_CONCURRENCY }, rssPids: [gw.pid, sim.pid] });
    const pspConnections = conns.stop();
    const transactions = await txs.stop();
    log(`  oldest open transaction ${transactions.oldestTransactionMs} ms: ${JSON.stringify(transactions.oldest)}`);
    const s = seriesOf({ id: `pg-slowpsp-c${SLOW_PSP_CONCURRENCY}`, label: `refunds, PSP over HTTP ${SLOW_PSP_MS[0]}–${SLOW_PSP_MS[1]} ms`, kind: 'system', backend: 'postgres',
      workload: `full refunds, sandbox connector → psp-sim over HTTP answering in ${SLOW_PSP_MS[0]}–${SLOW_PSP_MS[1]} ms; ${READER_CONCURRENCY} readers GET other payments`, concurrency: SLOW_PSP_CONCURRENCY }, r, rss);
    // the simulator is not a gateway process: its memory is reported beside, not in the goal
    s.peakRssMb = rssByPid?.[gw.pid] ?? rss;
    const reads = r.reads!;
    s.extra = {
      pspLatencyMs: SLOW_PSP_MS, meanPspLatencyMs: meanPspS * 1000, fastPeakRps: Number(fastPeak.rps.toFixed(1)), fastPeakSeries: fastPeak.id,
      boundRps: Number(bound.toFixed(1)), ratioToBound: Number((s.rps / bound).toFixed(3)),
      reads: { count: reads.latencies.length, errors: reads.errors, errorSamples: reads.errorSamples, latencyMs: round(latencyOf(reads.latencies)) },
      warmupMs: w.warmupMs, durationMs: w.durationMs, carriedOver: r.carriedOver ?? null,
      transactions, ...(fastTransactions ? { transactionsWithInProcessPsp: fastTransactions } : {}), pspConnections, expectedConcurrentPspCalls: Number((s.rps * meanPspS).toFixed(0)),
      pspSimCpuMsPerRefund: r.processCpuMs && r.count ? Number((r.processCpuMs['psp-sim'] / r.count).toFixed(3)) : null,
      pspSimPeakRssMb: rssByPid?.[sim.pid] ?? null,
    };
    if (reads.errors) s.errors += reads.errors;
    series.push(await verified(db, s));
    logSeries(s);
    log(`  bound min(${SLOW_PSP_CONCURRENCY} / ${meanPspS} s, fast peak ${fastPeak.rps.toFixed(0)}) = ${bound.toFixed(0)}/s → ${(s.rps / bound).toFixed(2)}; ` +
      `reads p50/p99 ${latencyOf(reads.latencies).p50.toFixed(1)} / ${latencyOf(reads.latencies).p99.toFixed(1)} ms (${reads.latencies.length}); ` +
      `connections to the PSP max ${pspConnections.max} (expected in flight ≈ ${(s.rps * meanPspS).toFixed(0)})`);
  } finally {
    currentDbUrl = undefined;
    await gw?.stop();
    await sim?.stop();
    await db.close();
    await temp.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ scale-out behind PgBouncer

/**
 * 1, 2 and 4 API processes (`serve --role api`) and one worker (`--role worker`) on one database
 * through PgBouncer in transaction pooling mode (named prepared statements off), the load spread
 * round-robin over the API processes in use. The pooler's server pool is the single gateway's
 * default pool size, so the database sees the same number of connections in every step.
 */
async function scaleOut(load: LoadGenerator) {
  if (!pgbouncerBinary()) {
    notes.push('scale-out not run: pgbouncer is not installed (apt-get install pgbouncer)');
    log('scale-out: pgbouncer not installed, skipped');
    return;
  }
  const temp = await createTempDatabase('scale');
  const dataDir = mkdtempSync(join(tmpdir(), 'settle-bench-'));
  const db = createPostgresDb({ connectionString: temp.url, max: 4 });
  const procs: Server[] = [];
  const dirs: string[] = [];
  let bouncer: PgBouncer | undefined;
  try {
    log(`scale-out: seeding ${SCALE_PAYMENTS} payments`);
    const m = await createMerchant(db, dataDir);
    await seedPayments(temp.url, m, 'x', 1, SCALE_PAYMENTS, UNIFORM_AMOUNT, true);
    await db.query('ANALYZE');
    bouncer = await startPgBouncer(temp.url, { poolSize: FLOOR_POOL });
    const env = { SETTLE_DB_PREPARED_STATEMENTS: 'false', SETTLE_SHUTDOWN_DELAY_MS: '0' };
    const apis: Server[] = [];
    for (let i = 0; i < Math.max(...SCALE_PROCESSES); i++) {
      const dir = mkdtempSync(join(tmpdir(), 'settle-bench-'));
      dirs.push(dir);
      apis.push(await spawnGateway({ databaseUrl: bouncer.url, dataDir: dir, poolSize, nodeArgs, args: ['--role', 'api'], env }));
      procs.push(apis.at(-1)!);
    }
    const wdir = mkdtempSync(join(tmpdir(), 'settle-bench-'));
    dirs.push(wdir);
    const worker = await spawnGateway({ databaseUrl: bouncer.url, dataDir: wdir, poolSize, nodeArgs, args: ['--role', 'worker'], env });
    procs.push(worker);
    log(`scale-out: pgbouncer (transaction pooling, ${FLOOR_POOL} server connections) pid ${bouncer.proc.pid}, API pids ${apis.map((a) => a.pid).join(', ')}, worker ${worker.pid}`);
    currentDbUrl = temp.url; // the database's own CPU is read directly, not through the pooler
    const pool = new PaymentPool(shuffled(Array.from({ length: SCALE_PAYMENTS }, (_, i) => paymentId('x', i + 1)), 99));
    const names = new Map<number, string>([...apis.map((a, i) => [a.pid, `api ${i + 1}`] as [number, string]), [worker.pid, 'worker']]);
    let base: Series | undefined;
    for (const k of SCALE_PROCESSES) {
      const active = apis.slice(0, k);
      const allPids = procs.map((p) => p.pid);
      const w = window(SCALE_CONCURRENCY, active[0], { processes: [{ label: 'gateways', pids: allPids }, { label: 'pgbouncer', pids: [bouncer.proc.pid!] }] });
      const groupedBefore = await Promise.all(active.map(refundTransactions));
      const { r, rss, rssByPid } = await httpRun(load, active[0], m.key, { type: 'refunds', paymentIds: pool.peek(30_000), keyPrefix: `scale${k}` }, w, true, undefined,
        { urls: active.map((a) => a.url), rssPids: allPids });
      pool.consume(r.consumed);
      // refund steps per database transaction over the active processes (warm-up included)
      recordGrouping(`pg-scale-${k}`, groupedBefore, await Promise.all(active.map(refundTransactions)));
      const s = seriesOf({ id: `pg-scale-${k}`, label: `refunds, ${k} API process${k > 1 ? 'es' : ''} + worker, PgBouncer`, kind: 'system', backend: 'postgres',
        workload: `full refunds round-robin over ${k} API process(es), one worker, PgBouncer transaction pooling (${FLOOR_POOL} server connections)`, concurrency: SCALE_CONCURRENCY }, r, rss);
      // every gateway process's CPU (idle ones cost next to nothing), not only the first one's
      s.gatewayCpuMsPerRequest = r.processCpuMs && r.count ? r.processCpuMs.gateways / r.count : null;
      base ??= s;
      s.extra = {
        apiProcesses: k,
        refundStepsPerTransaction: grouping[`pg-scale-${k}`].perTransaction,
        rssMbByProcess: Object.fromEntries(Object.entries(rssByPid ?? {}).map(([pid, mb]) => [names.get(Number(pid)) ?? pid, Number(mb.toFixed(1))])),
        pgbouncerCpuMsPerRefund: r.processCpuMs && r.count ? Number((r.processCpuMs.pgbouncer / r.count).toFixed(3)) : null,
        rpsRatioToOne: Number((s.rps / base.rps).toFixed(3)),
        postgresCpuRatioToOne: s.postgresCpuMsPerRequest && base.postgresCpuMsPerRequest ? Number((s.postgresCpuMsPerRequest / base.postgresCpuMsPerRequest).toFixed(3)) : null,
      };
      series.push(await verified(db, s));
      logSeries(s);
      log(`  ${k} API process(es): ×${(s.rps / base.rps).toFixed(2)} of one; postgres CPU per refund ×${((s.postgresCpuMsPerRequest ?? NaN) / (base.postgresCpuMsPerRequest ?? NaN)).toFixed(2)}`);
    }
  } finally {
    currentDbUrl = undefined;
    await Promise.all(procs.map((p) => p.stop()));
    await bouncer?.stop();
    await db.close();
    await temp.drop();
    for (const d of [dataDir, ...dirs]) rmSync(d, { recursive: true, force: true });
  }
}

/** --bare-schema: drops the constraints and indexes named above (see BARE_SCHEMA). */
async function stripSchema(db: Db): Promise<void> {
  const constraints = (await db.query<{ t: string; c: string }>(
    `SELECT conrelid::regclass::text AS t, conname AS c FROM pg_constraint
     WHERE contype IN ('c', 'f') AND connamespace = 'public'::regnamespace`)).rows;
  for (const { t, c } of constraints) await db.query(`ALTER TABLE ${t} DROP CONSTRAINT ${c}`);
  for (const index of BARE_DROPPED_INDEXES) await db.query(`DROP INDEX IF EXISTS ${index}`);
  const text = `bare schema: ${constraints.length} CHECK and foreign-key constraints and ${BARE_DROPPED_INDEXES.length} secondary indexes dropped — an upper bound, not the gateway`;
  notes.push(text);
  log(text);
}

// ------------------------------------------------------------------ growth: 10k vs 1M payments

/** One result from several measured blocks of the same series. */
function merged(parts: LoadResult[]): LoadResult {
  const latencies = new Float64Array(parts.reduce((n, p) => n + p.latencies.length, 0));
  let at = 0;
  for (const p of parts) {
    latencies.set(p.latencies, at);
    at += p.latencies.length;
  }
  const statuses: Record<string, number> = {};
  for (const p of parts) for (const [k, v] of Object.entries(p.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  const sum = (f: (p: LoadResult) => number) => parts.reduce((n, p) => n + f(p), 0);
  const gateways = parts.map((p) => p.gateway).filter((g) => g !== undefined);
  return {
    count: sum((p) => p.count),
    elapsedMs: sum((p) => p.elapsedMs),
    latencies,
    statuses,
    errors: sum((p) => p.errors),
    errorSamples: parts.flatMap((p) => p.errorSamples).slice(0, 5),
    replayed: 0,
    replaysSent: 0,
    consumed: sum((p) => p.consumed),
    warmupCount: sum((p) => p.warmupCount),
    carriedOver: { count: sum((p) => p.carriedOver?.count ?? 0), maxMs: Math.max(0, ...parts.map((p) => p.carriedOver?.maxMs ?? 0)) },
    gateway: gateways.length
      ? {
          cpuMs: gateways.reduce((n, g) => n + g.cpuMs, 0),
          sysMs: gateways.reduce((n, g) => n + g.sysMs, 0),
          eventLoopP99Ms: Math.max(...gateways.map((g) => g.eventLoopP99Ms ?? 0)),
          eventLoopMaxMs: Math.max(...gateways.map((g) => g.eventLoopMaxMs ?? 0)),
        }
      : undefined,
    machineBusyPct: sum((p) => p.machineBusyPct) / parts.length,
    postgresCpuMs: sum((p) => p.postgresCpuMs),
    backgroundBusyPct: Math.max(...parts.map((p) => p.backgroundBusyPct)),
  };
}

/**
 * The same refunds with 10,000 and with 1,000,000 payments in the table: two databases, two
 * gateways, measured in alternating blocks (small, large, small, large …) so that a machine
 * that gets busier or quieter meanwhile shifts both sides alike.
 */
async function postgresGrowth(load: LoadGenerator) {
  const sides = [
    { size: GROWTH_SMALL, temp: await createTempDatabase('growth_s') },
    { size: GROWTH_LARGE, temp: await createTempDatabase('growth_l') },
  ].map((x) => ({ ...x, dataDir: mkdtempSync(join(tmpdir(), 'settle-bench-')), db: createPostgresDb({ connectionString: x.temp.url, max: 4 }),
    gw: undefined as Server | undefined, m: undefined as BenchMerchant | undefined, ids: [] as string[], next: 0, parts: [] as LoadResult[], rss: 0 }));
  try {
    for (const side of sides) {
      log(`growth: seeding ${side.size.toLocaleString('en')} payments`);
      const t0 = Date.now();
      side.m = await createMerchant(side.db, side.dataDir);
      await seedPayments(side.temp.url, side.m, 'g', 1, side.size, UNIFORM_AMOUNT, side.size > 100_000);
      await side.db.query('ANALYZE');
      log(`  seeded in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      side.ids = shuffled(Array.from({ length: side.size }, (_, i) => paymentId('g', i + 1)), side.size).slice(0, 20_000);
      side.gw = await spawnGateway({ databaseUrl: side.temp.url, dataDir: side.dataDir, poolSize, nodeArgs });
    }
    const BLOCKS = quick ? 2 : 4;
    for (let b = 0; b < BLOCKS; b++) {
      for (const side of sides) {
        currentDbUrl = side.temp.url;
        const { r, rss } = await httpRun(load, side.gw!, side.m!.key, { type: 'refunds', paymentIds: side.ids.slice(side.next), keyPrefix: `growth-${side.size}-${b}` },
          window(1, side.gw, { warmupMs: b === 0 ? WARMUP_MS : 300, durationMs: quick ? 1500 : 2000 }), true);
        side.next += r.consumed;
        side.parts.push(r);
        side.rss = Math.max(side.rss, rss ?? 0);
      }
    }
    const out: Series[] = [];
    for (const side of sides) {
      const s = seriesOf({ id: `pg-growth-${side.size}`, label: `refunds, ${side.size.toLocaleString('en')} payments`, kind: 'system', backend: 'postgres',
        workload: `full refunds, table of ${side.size.toLocaleString('en')} payments (${BLOCKS} alternating blocks)`, concurrency: 1 }, merged(side.parts), side.rss);
      series.push(await verified(side.db, s));
      logSeries(s);
      out.push(s);
    }
    const [s, l] = out;
    growth.table = { smallP50Ms: s.latencyMs.p50, largeP50Ms: l.latencyMs.p50, smallMeanMs: s.latencyMs.mean, largeMeanMs: l.latencyMs.mean,
      ratio: l.latencyMs.p50 / s.latencyMs.p50, small: GROWTH_SMALL, large: GROWTH_LARGE,
      blocks: sides.map((x) => ({ size: x.size, p50PerBlockMs: x.parts.map((p) => median(p.latencies)) })) };
  } finally {
    currentDbUrl = undefined;
    for (const side of sides) {
      await side.gw?.stop();
      await side.db.close();
      await side.temp.drop();
      rmSync(side.dataDir, { recursive: true, force: true });
    }
  }
}

// ------------------------------------------------------------------ embedded PGlite

async function pglite(load: LoadGenerator) {
  const dataDir = mkdtempSync(join(tmpdir(), 'settle-bench-lite-'));
  let gw: Server | undefined;
  try {
    log(`pglite: seeding ${PGLITE_PAYMENTS.toLocaleString('en')} payments`);
    let db = await createPgliteDb(join(dataDir, 'pgdata'));
    const m: BenchMerchant = await createMerchant(db, dataDir);
    await seedPayments(db, m, 'l', 1, PGLITE_PAYMENTS, UNIFORM_AMOUNT);
    await db.query('ANALYZE');
    await db.close();
    gw = await spawnGateway({ dataDir, nodeArgs });
    const pool = new PaymentPool(shuffled(Array.from({ length: PGLITE_PAYMENTS }, (_, i) => paymentId('l', i + 1)), 7));
    for (const c of [1, 16]) {
      const { r, rss } = await httpRun(load, gw, m.key, { type: 'refunds', paymentIds: pool.peek(), keyPrefix: `lite-c${c}` }, window(c, gw), true, `pglite-uniform-c${c}`);
      pool.consume(r.consumed);
      const s = seriesOf({ id: `pglite-uniform-c${c}`, label: 'refunds uniform', kind: 'system', backend: 'pglite', workload: `full refunds over ${PGLITE_PAYMENTS.toLocaleString('en')} payments`, concurrency: c }, r, rss);
      series.push(s);
      logSeries(s);
    }
    await gw.stop();
    gw = undefined;
    db = await createPgliteDb(join(dataDir, 'pgdata'));
    const c = await checkCorrectness(db);
    for (const s of series.filter((x) => x.backend === 'pglite')) s.correctness = c;
    if (!c.ok) log(`CORRECTNESS FAILED after pglite: ${JSON.stringify(c).slice(0, 2000)}`);
    await db.close();
  } finally {
    await gw?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ goals

function goals(): Goal[] {
  const out: Goal[] = [];
  const get = (id: string) => series.find((s) => s.id === id);
  const add = (id: string, description: string, target: string, measured: string, pass: boolean) => out.push({ id, description, target, measured, pass });
  const sys64 = get('pg-uniform-c64');
  for (const c of CONCURRENCY) {
    const s = get(`pg-uniform-c${c}`);
    const fdb = get(`fdb-c${c}`);
    const fh = get(`fhttp-c${c}`);
    if (s) s.ratios = { ...(fdb ? { db: s.rps / fdb.rps } : {}), ...(fh ? { http: s.rps / fh.rps } : {}) };
  }
  if (sys64?.ratios?.db !== undefined) add('r_db', 'R_db = system / F_db at concurrency 64', '≥ 0.70', sys64.ratios.db.toFixed(2), sys64.ratios.db >= 0.7);
  if (sys64) {
    add('throughput', 'uniform refunds/s on Postgres (c=64)', '≥ 1000', sys64.rps.toFixed(0), sys64.rps >= 1000);
    add('p99', 'p99 latency at concurrency 64', '≤ 50 ms', `${sys64.latencyMs.p99.toFixed(1)} ms`, sys64.latencyMs.p99 <= 50);
  }
  const systems = series.filter((s) => s.kind === 'system');
  const errors = series.reduce((n, s) => n + s.errors, 0);
  add('errors', 'errors, every series', '0', String(errors), errors === 0);
  const rssOf = (list: Series[]) => Math.max(0, ...list.map((s) => s.peakRssMb ?? 0));
  const onPostgres = systems.filter((s) => s.backend === 'postgres');
  const onPglite = systems.filter((s) => s.backend === 'pglite');
  if (onPostgres.length) {
    const top = onPostgres.reduce((a, b) => ((b.peakRssMb ?? 0) > (a.peakRssMb ?? 0) ? b : a));
    add('rss', 'gateway peak RSS, every gateway process of every Postgres series', '≤ 300 MB', `${rssOf(onPostgres).toFixed(0)} MB (${top.label}, c=${top.concurrency})`, rssOf(onPostgres) <= 300);
  }
  // the embedded database lives in the gateway's own memory: reported apart, same bound
  if (onPglite.length) add('rss_pglite', 'gateway peak RSS with embedded PGlite (database in-process)', '≤ 300 MB', `${rssOf(onPglite).toFixed(0)} MB`, rssOf(onPglite) <= 300);
  const hot = get('pg-hot-c64');
  if (hot) add('hot', 'one hot payment, refunds/s', '≥ 200', hot.rps.toFixed(0), hot.rps >= 200);
  const lite = series.filter((s) => s.backend === 'pglite').sort((a, b) => b.rps - a.rps)[0];
  if (lite) add('pglite', `embedded PGlite refunds/s (best: c=${lite.concurrency})`, '≥ 500', lite.rps.toFixed(0), lite.rps >= 500);
  const gt = growth.table as { smallP50Ms: number; largeP50Ms: number; ratio: number; large: number } | undefined;
  if (gt) add('growth_table', `p50 latency, ${(gt.large).toLocaleString('en')} vs 10,000 payments`, '≤ 1.20×', `${gt.ratio.toFixed(2)}× (${gt.smallP50Ms.toFixed(2)} → ${gt.largeP50Ms.toFixed(2)} ms)`, gt.ratio <= 1.2);
  const nth = growth.nth as { medianFirst50Ms: number; medianLast50Ms: number; ratio: number } | undefined;
  if (nth) add('growth_nth', `${NTH_REFUNDS}th vs 1st partial refund of one payment (median of 50)`, '≤ 1.20×', `${nth.ratio.toFixed(2)}× (${nth.medianFirst50Ms.toFixed(2)} → ${nth.medianLast50Ms.toFixed(2)} ms)`, nth.ratio <= 1.2);
  // open loop, slow PSP, scale-out
  const open50 = get('pg-open-50');
  if (open50) {
    const x = open50.extra as { targetRate: number; correctedMs: Latency; uncorrectedMs: Latency };
    const open80 = get('pg-open-80')?.extra as { correctedMs: Latency } | undefined;
    add('open_p99', `open loop at 50% of peak (${x.targetRate}/s): p99 from the intended send time`, '≤ 25 ms',
      `${x.correctedMs.p99.toFixed(1)} ms (uncorrected ${x.uncorrectedMs.p99.toFixed(1)}${open80 ? `; at 80%: ${open80.correctedMs.p99.toFixed(1)}` : ''})`, x.correctedMs.p99 <= 25);
  }
  const opens = series.filter((s) => s.id.startsWith('pg-open-'));
  if (opens.length) {
    const xs = opens.map((s) => s.extra as { targetRate: number; sentRate: number; generatorLagMs: Latency });
    // every request due in the window is sent (the loop never skips one); how late is what counts
    const lag = Math.max(...xs.map((x) => x.generatorLagMs.p99));
    add('open_generator', 'open-loop generator kept its schedule: send lag p99 (actual − intended send time), every rate', '≤ 5 ms',
      `${lag.toFixed(2)} ms`, lag <= 5);
  }
  const slow = series.find((s) => s.id.startsWith('pg-slowpsp-c'));
  if (slow) {
    const x = slow.extra as { boundRps: number; ratioToBound: number; reads: { latencyMs: Latency; count: number } };
    add('slowpsp', `PSP over HTTP in ${SLOW_PSP_MS[0]}–${SLOW_PSP_MS[1]} ms, ${SLOW_PSP_CONCURRENCY} clients: refunds/s ÷ min(clients / mean PSP latency, fast-PSP peak)`, '≥ 0.80',
      `${x.ratioToBound.toFixed(2)} (${slow.rps.toFixed(0)} of ${x.boundRps.toFixed(0)}/s)`, x.ratioToBound >= 0.8);
    const { transactions: t, transactionsWithInProcessPsp: c } = slow.extra as { transactions: { oldestTransactionMs: number; samples: number }; transactionsWithInProcessPsp?: { oldestTransactionMs: number } };
    add('slowpsp_tx', `no database transaction open across a PSP call: the oldest open transaction seen (pg_stat_activity, every 100 ms)`, `< ${SLOW_PSP_MS[0]} ms`,
      `${t.oldestTransactionMs.toFixed(0)} ms (${t.samples} samples)${c ? `; with the in-process PSP ${c.oldestTransactionMs.toFixed(0)} ms` : ''}`, t.samples > 0 && t.oldestTransactionMs < SLOW_PSP_MS[0]);
    add('slowpsp_reads', `GET of other payments meanwhile: p99 below the PSP's fastest answer (a read that waited for a PSP call would take ≥ ${SLOW_PSP_MS[0]} ms)`, `< ${SLOW_PSP_MS[0]} ms`,
      `${x.reads.latencyMs.p99.toFixed(1)} ms (${x.reads.count} reads)`, x.reads.count > 0 && x.reads.latencyMs.p99 < SLOW_PSP_MS[0]);
  }
  const scaled = series.filter((s) => s.id.startsWith('pg-scale-'));
  if (scaled.length > 1) {
    const last = scaled.at(-1)!;
    const x = last.extra as { apiProcesses: number; rpsRatioToOne: number; postgresCpuRatioToOne: number | null };
    add('scaleout', `${x.apiProcesses} API processes behind PgBouncer vs 1: refunds/s ratio (no spare cores here: the goal is not to lose)`, '≥ 0.80',
      `${scaled.map((s) => `${(s.extra as { apiProcesses: number }).apiProcesses}: ${(s.extra as { rpsRatioToOne: number }).rpsRatioToOne.toFixed(2)}`).join(', ')} (postgres CPU/refund ×${x.postgresCpuRatioToOne?.toFixed(2) ?? '?'})`,
      x.rpsRatioToOne >= 0.8);
  }

  const checked = series.filter((s) => s.correctness);
  const bad = checked.filter((s) => !s.correctness!.ok);
  add('correctness', 'ledger verify, refunds ≤ captured, one booking per refund (after every run)', 'all pass', `${checked.length - bad.length}/${checked.length} pass`, bad.length === 0 && checked.length > 0);

  // why a goal was missed, from the figures themselves
  const cpuPerRefund = (s: Series) => (s.gatewayCpuMsPerRequest ?? NaN) + (s.postgresCpuMsPerRequest ?? NaN);
  const note = (id: string, text: string) => {
    const g = out.find((x) => x.id === id);
    if (g && !g.pass) g.note = text;
  };
  const fdb64 = get('fdb-c64');
  if (fdb64 && sys64) {
    note('throughput', `F_db, the same SQL replayed with no HTTP and no application, reached ${fdb64.rps.toFixed(0)}/s at c=64 ` +
      `(postgres ${fdb64.postgresCpuMsPerRequest?.toFixed(2) ?? '?'} ms CPU per refund); the system needs gateway ` +
      `${sys64.gatewayCpuMsPerRequest?.toFixed(2) ?? '?'} + postgres ${sys64.postgresCpuMsPerRequest?.toFixed(2) ?? '?'} ms of CPU per refund on ${cpus().length} cores`);
  }
  if (sys64) {
    note('p99', `a closed loop of 64 clients waits 64 / throughput on average: ${(64_000 / sys64.rps).toFixed(0)} ms at ${sys64.rps.toFixed(0)}/s; ` +
      'p99 ≤ 50 ms at c=64 needs ≥ 1,280 refunds/s');
  }
  if (hot) note('hot', 'every refund of one payment holds its row lock through two commits (hold, then finish): the refunds of one payment run one at a time');
  if (lite) note('pglite', 'PGlite runs one statement at a time in the gateway\'s own thread, through its WASM backend: the gateway and its database share one core');
  if (open50) {
    // half the peak's rate is not half its work: the figures of this run that say how busy the machine was
    const peakSeries = get((open50.extra as { peakSeries: string }).peakSeries);
    const steps = (id: string) => grouping[id]?.perTransaction ?? '?';
    const lone = get('pg-uniform-c1');
    note('open_p99', 'latency from the intended send time counts the wait of a request the gateway could not take yet (compare the uncorrected figure and the generator lag). ' +
      (peakSeries ? `At 50% of the peak's rate a refund took ${cpuPerRefund(open50).toFixed(2)} ms of gateway + postgres CPU against ${cpuPerRefund(peakSeries).toFixed(2)} ms at the peak ` +
        `(refund steps per transaction ${steps(open50.id)} against ${steps(peakSeries.id)}), and the machine was ${open50.machineBusyPct.toFixed(0)}% busy against ${peakSeries.machineBusyPct.toFixed(0)}%` : '') +
      (lone ? `; one client alone (c=1, nothing queued) had p99 ${lone.latencyMs.p99.toFixed(1)} ms in this run` : ''));
  }
  if (slow) {
    const x = slow.extra as { pspConnections: { max: number }; expectedConcurrentPspCalls: number; fastPeakSeries: string; pspSimCpuMsPerRefund: number | null };
    const fast = get(x.fastPeakSeries);
    note('slowpsp_tx', 'an open transaction also ages while a starved gateway (see its event-loop delay) has not yet sent its next statement; with --only=slowpsp the same sampler runs during the in-process-PSP series as the control');
    note('slowpsp_reads', 'a read also waits for CPU and for a pooled connection behind the refund steps queued before it when the gateway is saturated: the oldest transaction (slowpsp_tx) is the direct check');
    note('slowpsp', `the gateway held at most ${x.pspConnections.max} connections to the PSP for ≈${x.expectedConcurrentPspCalls} calls in flight (refunds/s × mean PSP latency)` +
      (fast ? `; a refund through the simulator over HTTP took ${(cpuPerRefund(slow) + (x.pspSimCpuMsPerRefund ?? 0)).toFixed(2)} ms of gateway + postgres + simulator CPU against ` +
        `${cpuPerRefund(fast).toFixed(2)} ms at the fast peak, on the same ${cpus().length} cores (machine ${slow.machineBusyPct.toFixed(0)}% busy against ${fast.machineBusyPct.toFixed(0)}%)` : ''));
  }
  note('scaleout', `${cpus().length} cores run the database, every gateway process, the pooler and the load generator: more processes add no CPU, only more processes to schedule, smaller transaction groups per process and a pooler hop`);
  note('rss_pglite', 'PGlite\'s WASM heap (its shared buffers and catalog caches) lives in the gateway process');
  note('errors', series.filter((x) => x.errors > 0).map((x) => `${x.label} c=${x.concurrency}: ${x.errorSamples[0] ?? ''}`).join('; '));
  return out;
}

/** The open-loop, slow-PSP, scale-out and memory figures, beside the main table. */
function printNewSeries() {
  const opens = series.filter((s) => s.id.startsWith('pg-open-'));
  if (opens.length) {
    console.log('\nOpen loop (refunds on a fixed schedule; p50 / p99 / p99.9 ms from the intended send = corrected, from the actual send = uncorrected):');
    for (const s of opens) {
      const x = s.extra as { share: number; targetRate: number; sentRate: number; peakRps: number; correctedMs: Latency; uncorrectedMs: Latency; generatorLagMs: Latency; connections: number };
      console.log(`  ${pct(x.share)}% of ${x.peakRps.toFixed(0)}/s = ${x.targetRate}/s (sent ${x.sentRate.toFixed(0)}/s, ${s.count} answers): corrected ${ms(x.correctedMs)}, ` +
        `uncorrected ${ms(x.uncorrectedMs)}; generator lag p99 ${x.generatorLagMs.p99.toFixed(2)} max ${x.generatorLagMs.max.toFixed(1)}; ${x.connections} connections; errors ${s.errors}`);
      const d = s.extra as { slow: { slowMs: number; count: number; slots: number; slotsWithSlow: number }; gatewayGc: Record<string, { count: number; totalMs: number; over100ms: number }> | null;
        database: DatabaseActivity };
      const gc = Object.entries(d.gatewayGc ?? {}).map(([k, g]) => `${k} ${g.count}×/${g.totalMs} ms (${g.over100ms} ≥100 ms)`).join(', ');
      console.log(`    slow (> ${d.slow.slowMs} ms): ${d.slow.count} answers in ${d.slow.slotsWithSlow} of ${d.slow.slots} 100-ms slots; gateway GC ${gc || '?'}; ` +
        `database ${d.database.checkpoints} checkpoint(s), sync ${d.database.checkpointSyncMs} ms, ${d.database.autovacuums} autovacuum(s)`);
    }
  }
  const slow = series.find((s) => s.id.startsWith('pg-slowpsp-c'));
  if (slow) {
    const x = slow.extra as { boundRps: number; ratioToBound: number; fastPeakRps: number; reads: { latencyMs: Latency; count: number; errors: number };
      pspConnections: { max: number; median: number }; expectedConcurrentPspCalls: number; pspSimCpuMsPerRefund: number | null; carriedOver: { count: number; maxMs: number } | null };
    const carried = x.carriedOver ? ` (sent in the window; ${x.carriedOver.count} sent during the warm-up and answered in it took up to ${x.carriedOver.maxMs.toFixed(0)} ms)` : '';
    console.log(`\nSlow PSP (psp-sim over HTTP, ${SLOW_PSP_MS[0]}–${SLOW_PSP_MS[1]} ms, ${SLOW_PSP_CONCURRENCY} clients): ${slow.rps.toFixed(0)} refunds/s, p50 ${slow.latencyMs.p50.toFixed(0)} p99 ${slow.latencyMs.p99.toFixed(0)} ms${carried}; ` +
      `bound ${x.boundRps.toFixed(0)}/s (fast peak ${x.fastPeakRps.toFixed(0)}) → ${x.ratioToBound.toFixed(2)}; reads of other payments p50 ${x.reads.latencyMs.p50.toFixed(1)} p99 ${x.reads.latencyMs.p99.toFixed(1)} ms ` +
      `(${x.reads.count}, ${x.reads.errors} failed); oldest open transaction ${(slow.extra as { transactions: { oldestTransactionMs: number } }).transactions.oldestTransactionMs.toFixed(0)} ms; connections to the PSP max ${x.pspConnections.max} median ${x.pspConnections.median} for ≈${x.expectedConcurrentPspCalls} calls in flight`);
  }
  const scaled = series.filter((s) => s.id.startsWith('pg-scale-'));
  if (scaled.length) {
    console.log(`\nScale-out behind PgBouncer (transaction pooling, ${FLOOR_POOL} server connections; c=${SCALE_CONCURRENCY} round-robin; one worker process):`);
    for (const s of scaled) {
      const x = s.extra as { apiProcesses: number; rpsRatioToOne: number; postgresCpuRatioToOne: number | null; pgbouncerCpuMsPerRefund: number | null; refundStepsPerTransaction: number };
      console.log(`  ${x.apiProcesses} API: ${s.rps.toFixed(0)} refunds/s (×${x.rpsRatioToOne.toFixed(2)}), ${x.refundStepsPerTransaction} refund steps per transaction, postgres CPU ${s.postgresCpuMsPerRequest?.toFixed(2) ?? '?'} ms/refund ` +
        `(×${x.postgresCpuRatioToOne?.toFixed(2) ?? '?'}), gateways ${s.gatewayCpuMsPerRequest?.toFixed(2) ?? '?'} ms/refund, pgbouncer ${x.pgbouncerCpuMsPerRefund?.toFixed(2) ?? '?'} ms/refund, p99 ${s.latencyMs.p99.toFixed(1)} ms`);
    }
  }
  const withRss = series.filter((s) => s.peakRssMb !== null);
  if (withRss.length) {
    console.log('\nPeak RSS per series (MB, the largest gateway process; goal ≤ 300): ' +
      withRss.map((s) => `${s.id} ${s.peakRssMb!.toFixed(0)}${s.extra?.rssMbByProcess ? ` [${Object.entries(s.extra.rssMbByProcess as Record<string, number>).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}]` : ''}`).join(', '));
  }
}

// ------------------------------------------------------------------ before / after

/** Each series also present in an earlier report: its figures then and now. */
function compareWith(file: string): string {
  const before = JSON.parse(readFileSync(file, 'utf8')) as { label: string | null; date: string; series: Series[]; statementsPerRefund?: StatementProfile };
  const rows: string[][] = [];
  for (const s of series) {
    const b = before.series.find((x) => x.id === s.id);
    if (!b) continue;
    rows.push([`${s.label} (${s.backend}, c=${s.concurrency})`, b.rps.toFixed(0), s.rps.toFixed(0), `${(s.rps / b.rps).toFixed(2)}×`,
      b.latencyMs.p99.toFixed(1), s.latencyMs.p99.toFixed(1),
      b.gatewayCpuMsPerRequest?.toFixed(2) ?? '—', s.gatewayCpuMsPerRequest?.toFixed(2) ?? '—',
      b.postgresCpuMsPerRequest?.toFixed(2) ?? '—', s.postgresCpuMsPerRequest?.toFixed(2) ?? '—']);
  }
  const head = ['series', 'req/s before', 'after', 'gain', 'p99 before', 'after', 'gw cpu before', 'after', 'pg cpu before', 'after'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const sp = before.statementsPerRefund;
  return [`compared with ${file} (${before.label ?? 'unlabelled'}, ${before.date})` +
    (sp && statementProfile ? `; statements per refund ${sp.statements} → ${statementProfile.statements}, round trips ${sp.roundTrips} → ${statementProfile.roundTrips}` : ''),
  line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

// ------------------------------------------------------------------ main

async function environment() {
  const c = new pg.Client({ connectionString: BENCH_DATABASE_URL });
  let postgres: Record<string, string> = {};
  try {
    await c.connect();
    const r = await c.query(`SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'shared_buffers', 'synchronous_commit', 'fsync', 'max_connections', 'wal_sync_method', 'shared_preload_libraries')`);
    postgres = Object.fromEntries(r.rows.map((row) => [row.name, row.setting]));
  } catch {
    // reported as unknown
  } finally {
    await c.end().catch(() => {});
  }
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    if (execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim()) commit += '+dirty';
  } catch {
    // not a git checkout
  }
  return { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, commit, postgres };
}

async function main() {
  mkdirSync(RESULTS, { recursive: true });
  const env = await environment();
  log(`node ${env.node}, ${env.cpus} cpus, postgres ${env.postgres.server_version ?? '?'} at ${BENCH_DATABASE_URL.replace(/\/\/[^@]*@/, '//')}; pool ${poolSize ?? 'default'}`);
  const load = new LoadGenerator();
  try {
    if (groups.has('http')) await floorHttp(load);
    if (groups.has('pg') || groups.has('open')) await postgresMain(load);
    if (groups.has('slowpsp')) await slowPsp(load);
    if (groups.has('scaleout')) await scaleOut(load);
    if (groups.has('growth')) await postgresGrowth(load);
    if (groups.has('pglite')) await pglite(load);
  } finally {
    load.close();
  }
  const g = goals();
  const seconds = (Date.now() - started) / 1000;
  const report = {
    label: args.label ?? null,
    date: new Date().toISOString(),
    durationSeconds: seconds,
    environment: env,
    settings: { quick, bareSchema: BARE_SCHEMA, warmupMs: WARMUP_MS, durationMs: DURATION_MS, gatewayPoolSize: poolSize ?? `default (${defaultDbPoolSize()})`, floorPoolSize: FLOOR_POOL, cpuProfile: args['cpu-prof'] ? profDir : null, gatewayNodeArgs: [NODE_HEAP_ARG, ...nodeArgs] },
    statementsPerRefund: statementProfile,
    goals: g,
    growth,
    grouping,
    series: series.map((s) => ({ ...s, latencyMs: Object.fromEntries(Object.entries(s.latencyMs).map(([k, v]) => [k, Number(v.toFixed(3))])) })),
    peakRssMbBySeries: Object.fromEntries(series.filter((s) => s.peakRssMb !== null).map((s) => [s.id, Number(s.peakRssMb!.toFixed(1))])),
    pgStatStatements: pgss ?? null,
    recording: recording ? { steps: recording.steps.map((s) => ({ tx: s.tx, statements: s.statements.map((st) => st.text) })) } : null,
    notes,
  };
  const file = join(RESULTS, `${stamp}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2));
  console.log('');
  console.log(table(series, g));
  for (const x of g.filter((y) => y.note)) console.log(`  ${x.id}: ${x.note}`);
  printNewSeries();
  if (statementProfile) {
    console.log(`\nOne refund: ${statementProfile.statements} statements, ${statementProfile.roundTrips} round trips, ${statementProfile.transactions} transactions, ${statementProfile.commits} commits`);
  }
  const grouped = Object.entries(grouping).map(([id, g]) => `${id.replace('-uniform-', ' ')} ${g.perTransaction}`);
  if (grouped.length) console.log(`Refund steps per database transaction (uniform, open-loop and scale-out series): ${grouped.join(', ')}`);
  for (const n of notes) console.log(`note: ${n}`);
  if (args.compare) console.log(`\n${compareWith(args.compare)}`);
  console.log(`\n${g.filter((x) => x.pass).length}/${g.length} goals met; report: ${file} (${seconds.toFixed(0)} s)`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
