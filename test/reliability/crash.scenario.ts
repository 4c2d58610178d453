/**
 * Crash scenario: refund load over HTTP against a real `settle serve` process that is SIGKILLed
 * at random moments and restarted on the same database and the same address, with the PSP (a
 * psp-sim process) living on. Clients retry what got no final answer with the same key and body;
 * the PSP retries the webhooks (Adyen's notifications) the dead gateway did not acknowledge.
 * Afterwards nothing the gateway acknowledged is lost, nothing is refunded twice, and gateway and
 * PSP agree.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTempDatabase, type TempDatabase } from '../helpers/databases.js';
import { freePort, spawnGateway, spawnPspSim, type Proc } from '../helpers/processes.js';
import { SANDBOX_SETUP, type ConnectorSetup } from '../helpers/connectors.js';
import { createPayments, GATEWAY_ENV, pendingRefundRows, planRefunds, printFigures, Rng, seedFromEnv, setSimFaults, setupMerchant, simStats, sleep, tail, type Backend, type ScenarioReport } from './fixtures.js';
import { checkRefundOutcome, ledgerAndReconcile, notificationsDelivered } from './invariants.js';
import { RefundTraffic } from './refund-traffic.js';

export interface CrashScenarioOptions {
  /** `postgres` needs the test server (see test/helpers/databases.ts); `pglite` a data directory. */
  backend: Backend;
  /** Gateway kills; the gateway is restarted after each. */
  rounds: number;
  /** Refund requests in all (each with its own idempotency key). */
  requests: number;
  payments: number;
  /** Concurrent clients. */
  concurrency: number;
  /** PSP latency, so kills land in every refund phase. Default 30 ms. */
  pspLatencyMs?: number;
  /** Bounded wait for the sync worker at the end. Default 30000 ms. */
  pendingWaitMs?: number;
  seed?: number;
  /** The connector the merchant's account uses, and so the psp-sim wire. Default the sandbox. */
  setup?: ConnectorSetup;
}

type Gateway = Proc & { dataDir: string };

export async function runCrashScenario(opts: CrashScenarioOptions): Promise<ScenarioReport> {
  const seed = opts.seed ?? seedFromEnv();
  const setup = opts.setup ?? SANDBOX_SETUP;
  let pspEnv: Record<string, string> = {};
  const rng = new Rng(seed);
  let temp: TempDatabase | undefined;
  let dataDir: string | undefined;
  let sim: Proc | undefined;
  let gw: Gateway | undefined;
  const outputs: string[] = [];
  const started = Date.now();
  // A gateway keeps its address across restarts: the webhook URL registered at the PSP stays right.
  const port = await freePort();

  const start = async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        gw = await spawnGateway({ databaseUrl: temp?.url, dataDir, port, env: { ...GATEWAY_ENV, ...pspEnv } });
        break;
      } catch (err) {
        // the port was taken by someone else in the instant it was free: wait for it, briefly
        if (attempt >= 20 || !/EADDRINUSE/.test((err as Error).message)) throw err;
        await sleep(250);
      }
    }
    dataDir = gw!.dataDir;
    return gw!;
  };

  try {
    if (opts.backend === 'postgres') temp = await createTempDatabase();
    else dataDir = mkdtempSync(join(tmpdir(), 'settle-crash-'));
    sim = await spawnPspSim(setup.wire, setup.simArgs);
    pspEnv = setup.gatewayEnv(sim.url);
    await start();

    const merchant = await setupMerchant(gw!.url, sim.url, `Crash ${opts.backend}`, setup);
    const gatewayUrl = gw!.url;
    await setSimFaults(sim.url, merchant.simFaults);
    const payments = await createPayments(gw!.url, merchant.apiKey, opts.payments, rng);
    await setSimFaults(sim.url, { ...merchant.simFaults, latency_ms: opts.pspLatencyMs ?? 30 });
    const plan = planRefunds(payments, opts.requests, `crash-${seed}`, rng);
    const traffic = new RefundTraffic({ baseUrl: gw!.url, apiKey: merchant.apiKey });

    const killedAt: number[] = [];
    let interrupted = 0;
    const share = Math.ceil(plan.length / opts.rounds);
    for (let round = 0; round < opts.rounds; round++) {
      traffic.add(plan.slice(round * share, (round + 1) * share));
      const running = traffic.run({ concurrency: opts.concurrency, deadline: Date.now() + 120_000 });
      // a random number of answers in, plus a random few ms: anywhere in a refund's phases
      await Promise.race([traffic.afterAttempts(rng.int(1, Math.max(1, Math.floor(share * 0.8)))), running]);
      await sleep(rng.int(0, 40));
      traffic.stop();
      const before = traffic.figures.noResponse;
      outputs.push(gw!.output());
      killedAt.push(Date.now());
      await gw!.kill('SIGKILL');
      await running;
      interrupted += traffic.figures.noResponse - before;
      await start();
      if (gw!.url !== gatewayUrl) throw new Error(`the gateway came back at ${gw!.url}, not at ${gatewayUrl}`);
    }
    // the last gateway lives: every request is retried to a final answer
    await traffic.run({ concurrency: opts.concurrency, deadline: Date.now() + 90_000 });

    const outcome = await checkRefundOutcome({
      gatewayUrl: gw!.url,
      simUrl: sim.url,
      apiKey: merchant.apiKey,
      traffic,
      payments,
      pendingWaitMs: opts.pendingWaitMs ?? 30_000,
    });
    const violations = [...traffic.violations, ...outcome.violations];
    // refunds finished by notification only (Adyen): every notification delivered, however many
    // kills it met on the way
    const notices = setup.statusQuery ? undefined : await notificationsDelivered(sim.url, merchant.simAccount);
    if (notices) violations.push(...notices.violations);
    if (violations.length > 0 && temp) console.log(`pending refunds in the database:\n${await pendingRefundRows(temp.url)}`);
    if (interrupted === 0) violations.push('no kill interrupted a request: the scenario proved nothing');

    // PGlite is a single-process database: the CLI may only open it once the gateway is gone
    outputs.push(gw!.output());
    await gw!.kill('SIGTERM');
    gw = undefined;
    violations.push(...(await ledgerAndReconcile(temp ? { DATABASE_URL: temp.url } : { SETTLE_DATA_DIR: dataDir! }, pspEnv, { statusQuery: setup.statusQuery })));
    const stats = await simStats(sim.url);
    const phases = killPhases(traffic, killedAt);

    const figures = {
      backend: opts.backend,
      connector: setup.connector,
      seed,
      'requests planned': plan.length,
      'requests sent (attempts)': traffic.figures.attempts,
      kills: killedAt.length,
      'requests interrupted by a kill': interrupted,
      '  whose refund was recorded before the kill': phases.recorded,
      '  whose refund was recorded by the retry': phases.retried,
      retries: traffic.figures.retries,
      '5xx answers': traffic.figures.serverErrors,
      '409 idempotency_key_in_use': traffic.figures.keyInUse,
      'refunds acknowledged (201)': outcome.figures.acknowledged,
      '  of which succeeded': outcome.figures.succeeded,
      '  of which failed': outcome.figures.failed,
      'refusals (409/422)': outcome.figures.refused,
      'PSP refund calls': stats.refund_calls,
      'PSP duplicate applications': stats.duplicate_applications,
      ...(notices ? {
        'PSP notifications': notices.figures.events,
        '  retried (an attempt failed)': notices.figures.retried,
        '  failed attempts': notices.figures.failedAttempts,
        '  given up or undelivered': notices.figures.undelivered,
      } : {}),
      'duration (s)': ((Date.now() - started) / 1000).toFixed(1),
      'invariant violations': violations.length,
    };
    printFigures(`crash scenario (${opts.backend}, ${setup.connector})`, figures);
    if (violations.length > 0) {
      console.log(`violations:\n- ${violations.slice(0, 50).join('\n- ')}`);
      console.log(`gateway output (last lines):\n${tail(outputs.join('\n'), 60)}`);
    }
    return { figures, violations };
  } finally {
    await gw?.kill('SIGKILL');
    await sim?.kill();
    await temp?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * Where the kills landed, seen from outside: an interrupted request whose refund was created
 * before the kill died after its hold committed (calling the PSP or recording the outcome);
 * one whose refund is younger was killed earlier, and its retry did all the work.
 */
function killPhases(traffic: RefundTraffic, killedAt: number[]): { recorded: number; retried: number } {
  let recorded = 0;
  let retried = 0;
  for (const r of traffic.requests) {
    const lost = r.attempts.find((a) => a.kind === 'no_response');
    if (!lost || lost.kind !== 'no_response' || r.final?.status !== 201) continue;
    const kill = killedAt.filter((t) => t <= lost.at).at(-1);
    if (kill === undefined) continue;
    if (Date.parse(r.final.body.created_at) < kill) recorded++;
    else retried++;
  }
  return { recorded, retried };
}
