import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_HEAP_ARG } from '../../src/config.js';
import { contractAt } from './contract.js';
import { ADMIN_KEY, ENCRYPTION_KEY } from './harness.js';

/** dist/src/main.js, resolved from this compiled file (dist/test/helpers). */
export const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/main.js');

/** Node's flags as the deployment files give them (the V8 heap cap). */
const NODE_ARGS = [NODE_HEAP_ARG];

export interface Proc {
  proc: ChildProcess;
  url: string;
  output: () => string;
  /** What the process wrote on stdout alone. */
  stdout: () => string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * What every spawned process inherits besides its own settings: PATH, and the mutant a mutation
 * run has switched on (Stryker's command runner sets `__STRYKER_ACTIVE_MUTANT__` for the test
 * process; the gateways a test starts must run the same mutant, or they would test the original).
 */
export function inheritedEnv(): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '' };
  const mutant = process.env.__STRYKER_ACTIVE_MUTANT__;
  if (mutant !== undefined) env.__STRYKER_ACTIVE_MUTANT__ = mutant;
  return env;
}

/** Spawns `node dist/src/main.js <args>` and waits for a line matching `ready`. */
export async function spawnSettle(args: string[], env: Record<string, string>, ready: RegExp, timeoutMs = 90_000): Promise<Proc & { match: RegExpMatchArray }> {
  const proc = spawn(process.execPath, [...NODE_ARGS, MAIN, ...args], {
    env: { ...inheritedEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let stdout = '';
  proc.stdout!.on('data', (d) => {
    out += d;
    stdout += d;
  });
  proc.stderr!.on('data', (d) => (out += d));
  const match = await new Promise<RegExpMatchArray>((resolveReady, reject) => {
    const timer = setTimeout(() => {
      // a process that never became ready must not outlive its test (it may hold a data directory)
      proc.kill('SIGKILL');
      reject(new Error(`timed out waiting for ${ready}; output:\n${out}`));
    }, timeoutMs);
    const check = () => {
      const m = out.match(ready);
      if (m) {
        clearTimeout(timer);
        resolveReady(m);
      }
    };
    proc.stdout!.on('data', check);
    proc.stderr!.on('data', check);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`process exited with ${code} before ready; output:\n${out}`));
    });
  });
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return {
    proc,
    match,
    url: match[1] ?? '',
    output: () => out,
    stdout: () => stdout,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

export interface GatewayOptions {
  databaseUrl?: string;
  dataDir?: string;
  env?: Record<string, string>;
  /** Arguments after `serve`, e.g. `['--role', 'api']`. */
  args?: string[];
  /** How long to wait for the "running" line. Default 30000 ms. */
  readyTimeoutMs?: number;
  /** The port to listen on (a restarted gateway keeping its address: see `freePort`). Default a
   *  random free port. */
  port?: number;
}

/**
 * A port free on 127.0.0.1 now, for a process that must keep its address across restarts. Drawn
 * below Linux's ephemeral range (32768 and up), so the kernel does not hand it to an outgoing
 * connection between two runs of the process.
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; ; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
    if (tries > 50) throw new Error('no free port found below the ephemeral range');
  }
}

/** A real `settle serve` process on a random port (or `opts.port`). */
export async function spawnGateway(opts: GatewayOptions = {}) {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'settle-e2e-'));
  const env: Record<string, string> = {
    PORT: String(opts.port ?? 0),
    SETTLE_DATA_DIR: dataDir,
    SETTLE_ADMIN_KEY: ADMIN_KEY,
    SETTLE_ENCRYPTION_KEY: ENCRYPTION_KEY,
    LOG_LEVEL: 'warn',
    SETTLE_RATE_LIMIT_PER_SECOND: '0',
    SETTLE_AUTH_FAILURES_PER_MINUTE: '0',
    // stop at once on SIGTERM (no readiness drain) unless a test asks for it
    SETTLE_SHUTDOWN_DELAY_MS: '0',
    // the suites can be run with a small pool to shake out a connection held while waiting for another
    ...(process.env.SETTLE_DB_POOL_SIZE ? { SETTLE_DB_POOL_SIZE: process.env.SETTLE_DB_POOL_SIZE } : {}),
    ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}),
    ...opts.env,
  };
  const p = await spawnSettle(['serve', ...(opts.args ?? [])], env, /Settle is running at (http:\/\/\S+)/, opts.readyTimeoutMs);
  return { ...p, dataDir };
}

/** A real `settle psp-sim` process on a random port, speaking one PSP's wire (default sandbox),
 *  with more `psp-sim` arguments if given. */
export async function spawnPspSim(wire: 'sandbox' | 'stripe' | 'adyen' = 'sandbox', args: readonly string[] = []) {
  return spawnSettle(['psp-sim', '--port', '0', '--wire', wire, ...args], {}, /psp-sim listening on (http:\/\/\S+)/);
}

export interface HttpRes {
  status: number;
  body: any;
  raw: string;
  headers: Headers;
}

/**
 * A small JSON client for real-process tests. Against a gateway, every answer is checked against
 * its /openapi.json (the contract test, see contract.ts).
 */
export function client(baseUrl: string, key?: string) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpRes> => {
    const h: Record<string, string> = { ...headers };
    if (key) h.authorization = `Bearer ${key}`;
    if (body !== undefined) h['content-type'] = 'application/json';
    const res = await fetch(baseUrl + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const raw = await res.text();
    (await contractAt(baseUrl))?.check(method, path, res.status, Object.fromEntries(res.headers), raw);
    let parsed: unknown;
    try {
      parsed = raw ? JSON.parse(raw) : undefined;
    } catch {
      parsed = raw;
    }
    return { status: res.status, body: parsed, raw, headers: res.headers };
  };
}

/**
 * Runs a settle CLI command to completion. With `timeoutMs`, a command still running then is
 * killed (SIGKILL) and reported with `timedOut` and code null (a `serve` expected to refuse).
 */
export async function runSettle(
  args: string[],
  env: Record<string, string>,
  opts: { timeoutMs?: number } = {},
): Promise<{ code: number | null; output: string; stdout: string; stderr: string; timedOut: boolean }> {
  const proc = spawn(process.execPath, [...NODE_ARGS, MAIN, ...args], { env: { ...inheritedEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => {
    output += d;
    stdout += d;
  });
  proc.stderr.on('data', (d) => {
    output += d;
    stderr += d;
  });
  let timedOut = false;
  const timer = opts.timeoutMs
    ? setTimeout(() => {
        timedOut = true;
        proc.kill('SIGKILL');
      }, opts.timeoutMs)
    : undefined;
  const code = await new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
  clearTimeout(timer);
  return { code, output, stdout, stderr, timedOut };
}
