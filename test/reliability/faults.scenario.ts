/**
 * Fault scenarios: refund load over HTTP against a real gateway process while (a) the psp-sim
 * fails, stalls or loses its answers, or (b) PostgreSQL connections are killed under it.
 * Afterwards every refund is final, the PSP refunded nothing twice, the gateway's and the PSP's
 * totals agree, the ledger verifies, and `settle reconcile` finds no difference with the PSP.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createTempDatabase, type TempDatabase } from '../helpers/databases.js';
import { spawnGateway, spawnPspSim, type Proc } from '../helpers/processes.js';
import { SANDBOX_SETUP, type ConnectorSetup } from '../helpers/connectors.js';
import {
  clearSimFaults, createPayments, GATEWAY_ENV, pendingRefundRows, planRefunds, printFigures, Rng, seedFromEnv, setSimFaults, setupMerchant, simStats, sleep, tail,
  type Backend, type PaymentInfo, type ScenarioReport,
} from './fixtures.js';
import { checkRefundOutcome, ledgerAndReconcile, notificationsDelivered } from './invariants.js';
import { RefundTraffic } from './refund-traffic.js';

/** The faults of one phase: a `PUT /_sim/faults` body. */
export type SimFaultPhase = Record<string, unknown>;

const REFUND_OPS = ['refund', 'refund_status'];

/** Each network fault alone, then all of them at once with latency. */
export const DEFAULT_FAULT_PHASES: SimFaultPhase[] = [
  { error_rate: 0.3, ops: REFUND_OPS },
  { timeout_rate: 0.25, ops: REFUND_OPS },
  { drop_response_rate: 0.3, ops: REFUND_OPS },
  { latency_ms: 40, error_rate: 0.15, timeout_rate: 0.1, drop_response_rate: 0.15, ops: REFUND_OPS },
];

interface Stack {
  sim: Proc;
  gw: Proc & { dataDir: string };
  temp?: TempDatabase;
  apiKey: string;
  payments: PaymentInfo[];
  rng: Rng;
  seed: number;
  /** Faults every `PUT /_sim/faults` must keep (see `Merchant.simFaults`). */
  simFaults: Record<string, unknown>;
  /** Where the gateway (and its CLIs) find the PSP. */
  pspEnv: Record<string, string>;
  /** The merchant's account at the sim (`Merchant.simAccount`). */
  simAccount: string;
  setup: ConnectorSetup;
}

/** A psp-sim, a gateway on a fresh database, a merchant and captured payments; torn down after `fn`. */
async function withStack<T>(
  backend: Backend, payments: number, env: Record<string, string>, seed: number, fn: (s: Stack) => Promise<T>, setup: ConnectorSetup = SANDBOX_SETUP,
): Promise<T> {
  let temp: TempDatabase | undefined;
  let dataDir: string | undefined;
  let sim: Proc | undefined;
  let gw: (Proc & { dataDir: string }) | undefined;
  let stack: Stack | undefined; // its gateway may be replaced by a restarted one
  try {
    if (backend === 'postgres') temp = await createTempDatabase();
    else dataDir = mkdtempSync(join(tmpdir(), 'settle-faults-'));
    sim = await spawnPspSim(setup.wire, setup.simArgs);
    const pspEnv = setup.gatewayEnv(sim.url);
    gw = await spawnGateway({ databaseUrl: temp?.url, dataDir, env: { ...env, ...pspEnv } });
    dataDir = gw.dataDir;
    const rng = new Rng(seed);
    const merchant = await setupMerchant(gw.url, sim.url, `Faults ${backend}`, setup);
    await setSimFaults(sim.url, merchant.simFaults);
    const created = await createPayments(gw.url, merchant.apiKey, payments, rng);
    stack = { sim, gw, temp, apiKey: merchant.apiKey, payments: created, rng, seed, simFaults: merchant.simFaults, pspEnv, setup, simAccount: merchant.simAccount };
    return await fn(stack);
  } finally {
    await (stack?.gw ?? gw)?.kill('SIGKILL');
    await sim?.kill();
    await temp?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * Checks the end state (with the gateway still running), then stops the gateway and runs
 * `settle ledger verify` and `settle reconcile` — PGlite admits one process at a time.
 */
async function finish(s: Stack, traffic: RefundTraffic, opts: { pendingWaitMs: number }) {
  const outcome = await checkRefundOutcome({
    gatewayUrl: s.gw.url, simUrl: s.sim.url, apiKey: s.apiKey, traffic, payments: s.payments, ...opts,
  });
  const violations = [...traffic.violations, ...outcome.violations];
  // refunds finished by notification only (Adyen): none may have been dropped on the way
  if (!s.setup.statusQuery) violations.push(...(await notificationsDelivered(s.sim.url, s.simAccount)).violations);
  if (s.gw.proc.exitCode !== null || s.gw.proc.signalCode !== null) {
    violations.push(`the gateway process died during the run (exit ${s.gw.proc.exitCode ?? s.gw.proc.signalCode})`);
  }
  if (violations.length > 0 && s.temp) console.log(`pending refunds in the database:\n${await pendingRefundRows(s.temp.url)}`);
  const output = s.gw.output();
  await s.gw.kill('SIGTERM');
  violations.push(...(await ledgerAndReconcile(s.temp ? { DATABASE_URL: s.temp.url } : { SETTLE_DATA_DIR: s.gw.dataDir }, s.pspEnv, { statusQuery: s.setup.statusQuery })));
  return { outcome, violations, output };
}

function report(title: string, figures: Record<string, number | string>, violations: string[], output: string): ScenarioReport {
  figures['invariant violations'] = violations.length;
  printFigures(title, figures);
  if (violations.length > 0) {
    console.log(`violations:\n- ${violations.slice(0, 50).join('\n- ')}`);
    console.log(`gateway output (last lines):\n${tail(output, 60)}`);
  }
  return { figures, violations };
}

const count = (text: string, needle: string) => text.split(needle).length - 1;

export interface SimFaultScenarioOptions {
  backend: Backend;
  /** Default DEFAULT_FAULT_PHASES. */
  phases?: SimFaultPhase[];
  requestsPerPhase: number;
  payments: number;
  concurrency: number;
  /** Bounded wait for the sync worker once the faults are cleared. Default 30000 ms. */
  pendingWaitMs?: number;
  seed?: number;
  /** The connector the merchant's account uses, and so the psp-sim wire. Default the sandbox. */
  setup?: ConnectorSetup;
}

/** (a) The psp-sim's faults under concurrent refund load. */
export async function runSimFaultScenario(opts: SimFaultScenarioOptions): Promise<ScenarioReport> {
  const started = Date.now();
  const phases = opts.phases ?? DEFAULT_FAULT_PHASES;
  // a PSP that does not answer within 500 ms is an unknown outcome
  const env = { ...GATEWAY_ENV, SETTLE_CONNECTOR_TIMEOUT_MS: '500' };
  return withStack(opts.backend, opts.payments, env, opts.seed ?? seedFromEnv(), async (s) => {
    const plan = planRefunds(s.payments, opts.requestsPerPhase * phases.length, `faults-${s.seed}`, s.rng);
    const traffic = new RefundTraffic({ baseUrl: s.gw.url, apiKey: s.apiKey });
    for (const [i, phase] of phases.entries()) {
      await setSimFaults(s.sim.url, { ...s.simFaults, ...phase, seed: s.rng.int(0, 2 ** 31) });
      traffic.add(plan.slice(i * opts.requestsPerPhase, (i + 1) * opts.requestsPerPhase));
      await traffic.run({ concurrency: opts.concurrency, deadline: Date.now() + 120_000 });
    }
    // the faults end; the sync worker now has to bring every pending refund home
    if (Object.keys(s.simFaults).length === 0) await clearSimFaults(s.sim.url);
    else await setSimFaults(s.sim.url, s.simFaults);
    const { outcome, violations, output } = await finish(s, traffic, { pendingWaitMs: opts.pendingWaitMs ?? 30_000 });
    const stats = await simStats(s.sim.url);
    const unknown = count(output, 'refund outcome unknown');
    if (unknown === 0) violations.push('no fault reached the gateway: the scenario proved nothing');
    return report(`PSP fault scenario (${opts.backend}, ${opts.setup?.connector ?? 'sandbox'})`, {
      backend: opts.backend,
      connector: opts.setup?.connector ?? 'sandbox',
      seed: s.seed,
      'fault phases': phases.length,
      'requests planned': plan.length,
      'requests sent (attempts)': traffic.figures.attempts,
      retries: traffic.figures.retries,
      'faults seen by the gateway (unknown PSP outcomes)': unknown,
      '5xx answers': traffic.figures.serverErrors,
      'refunds acknowledged (201)': outcome.figures.acknowledged,
      '  answered pending': outcome.figures.answeredPending,
      '  finally succeeded': outcome.figures.succeeded,
      '  finally failed': outcome.figures.failed,
      'refusals (409/422)': outcome.figures.refused,
      'PSP refund calls': stats.refund_calls,
      'PSP duplicate applications': stats.duplicate_applications,
      'duration (s)': ((Date.now() - started) / 1000).toFixed(1),
    }, violations, output);
  }, opts.setup);
}

export interface DbDropScenarioOptions {
  requests: number;
  payments: number;
  concurrency: number;
  /** Pause between two rounds of pg_terminate_backend, drawn from this range. Default [20, 120] ms. */
  dropEveryMs?: [number, number];
  /** Bounded wait for the sync worker after the drops stop. Default 30000 ms. */
  pendingWaitMs?: number;
  seed?: number;
}

/** (b) PostgreSQL connections terminated under the gateway while refund load runs. */
export async function runDbDropScenario(opts: DbDropScenarioOptions): Promise<ScenarioReport> {
  const started = Date.now();
  const [minGap, maxGap] = opts.dropEveryMs ?? [20, 120];
  return withStack('postgres', opts.payments, GATEWAY_ENV, opts.seed ?? seedFromEnv(), async (s) => {
    await setSimFaults(s.sim.url, { latency_ms: 20, ops: REFUND_OPS });
    const plan = planRefunds(s.payments, opts.requests, `drops-${s.seed}`, s.rng);
    const traffic = new RefundTraffic({ baseUrl: s.gw.url, apiKey: s.apiKey });
    traffic.add(plan);

    // A gateway that dies of a dropped connection is a violation; it is restarted (same database)
    // so the rest of the run can still show whether anything was left half-written.
    const deaths: string[] = [];
    let watching = true;
    let restarting: Promise<void> = Promise.resolve();
    const watch = (gw: Stack['gw']) => gw.proc.once('exit', (code, signal) => {
      if (!watching) return;
      deaths.push(`the gateway process died (exit ${code ?? signal}); its last output:\n${tail(gw.output(), 30)}`);
      restarting = (async () => {
        for (let attempt = 1; attempt <= 50; attempt++) {
          try {
            const next = await spawnGateway({ databaseUrl: s.temp!.url, dataDir: gw.dataDir, env: { ...GATEWAY_ENV, ...s.pspEnv } });
            s.gw = next;
            traffic.baseUrl = next.url;
            watch(next);
            return;
          } catch (err) {
            // the drops go on while it starts: a start that fails is a death too
            deaths.push(`a restarted gateway died while starting: ${(err as Error).message.slice(0, 300)}`);
            await sleep(200);
          }
        }
      })();
    });
    watch(s.gw);

    const database = new URL(s.temp!.url).pathname.slice(1);
    const killer = new pg.Client({ connectionString: s.temp!.url });
    await killer.connect();
    let drops = 0;
    let dropRounds = 0;
    let loadDone = false;
    const dropping = (async () => {
      while (!loadDone) {
        const r = await killer.query<{ t: boolean }>(
          'SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database]);
        drops += r.rows.filter((row) => row.t).length;
        dropRounds++;
        await sleep(s.rng.int(minGap, maxGap));
      }
    })();
    // the drops go on for the whole load, retries included (or until a deadline); whatever is
    // still unanswered then has to converge without them
    await traffic.run({ concurrency: opts.concurrency, deadline: Date.now() + Math.max(5_000, opts.requests * 40) });
    loadDone = true;
    await dropping;
    await killer.end();
    await traffic.run({ concurrency: opts.concurrency, deadline: Date.now() + 60_000 });
    watching = false;
    await restarting;

    const { outcome, violations, output } = await finish(s, traffic, { pendingWaitMs: opts.pendingWaitMs ?? 30_000 });
    violations.unshift(...deaths);
    if (drops === 0) violations.push('no connection was terminated: the scenario proved nothing');
    const stats = await simStats(s.sim.url);
    return report('PostgreSQL connection-drop scenario', {
      seed: s.seed,
      'requests planned': plan.length,
      'requests sent (attempts)': traffic.figures.attempts,
      retries: traffic.figures.retries,
      'connections terminated (faults injected)': drops,
      'termination rounds': dropRounds,
      '5xx answers (internal_error)': traffic.figures.serverErrors,
      'gateway deaths': deaths.length,
      '409 idempotency_key_in_use': traffic.figures.keyInUse,
      'answers lost (no response)': traffic.figures.noResponse,
      'refunds acknowledged (201)': outcome.figures.acknowledged,
      '  finally succeeded': outcome.figures.succeeded,
      '  finally failed': outcome.figures.failed,
      'refusals (409/422)': outcome.figures.refused,
      'PSP refund calls': stats.refund_calls,
      'PSP duplicate applications': stats.duplicate_applications,
      'duration (s)': ((Date.now() - started) / 1000).toFixed(1),
    }, violations, output);
  });
}
