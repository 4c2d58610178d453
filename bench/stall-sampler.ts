/**
 * What the machine and the database were doing while an open-loop series ran, every 25 ms: how
 * busy the two cores were and who used them (the gateway, the database's backends, the load
 * generator, everything else), and what the database's active sessions were waiting on
 * (pg_stat_activity's wait events; `CPU` when running). Read against the slots where the slow
 * answers fall, it tells a stall on a lock or a flush (sessions waiting, cores idle) from one on
 * the processor (cores busy, and by whom).
 */
import { cpus } from 'node:os';
import pg from 'pg';
import { busyPct, machineCpu, processCpuMs } from './proc-stat.js';

const EVERY_MS = 25;

interface Sample {
  /** Epoch ms at the end of the interval. */
  t: number;
  /** Interval length, ms. */
  dt: number;
  /** Busy share of all cores over the interval, 0..1. */
  busy: number;
  /** CPU ms used over the interval. */
  gateway: number;
  postgres: number;
  generator: number;
  /** Active sessions of the database by wait event. */
  waits: Record<string, number>;
  /** Database sessions that appeared since the last sample (new connections). */
  opened: number;
}

export interface StallWindow {
  /** ms after the window opened; `slow` answers of the slot, the slowest `maxMs`. */
  atMs?: number;
  slow?: number;
  maxMs?: number;
  samples: number;
  /** Share of the machine's cores busy, %. */
  busyPct: number;
  /** Each one's CPU as a share of one core, %. */
  gatewayPct: number;
  postgresPct: number;
  generatorPct: number;
  otherPct: number;
  /** Average number of active database sessions waiting on each event (top 5). */
  waits: Record<string, number>;
  /** Database connections opened (new backends seen). */
  opened: number;
}

export class StallSampler {
  private readonly samples: Sample[] = [];
  private client: pg.Client | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private cores = 1;

  constructor(private readonly url: string, private readonly pids: { gateway: number; generator?: number }) {}

  async start(): Promise<void> {
    this.client = new pg.Client({ connectionString: this.url, application_name: 'settle-bench-sampler' });
    await this.client.connect();
    this.cores = cpus().length || 1;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<Sample[]> {
    this.running = false;
    await this.loop;
    await this.client?.end().catch(() => {});
    return this.samples;
  }

  private async run(): Promise<void> {
    let first = true;
    let prev = { t: Date.now(), m: machineCpu(), gateway: processCpuMs(this.pids.gateway), generator: this.pids.generator ? processCpuMs(this.pids.generator) : 0, backends: new Map<number, number>() };
    while (this.running) {
      await new Promise((r) => setTimeout(r, EVERY_MS));
      const r = await this.client!.query<{ pid: number; w: string; active: boolean }>(
        `SELECT pid, coalesce(wait_event_type, 'CPU') || coalesce(':' || wait_event, '') AS w, state = 'active' AS active
         FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
      ).catch(() => ({ rows: [] as { pid: number; w: string; active: boolean }[] }));
      const t = Date.now();
      const m = machineCpu();
      const gateway = processCpuMs(this.pids.gateway);
      const generator = this.pids.generator ? processCpuMs(this.pids.generator) : 0;
      const backends = new Map<number, number>();
      let postgres = 0;
      let opened = 0;
      for (const row of r.rows) {
        const cpuMs = processCpuMs(row.pid);
        backends.set(row.pid, cpuMs);
        const before = prev.backends.get(row.pid);
        // a backend's first sample: all of its CPU so far (its start-up included) falls in this interval
        if (before !== undefined) postgres += cpuMs - before;
        else if (!first) {
          postgres += cpuMs;
          opened++;
        }
      }
      first = false;
      const waits: Record<string, number> = {};
      for (const row of r.rows) if (row.active) waits[row.w] = (waits[row.w] ?? 0) + 1;
      this.samples.push({
        t, dt: t - prev.t, busy: busyPct(prev.m, m) / 100,
        gateway: gateway - prev.gateway, postgres, generator: generator - prev.generator, waits, opened,
      });
      prev = { t, m, gateway, generator, backends };
    }
  }

  /** The samples between `from` and `to` (epoch ms) summed up. */
  summarize(from: number, to: number): StallWindow {
    const inside = this.samples.filter((s) => s.t > from && s.t - s.dt < to);
    const ms = inside.reduce((a, s) => a + s.dt, 0) || 1;
    const pctOf = (k: 'gateway' | 'postgres' | 'generator') => (100 * inside.reduce((a, s) => a + s[k], 0)) / ms;
    const busyPct = (100 * inside.reduce((a, s) => a + s.busy * s.dt, 0)) / ms;
    const waits: Record<string, number> = {};
    for (const s of inside) for (const [w, n] of Object.entries(s.waits)) waits[w] = (waits[w] ?? 0) + n;
    const top = Object.entries(waits).sort((a, b) => b[1] - a[1]).slice(0, 5)
      .map(([w, n]) => [w, Number((n / Math.max(1, inside.length)).toFixed(2))]);
    const gatewayPct = pctOf('gateway');
    const postgresPct = pctOf('postgres');
    const generatorPct = pctOf('generator');
    const r1 = (x: number) => Number(x.toFixed(1));
    return {
      samples: inside.length, busyPct: r1(busyPct), gatewayPct: r1(gatewayPct), postgresPct: r1(postgresPct), generatorPct: r1(generatorPct),
      otherPct: r1(Math.max(0, busyPct * this.cores - gatewayPct - postgresPct - generatorPct)), waits: Object.fromEntries(top),
      opened: inside.reduce((a, s) => a + s.opened, 0),
    };
  }
}
