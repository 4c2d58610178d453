/**
 * The processes a bench run starts: the gateway under test (`node dist/src/main.js serve`), the
 * bare Fastify server of the HTTP floor, and the load generator. Each is its own OS process.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_HEAP_ARG } from '../src/config.js';
import type { LoadJob, LoadResult } from './protocol.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** dist/src/main.js, from dist/bench. */
export const MAIN = resolve(HERE, '../src/main.js');

export const ADMIN_KEY = 'sk_admin_bench_0123456789abcdefghijklmnop';
export const ENCRYPTION_KEY = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

export interface Server {
  proc: ChildProcess;
  pid: number;
  url: string;
  output(): string;
  stop(): Promise<void>;
}

async function spawnServer(args: string[], env: Record<string, string>, ready: RegExp, nodeArgs: string[] = []): Promise<Server> {
  const proc = spawn(process.execPath, [...nodeArgs, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`timed out waiting for ${ready}:\n${out}`)), 60_000);
    const check = () => {
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    };
    proc.stdout!.on('data', check);
    proc.stderr!.on('data', check);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`exited with ${code} before ready:\n${out}`));
    });
  });
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  return {
    proc,
    pid: proc.pid!,
    url,
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    },
  };
}

export interface GatewayOptions {
  /** Unset → embedded PGlite in `dataDir`. */
  databaseUrl?: string;
  dataDir: string;
  poolSize?: number;
  /** Extra node flags, e.g. --cpu-prof, after the heap cap every deployment file gives the gateway
   *  (`NODE_HEAP_ARG`; a later --max-old-space-size wins). */
  nodeArgs?: string[];
  env?: Record<string, string>;
  /** Arguments after `serve`, e.g. `['--role', 'api']`. */
  args?: string[];
}

export function spawnGateway(o: GatewayOptions): Promise<Server> {
  return spawnServer([MAIN, 'serve', ...(o.args ?? [])], {
    PORT: '0',
    SETTLE_DATA_DIR: o.dataDir,
    SETTLE_ADMIN_KEY: ADMIN_KEY,
    SETTLE_ENCRYPTION_KEY: ENCRYPTION_KEY,
    LOG_LEVEL: 'warn',
    SETTLE_RATE_LIMIT_PER_SECOND: '0',
    ...(o.databaseUrl ? { DATABASE_URL: o.databaseUrl } : {}),
    ...(o.poolSize ? { SETTLE_DB_POOL_SIZE: String(o.poolSize) } : {}),
    ...o.env,
  }, /Settle is running at (http:\/\/\S+)/, [NODE_HEAP_ARG, ...(o.nodeArgs ?? [])]);
}

/** `settle psp-sim` (sandbox wire) as its own process, on a free port. */
export function spawnPspSim(): Promise<Server> {
  return spawnServer([MAIN, 'psp-sim', '--port', '0', '--wire', 'sandbox'], {}, /psp-sim listening on (http:\/\/\S+)/);
}

export function spawnBareHttp(): Promise<Server> {
  return spawnServer([resolve(HERE, 'bare-http.js')], {}, /bare listening on (http:\/\/\S+)/);
}

/**
 * Peak resident memory of a process over a stretch of time: the kernel's high-water mark
 * (VmHWM, reset through /proc/<pid>/clear_refs where permitted) and our own 50 ms samples.
 */
export class RssWatch {
  private max = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly pid: number) {}

  start(): void {
    this.max = 0;
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5'); // resets VmHWM to the current RSS
    } catch {
      // not permitted: the samples alone decide
    }
    this.sample();
    this.timer = setInterval(() => this.sample(), 50);
  }

  /** Peak RSS in MB since start(). */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    const hwm = readKb(this.pid, 'VmHWM');
    return Math.max(this.max, hwm ?? 0) / 1024;
  }

  private sample(): void {
    const rss = readKb(this.pid, 'VmRSS');
    if (rss !== undefined) this.max = Math.max(this.max, rss);
  }
}

/** RssWatch over several processes: the peak of each, in MB. */
export class RssWatches {
  private readonly watches: RssWatch[];
  constructor(private readonly pids: number[]) {
    this.watches = pids.map((pid) => new RssWatch(pid));
  }

  start(): void {
    for (const w of this.watches) w.start();
  }

  /** Peak RSS per pid, MB. */
  stop(): Record<number, number> {
    return Object.fromEntries(this.watches.map((w, i) => [this.pids[i], w.stop()]));
  }
}

function readKb(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The load generator child process. */
export class LoadGenerator {
  private readonly child: ChildProcess;
  constructor() {
    this.child = fork(resolve(HERE, 'load.js'), [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  run(job: LoadJob): Promise<LoadResult> {
    return new Promise((ok, fail) => {
      const onExit = (code: number | null) => fail(new Error(`load generator exited with ${code}`));
      this.child.once('exit', onExit);
      this.child.once('message', (m: { ok: boolean; result?: LoadResult; error?: string }) => {
        this.child.off('exit', onExit);
        if (m.ok) ok(m.result!);
        else fail(new Error(m.error));
      });
      this.child.send(job);
    });
  }

  close(): void {
    this.child.disconnect();
  }
}
