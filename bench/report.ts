/** Summaries, goals and the printed table. */
import type { LoadResult } from './protocol.js';
import type { Correctness } from './seed.js';

export interface Latency {
  p50: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export function latencyOf(values: Float64Array): Latency {
  if (values.length === 0) return { p50: NaN, p95: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN };
  const sorted = Float64Array.from(values).sort();
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  let sum = 0;
  for (const v of sorted) sum += v;
  return { p50: at(50), p95: at(95), p99: at(99), p999: at(99.9), max: sorted[sorted.length - 1], mean: sum / sorted.length };
}

export const median = (values: ArrayLike<number>) => latencyOf(Float64Array.from(values)).p50;

export type SeriesKind = 'system' | 'floor-db' | 'floor-http';

export interface Series {
  id: string;
  label: string;
  kind: SeriesKind;
  backend: 'postgres' | 'pglite' | '-';
  workload: string;
  concurrency: number;
  count: number;
  rps: number;
  latencyMs: Latency;
  errors: number;
  errorSamples: string[];
  statuses: Record<string, number>;
  peakRssMb: number | null;
  eventLoopP99Ms: number | null;
  eventLoopMaxMs: number | null;
  gatewayCpuMsPerRequest: number | null;
  /** The kernel's share of the gateway's CPU, 0–100. */
  gatewaySysPct: number | null;
  machineBusyPct: number;
  /** Machine busy share just before the series started (other work on a shared machine). */
  backgroundBusyPct: number;
  postgresCpuMsPerRequest: number | null;
  replayed?: number;
  replaysSent?: number;
  /** system ÷ floor at the same concurrency. */
  ratios?: { db?: number; http?: number };
  correctness?: Correctness;
  extra?: Record<string, unknown>;
}

export function seriesOf(base: Pick<Series, 'id' | 'label' | 'kind' | 'backend' | 'workload' | 'concurrency'>, r: LoadResult, peakRssMb: number | null): Series {
  return {
    ...base,
    count: r.count,
    rps: (r.count * 1000) / r.elapsedMs,
    latencyMs: latencyOf(r.latencies),
    errors: r.errors,
    errorSamples: r.errorSamples,
    statuses: r.statuses,
    peakRssMb,
    eventLoopP99Ms: r.gateway?.eventLoopP99Ms ?? null,
    eventLoopMaxMs: r.gateway?.eventLoopMaxMs ?? null,
    gatewayCpuMsPerRequest: r.gateway && r.count > 0 ? r.gateway.cpuMs / r.count : null,
    gatewaySysPct: r.gateway && r.gateway.cpuMs > 0 ? (100 * r.gateway.sysMs) / r.gateway.cpuMs : null,
    machineBusyPct: r.machineBusyPct,
    backgroundBusyPct: r.backgroundBusyPct,
    postgresCpuMsPerRequest: r.count > 0 && base.backend === 'postgres' ? r.postgresCpuMs / r.count : null,
    ...(r.replaysSent ? { replayed: r.replayed, replaysSent: r.replaysSent } : {}),
  };
}

export interface Goal {
  id: string;
  description: string;
  target: string;
  measured: string;
  pass: boolean;
  /** Why it was missed, when it was. */
  note?: string;
}

const f = (v: number | null | undefined, digits = 1) => (v === null || v === undefined || Number.isNaN(v) ? '—' : v.toFixed(digits));

export function table(series: Series[], goals: Goal[]): string {
  const header = ['series', 'backend', 'conc', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'RSS MB', 'EL p99 ms', 'gw cpu/req', 'pg cpu/req', 'idle before', 'vs F_db', 'vs F_http', 'verify'];
  const rows = series.map((s) => [
    s.label,
    s.backend,
    String(s.concurrency),
    f(s.rps, 0),
    f(s.latencyMs.p50, 2),
    f(s.latencyMs.p95, 2),
    f(s.latencyMs.p99, 2),
    String(s.errors),
    f(s.peakRssMb, 0),
    f(s.eventLoopP99Ms, 1),
    f(s.gatewayCpuMsPerRequest, 2),
    f(s.postgresCpuMsPerRequest, 2),
    `${(100 - s.backgroundBusyPct).toFixed(0)}%`,
    s.ratios?.db !== undefined ? f(s.ratios.db, 2) : '',
    s.ratios?.http !== undefined ? f(s.ratios.http, 2) : '',
    s.correctness ? (s.correctness.ok ? 'ok' : 'FAILED') : '',
  ]);
  const out = [grid(header, rows), '', grid(['goal', 'target', 'measured', 'result'], goals.map((g) => [g.description, g.target, g.measured, g.pass ? 'PASS' : 'MISS']))];
  return out.join('\n');
}

function grid(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
