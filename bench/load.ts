/**
 * The load generator, run as a child process of the bench (`fork`, advanced serialization).
 * It drives either HTTP (undici Pool, one connection per concurrent client) or the SQL floor
 * (the gateway's pg handle and transaction grouping replaying a recorded statement sequence),
 * and answers with the raw latencies.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Pool } from 'undici';
import type { Tx } from '../src/db/db.js';
import { TransactionGroups } from '../src/db/group.js';
import * as postgresDb from '../src/db/postgres.js';
import { busyPct, cpuMsOf, machineCpu, processCpuMs } from './proc-stat.js';
import type { HttpJob, LoadJob, LoadResult, OpenJob, Recording, SqlJob, Window } from './protocol.js';

interface Sample {
  start: number;
  end: number;
  status: string;
  ok: boolean;
  replayed: boolean;
  /** Sent as a retry of an earlier key (must come back marked replayed). */
  replay?: boolean;
  errorText?: string;
}

/** Runs `next()` from `concurrency` loops and keeps what the measured window saw. */
async function drive(w: Window, next: () => (() => Promise<Omit<Sample, 'start' | 'end'>>) | undefined): Promise<LoadResult> {
  // how busy the machine is before we start (other work on a shared machine skews everything)
  const before = machineCpu();
  await new Promise((r) => setTimeout(r, 300));
  const background = busyPct(before, machineCpu());
  const t0 = performance.now();
  const measureStart = t0 + w.warmupMs;
  let windowEnd = measureStart + w.durationMs;
  let stopped = false;
  let warmupCount = 0;
  let measured = 0;
  let carried = 0;
  let carriedMaxMs = 0;
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const errorSamples: string[] = [];
  let errors = 0;
  let replayed = 0;
  let replaysSent = 0;
  let edge: Promise<EdgeReading> | undefined;
  let atStart: EdgeReading | undefined;

  const stop = (at: number) => {
    if (!stopped) {
      stopped = true;
      windowEnd = Math.min(windowEnd, at);
    }
  };

  const loop = async () => {
    for (;;) {
      const now = performance.now();
      if (stopped || now >= windowEnd) return;
      if (now >= measureStart && !edge) edge = readEdge(w);
      const job = next();
      if (!job) {
        stop(now);
        return;
      }
      const start = performance.now();
      const s = await job();
      const end = performance.now();
      if (end < measureStart) {
        warmupCount++;
        continue;
      }
      if (end > windowEnd) continue;
      measured++;
      // a request sent during the warm-up counts in the throughput, but not in the latency of
      // the steady state: the first ones of a closed loop all start at once, on cold connections
      if (start < measureStart) {
        carried++;
        carriedMaxMs = Math.max(carriedMaxMs, end - start);
      } else {
        latencies.push(end - start);
      }
      statuses[s.status] = (statuses[s.status] ?? 0) + 1;
      if (s.replayed) replayed++;
      if (s.replay) replaysSent++;
      if (!s.ok) {
        errors++;
        if (errorSamples.length < 5 && s.errorText) errorSamples.push(`${s.status}: ${s.errorText.slice(0, 300)}`);
      }
      if (w.maxRequests !== undefined && measured >= w.maxRequests) stop(end);
    }
  };

  if (w.warmupMs === 0) edge = readEdge(w);
  await Promise.all(Array.from({ length: w.concurrency }, loop));
  atStart = edge ? await edge : undefined;
  const atEnd = await readEdge(w);
  const elapsedMs = Math.max(1, windowEnd - measureStart);
  return {
    count: measured,
    elapsedMs,
    latencies: Float64Array.from(latencies),
    statuses,
    errors,
    errorSamples,
    replayed,
    replaysSent,
    consumed: 0,
    warmupCount,
    carriedOver: { count: carried, maxMs: Number(carriedMaxMs.toFixed(1)) },
    gateway: w.gateway && atStart
      ? {
          cpuMs: atEnd.cpuMs - atStart.cpuMs,
          sysMs: atEnd.sysMs - atStart.sysMs,
          eventLoopP99Ms: atEnd.lagP99Ms,
          eventLoopMaxMs: atEnd.lagMaxMs,
          gc: gcDelta(atStart.gc, atEnd.gc),
        }
      : undefined,
    machineBusyPct: atStart ? busyPct(atStart.machine, atEnd.machine) : 0,
    postgresCpuMs: atStart ? cpuDelta(atStart.postgres, atEnd.postgres) : 0,
    backgroundBusyPct: background,
    ...(atStart ? { processCpuMs: processDelta(atStart.processes, atEnd.processes) } : {}),
  };
}

const processDelta = (a: Record<string, number>, b: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.entries(b).map(([label, ms]) => [label, ms - (a[label] ?? 0)]));

interface EdgeReading {
  /** Cumulative GC figures of the gateway by kind (count, seconds, pauses ≥ 100 ms). */
  gc: Record<string, { count: number; sum: number; over100ms: number }> | null;
  cpuMs: number;
  sysMs: number;
  postgres: Map<number, number>;
  lagP99Ms: number | null;
  lagMaxMs: number | null;
  machine: { busy: number; total: number };
  /** CPU ms per `Window.processes` label. */
  processes: Record<string, number>;
}

/** Gateway CPU time and event-loop delay (prom-client resets its histogram on every scrape, so
 *  the reading at the end covers exactly the window), plus the machine's CPU counters. */
async function readEdge(w: Window): Promise<EdgeReading> {
  let cpuMs = 0;
  let sysMs = 0;
  let lagP99Ms: number | null = null;
  let lagMaxMs: number | null = null;
  let gc: EdgeReading['gc'] = null;
  if (w.gateway) {
    try {
      const stat = readFileSync(`/proc/${w.gateway.pid}/stat`, 'utf8');
      cpuMs = cpuMsOf(stat);
      sysMs = cpuMsOf(stat, true);
    } catch {
      // the process is gone: the load result says so through its errors
    }
    try {
      const res = await fetch(w.gateway.metricsUrl);
      const text = await res.text();
      const metric = (name: string) => {
        const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
        return m ? Number(m[1]) * 1000 : null;
      };
      lagP99Ms = metric('nodejs_eventloop_lag_p99_seconds');
      lagMaxMs = metric('nodejs_eventloop_lag_max_seconds');
      gc = gcOf(text);
    } catch {
      // no metrics: reported as unknown
    }
  }
  const processes: Record<string, number> = {};
  for (const { label, pids } of w.processes ?? []) {
    processes[label] = 0;
    for (const pid of pids) processes[label] += processCpuMs(pid); // an exited one adds 0
  }
  return { cpuMs, sysMs, postgres: await postgresCpu(w.postgresUrl), lagP99Ms, lagMaxMs, gc, machine: machineCpu(), processes };
}

/** prom-client's `nodejs_gc_duration_seconds` histogram, per kind: count, sum, and count above 0.1 s. */
function gcOf(text: string): EdgeReading['gc'] {
  const out: NonNullable<EdgeReading['gc']> = {};
  const kindOf = (labels: string) => /kind="([^"]+)"/.exec(labels)?.[1] ?? '?';
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_(count|sum)\{([^}]*)\} ([0-9.eE+-]+)$/gm)) {
    const k = (out[kindOf(m[2])] ??= { count: 0, sum: 0, over100ms: 0 });
    if (m[1] === 'count') k.count = Number(m[3]);
    else k.sum = Number(m[3]);
  }
  const upTo100ms: Record<string, number> = {};
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_bucket\{([^}]*)\} ([0-9.eE+-]+)$/gm)) {
    if (/le="0\.1"/.test(m[1])) upTo100ms[kindOf(m[1])] = Number(m[2]);
  }
  for (const [kind, k] of Object.entries(out)) k.over100ms = k.count - (upTo100ms[kind] ?? k.count);
  return Object.keys(out).length ? out : null;
}

/** GC during a window: the difference of two cumulative readings. */
function gcDelta(a: EdgeReading['gc'], b: EdgeReading['gc']): NonNullable<NonNullable<LoadResult['gateway']>['gc']> | undefined {
  if (!a || !b) return undefined;
  const out: NonNullable<NonNullable<LoadResult['gateway']>['gc']> = {};
  for (const [kind, end] of Object.entries(b)) {
    const start = a[kind] ?? { count: 0, sum: 0, over100ms: 0 };
    out[kind] = { count: end.count - start.count, totalMs: Number(((end.sum - start.sum) * 1000).toFixed(1)), over100ms: end.over100ms - start.over100ms };
  }
  return out;
}

/**
 * CPU per pid of the database server's processes that serve the bench's database: its backends
 * (a pooler's server connections included) and the server's own background processes (writers,
 * checkpointer …). Backends of other databases on a shared server are not counted.
 */
async function postgresCpu(url: string | undefined): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  if (!url) return out;
  const c = new pg.Client({ connectionString: url });
  try {
    await c.connect();
    const r = await c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname IS NULL OR datname = current_database()');
    for (const { pid } of r.rows) {
      try {
        out.set(pid, cpuMsOf(readFileSync(`/proc/${pid}/stat`, 'utf8')));
      } catch {
        // not on this machine, or exited
      }
    }
  } catch {
    // unknown: reported as 0
  } finally {
    await c.end().catch(() => {});
  }
  return out;
}

/** CPU the server's processes used between two readings (a process new at the end counts whole). */
function cpuDelta(a: Map<number, number>, b: Map<number, number>): number {
  let sum = 0;
  for (const [pid, ms] of b) sum += ms - (a.get(pid) ?? 0);
  return sum;
}

// ------------------------------------------------------------------ HTTP

async function runHttp(job: HttpJob): Promise<LoadResult> {
  const urls = job.urls ?? [job.url];
  const pools = urls.map((url) => ({ url, pool: new Pool(url, { connections: Math.ceil(job.concurrency / urls.length), pipelining: 1, keepAliveTimeout: 30_000 }) }));
  let turn = 0;
  const baseHeaders: Record<string, string> = { 'content-type': 'application/json' };
  if (job.authorization) baseHeaders.authorization = job.authorization;
  const plan = job.plan;
  let consumed = 0;
  const completed: { path: string; key: string; body: string }[] = [];
  let seq = 0;

  const send = (path: string, body: string, key: string | undefined, isReplay: boolean) => async () => {
    const headers = key ? { ...baseHeaders, 'idempotency-key': key } : baseHeaders;
    const target = pools[turn++ % pools.length];
    try {
      const res = await target.pool.request({ origin: target.url, path, method: 'POST', headers, body });
      const text = await res.body.text();
      const ok = res.statusCode === 201;
      const replayedHeader = res.headers['idempotent-replayed'] === 'true';
      if (ok && key && !isReplay) completed.push({ path, key, body });
      return {
        status: String(res.statusCode),
        ok: ok && (!isReplay || replayedHeader),
        replayed: replayedHeader,
        replay: isReplay,
        errorText: ok && (!isReplay || replayedHeader) ? undefined : isReplay && ok ? `replay not marked replayed: ${text}` : text,
      };
    } catch (err) {
      return { status: 'network', ok: false, replayed: false, replay: isReplay, errorText: String(err) };
    }
  };

  const next = (): (() => Promise<Omit<Sample, 'start' | 'end'>>) | undefined => {
    if (plan.type === 'fixed') return send(plan.path, plan.body, undefined, false);
    if (plan.replayFraction && completed.length > 0 && Math.random() < plan.replayFraction) {
      const c = completed[Math.floor(Math.random() * completed.length)];
      return send(c.path, c.body, c.key, true);
    }
    let paymentId: string;
    if (plan.repeat) {
      paymentId = plan.paymentIds[0];
    } else {
      if (consumed >= plan.paymentIds.length) return undefined;
      paymentId = plan.paymentIds[consumed];
    }
    consumed++;
    const body = plan.amount === undefined ? '{}' : `{"amount":${plan.amount}}`;
    return send(`/v1/payments/${paymentId}/refunds`, body, `${plan.keyPrefix}-${seq++}`, false);
  };

  // the reader: GETs of other payments meanwhile, measured after the warm-up
  let reading = true;
  const reads: number[] = [];
  const readErrors: string[] = [];
  let readFailures = 0;
  const readPool = job.reader ? new Pool(job.url, { connections: job.reader.concurrency, pipelining: 1, keepAliveTimeout: 30_000 }) : undefined;
  const readFrom = performance.now() + 300 + job.warmupMs;
  let readTurn = 0;
  const readLoop = async () => {
    const paths = job.reader!.paths;
    while (reading) {
      const path = paths[readTurn++ % paths.length];
      const start = performance.now();
      let ok = false;
      let text = '';
      try {
        const res = await readPool!.request({ origin: job.url, path, method: 'GET', headers: baseHeaders.authorization ? { authorization: baseHeaders.authorization } : {} });
        text = await res.body.text();
        ok = res.statusCode === 200;
        if (!ok) text = `${res.statusCode}: ${text}`;
      } catch (err) {
        text = String(err);
      }
      const end = performance.now();
      if (!reading || start < readFrom) continue;
      reads.push(end - start);
      if (!ok) {
        readFailures++;
        if (readErrors.length < 5) readErrors.push(text.slice(0, 300));
      }
    }
  };
  const readers = job.reader ? Array.from({ length: job.reader.concurrency }, readLoop) : [];

  try {
    const r = await drive(job, next);
    reading = false;
    await Promise.all(readers);
    return { ...r, consumed, ...(job.reader ? { reads: { latencies: Float64Array.from(reads), errors: readFailures, errorSamples: readErrors } } : {}) };
  } finally {
    reading = false;
    await Promise.all(pools.map((p) => p.pool.close()));
    await readPool?.close();
  }
}

// ------------------------------------------------------------------ open loop

/**
 * Sends refunds on a fixed schedule: request i is due at t0 + i / rate and goes out then, however
 * many earlier ones are still unanswered (the generator opens another connection when all are
 * busy, up to `connections`). Latency is measured from the intended time (corrected for
 * coordinated omission: a stall delays every request that was due during it) and from the actual
 * send; how late each send was is the generator's own lag.
 */
async function runOpen(job: OpenJob): Promise<LoadResult> {
  const pool = new Pool(job.url, { connections: job.connections, pipelining: 1, keepAliveTimeout: 30_000 });
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (job.authorization) headers.authorization = job.authorization;
  const before = machineCpu();
  await new Promise((r) => setTimeout(r, 300));
  const background = busyPct(before, machineCpu());

  const interval = 1000 / job.rate;
  const t0 = performance.now() + 5;
  const measureStart = t0 + job.warmupMs;
  const windowEnd = measureStart + job.durationMs;
  const total = Math.min(job.paymentIds.length, Math.ceil((job.warmupMs + job.durationMs) / interval));
  const corrected: number[] = [];
  const uncorrected: number[] = [];
  const lag: number[] = [];
  /** Intended send time of each answer in `corrected`, ms after the window opened. */
  const intendedAt: number[] = [];
  const statuses: Record<string, number> = {};
  const errorSamples: string[] = [];
  let errors = 0;
  let sent = 0;
  let warmupCount = 0;
  let outstanding = 0;
  let inFlightAtEnd = -1;
  const pending = new Set<Promise<void>>();
  let edge: Promise<EdgeReading> | undefined;

  const fire = (i: number, intended: number) => {
    const actual = performance.now();
    const measured = intended >= measureStart && intended < windowEnd;
    if (measured) {
      sent++;
      lag.push(actual - intended);
    } else {
      warmupCount++;
    }
    outstanding++;
    const p = (async () => {
      let status: string;
      let ok = false;
      let text = '';
      try {
        const res = await pool.request({
          origin: job.url, path: `/v1/payments/${job.paymentIds[i]}/refunds`, method: 'POST',
          headers: { ...headers, 'idempotency-key': `${job.keyPrefix}-${i}` }, body: '{}',
        });
        text = await res.body.text();
        status = String(res.statusCode);
        ok = res.statusCode === 201;
      } catch (err) {
        status = 'network';
        text = String(err);
      }
      const end = performance.now();
      outstanding--;
      if (!measured) return;
      corrected.push(end - intended);
      intendedAt.push(intended - measureStart);
      uncorrected.push(end - actual);
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (!ok) {
        errors++;
        if (errorSamples.length < 5) errorSamples.push(`${status}: ${text.slice(0, 300)}`);
      }
    })();
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };

  let i = 0;
  while (i < total) {
    const now = performance.now();
    if (!edge && now >= measureStart) edge = readEdge(job);
    if (inFlightAtEnd < 0 && now >= windowEnd) inFlightAtEnd = outstanding;
    const due = t0 + i * interval;
    if (due > now) {
      // sleep until the next send is due. setTimeout wakes up to ~1 ms late, which the lag shows
      // (and the corrected latency counts against the gateway). Never spin on setImmediate to
      // be on time: the generator shares the cores with the gateway and the database, and a
      // spinning generator took half a core from them (1.7 ms of CPU per request at 281/s).
      await new Promise((r) => setTimeout(r, Math.max(1, Math.floor(due - now))));
      continue;
    }
    while (i < total && t0 + i * interval <= now) {
      fire(i, t0 + i * interval);
      i++;
    }
  }
  if (!edge) edge = readEdge(job);
  if (inFlightAtEnd < 0) inFlightAtEnd = outstanding;
  await Promise.all([...pending]);
  const atStart = await edge;
  const atEnd = await readEdge(job);
  const connections = pool.stats.connected;
  await pool.close();
  return {
    count: corrected.length,
    elapsedMs: job.durationMs,
    latencies: Float64Array.from(corrected),
    statuses,
    errors,
    errorSamples,
    replayed: 0,
    replaysSent: 0,
    consumed: i,
    warmupCount,
    gateway: job.gateway
      ? { cpuMs: atEnd.cpuMs - atStart.cpuMs, sysMs: atEnd.sysMs - atStart.sysMs, eventLoopP99Ms: atEnd.lagP99Ms, eventLoopMaxMs: atEnd.lagMaxMs, gc: gcDelta(atStart.gc, atEnd.gc) }
      : undefined,
    machineBusyPct: busyPct(atStart.machine, atEnd.machine),
    postgresCpuMs: cpuDelta(atStart.postgres, atEnd.postgres),
    backgroundBusyPct: background,
    processCpuMs: processDelta(atStart.processes, atEnd.processes),
    open: { targetRate: job.rate, windowStartEpochMs: Math.round(performance.timeOrigin + measureStart), sent, uncorrected: Float64Array.from(uncorrected), lag: Float64Array.from(lag), connections, inFlightAtEnd,
      slow: slowSlots(corrected, intendedAt, job.durationMs, OPEN_SLOW_MS) },
  };
}

/** An answer slower than this (from its intended send time) is counted as slow: the open-loop goal's p99. */
const OPEN_SLOW_MS = 25;
const SLOT_MS = 100;

/** Where the slow answers fall in the window, by 100 ms slots of intended send time. */
function slowSlots(latencies: number[], intendedAt: number[], durationMs: number, slowMs: number): NonNullable<LoadResult['open']>['slow'] {
  const slots = Math.max(1, Math.ceil(durationMs / SLOT_MS));
  const slow = new Array<number>(slots).fill(0);
  const worst = new Array<number>(slots).fill(0);
  let count = 0;
  for (let i = 0; i < latencies.length; i++) {
    if (latencies[i] <= slowMs) continue;
    const slot = Math.min(slots - 1, Math.max(0, Math.floor(intendedAt[i] / SLOT_MS)));
    count++;
    slow[slot]++;
    worst[slot] = Math.max(worst[slot], latencies[i]);
  }
  const worstSlots = slow.map((n, i) => ({ atMs: i * SLOT_MS, slow: n, maxMs: Number(worst[i].toFixed(1)) }))
    .filter((x) => x.slow > 0).sort((a, b) => b.slow - a.slow).slice(0, 5);
  return { slowMs, count, slots, slotsWithSlow: slow.filter((n) => n > 0).length, worstSlots };
}

// ------------------------------------------------------------------ SQL floor

type Part = string | number; // literal text, or the index of a token
type Template = { kind: 'literal'; value: unknown } | { kind: 'string'; parts: Part[] } | { kind: 'array'; items: Template[] };

function compile(value: unknown, tokenRe: RegExp | undefined, index: Map<string, number>): Template {
  if (typeof value === 'string' && tokenRe) {
    const parts: Part[] = [];
    let last = 0;
    tokenRe.lastIndex = 0;
    for (let m = tokenRe.exec(value); m; m = tokenRe.exec(value)) {
      if (m.index > last) parts.push(value.slice(last, m.index));
      parts.push(index.get(m[0])!);
      last = m.index + m[0].length;
    }
    if (parts.length === 0) return { kind: 'literal', value };
    if (last < value.length) parts.push(value.slice(last));
    return { kind: 'string', parts };
  }
  if (Array.isArray(value)) return { kind: 'array', items: value.map((v) => compile(v, tokenRe, index)) };
  return { kind: 'literal', value };
}

function fill(t: Template, tokens: string[]): unknown {
  if (t.kind === 'literal') return t.value;
  if (t.kind === 'array') return t.items.map((i) => fill(i, tokens));
  let s = '';
  for (const p of t.parts) s += typeof p === 'number' ? tokens[p] : p;
  return s;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function runSql(job: SqlJob): Promise<LoadResult> {
  const rec: Recording = job.recording;
  const index = new Map(rec.tokens.map((t, i) => [t, i]));
  // longest first, so a token inside another (a refund id inside `settle_<refund id>`) is not split
  const sorted = [...rec.tokens].sort((a, b) => b.length - a.length);
  const tokenRe = sorted.length ? new RegExp(sorted.map(escapeRe).join('|'), 'g') : undefined;
  const steps = rec.steps.map((s) => ({
    tx: s.tx,
    statements: s.statements.map((st) => ({ text: st.text, last: st.last, pipelined: st.pipelined, values: st.values.map((v) => compile(v, tokenRe, index)) })),
  }));
  // The gateway's own database handle (pg, pipelined and corked as the gateway's) and, when the
  // gateway groups its transactions, the same grouping with the same limits: the floor is the
  // gateway's SQL as the gateway sends it, without HTTP or application logic.
  const db = postgresDb.createPostgresDb({ connectionString: job.url, max: job.poolSize, applicationName: 'settle-bench-floor' });
  const groups = job.groups ? new TransactionGroups(db, job.groups) : undefined;
  let consumed = 0;
  let seq = 0;

  /** Fresh values for one replay: same shape as the recorded ones, unique per replay. */
  const tokensFor = (target: { id: string; ref: string }): string[] =>
    rec.tokens.map((t) => {
      if (t === rec.paymentId) return target.id;
      if (t === rec.paymentRef) return target.ref;
      if (t === rec.idempotencyKey) return `${job.keyPrefix}-${seq}`;
      // keep the prefix and the random tail; the time part becomes a per-replay unique marker
      const cut = t.lastIndexOf('_') + 1;
      const unique = `${job.keyPrefix.replace(/[^0-9A-Za-z]/g, '')}${seq.toString(36).padStart(5, '0')}`;
      return t.slice(0, cut) + unique + t.slice(cut + unique.length);
    });

  /** One recorded transaction's statements, each sent as the gateway sent it: pipelined behind the one before, or ending the transaction. */
  const replayStep = async (tx: Tx, sts: (typeof steps)[number]['statements'], tokens: string[]) => {
    let sent: Promise<unknown>[] = [];
    for (let i = 0; i < sts.length; i++) {
      const st = sts[i];
      const values = st.values.map((v) => fill(v, tokens)) as unknown[];
      const p = st.last ? tx.lastQuery(st.text, values) : tx.query(st.text, values);
      p.catch(() => {});
      sent.push(p);
      if (st.last || !sts[i + 1]?.pipelined) {
        for (const q of sent) await q;
        sent = [];
      }
    }
    for (const q of sent) await q;
  };

  const next = () => {
    if (consumed >= job.targets.length) return undefined;
    const target = job.targets[consumed++];
    seq++;
    const tokens = tokensFor(target);
    return async (): Promise<Omit<Sample, 'start' | 'end'>> => {
      try {
        for (const step of steps) {
          if (!step.tx) {
            for (const st of step.statements) await db.query(st.text, st.values.map((v) => fill(v, tokens)) as unknown[]);
            continue;
          }
          const body = (tx: Tx) => replayStep(tx, step.statements, tokens);
          await (groups ? groups.run(target.id, body) : db.transaction(body));
        }
        return { status: 'ok', ok: true, replayed: false };
      } catch (err) {
        return { status: 'sql_error', ok: false, replayed: false, errorText: String((err as Error).message) };
      }
    };
  };

  try {
    const r = await drive(job, next);
    return { ...r, consumed };
  } finally {
    await db.close();
  }
}

process.on('message', (job: LoadJob) => {
  const run = job.kind === 'http' ? runHttp(job) : job.kind === 'open' ? runOpen(job) : runSql(job);
  run.then(
    (result) => process.send!({ ok: true, result }),
    (err) => process.send!({ ok: false, error: String((err as Error).stack ?? err) }),
  );
});
process.on('disconnect', () => process.exit(0));
