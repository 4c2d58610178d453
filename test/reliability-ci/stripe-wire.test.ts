import { describe, test } from 'node:test';
import { postgresOrSkip } from '../helpers/databases.js';
import { STRIPE_SETUP } from '../helpers/connectors.js';
import { runCrashScenario } from '../reliability/crash.scenario.js';
import { runSimFaultScenario } from '../reliability/faults.scenario.js';
import { assertNoViolations } from '../reliability/fixtures.js';

/**
 * The reduced crash and PSP-fault suites over the Stripe connector: the gateway's Stripe
 * connector (the official `stripe` SDK) talks to the psp-sim's Stripe wire, with the same checks
 * as over the sandbox (crash.test.ts, faults.test.ts): nothing acknowledged is lost, nothing is
 * refunded twice, the gateway's and the PSP's refunds agree, the ledger verifies, and
 * `settle reconcile` finds no difference.
 * The scenarios share nothing (each has its own PSP, gateway and database) and mostly wait on
 * processes, so they run at once.
 */
describe('refunds over the Stripe connector under crashes and PSP faults (reduced)', { concurrency: true }, () => {
  test('SIGKILLed mid-load on PostgreSQL and restarted: nothing acknowledged is lost, nothing refunded twice, gateway and PSP agree', { timeout: 240_000 }, async (t) => {
    if (!(await postgresOrSkip(t))) return;
    assertNoViolations(await runCrashScenario({ backend: 'postgres', rounds: 2, requests: 160, payments: 16, concurrency: 6, setup: STRIPE_SETUP }));
  });

  test('Stripe API errors, timeouts and lost answers end in final refunds that match the PSP, none applied twice', { timeout: 240_000 }, async (t) => {
    if (!(await postgresOrSkip(t))) return;
    assertNoViolations(await runSimFaultScenario({ backend: 'postgres', requestsPerPhase: 20, payments: 16, concurrency: 6, setup: STRIPE_SETUP }));
  });
});
