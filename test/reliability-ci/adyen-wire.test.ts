import { describe, test } from 'node:test';
import { postgresOrSkip } from '../helpers/databases.js';
import { ADYEN_SETUP } from '../helpers/connectors.js';
import { runCrashScenario } from '../reliability/crash.scenario.js';
import { runSimFaultScenario } from '../reliability/faults.scenario.js';
import { assertNoViolations } from '../reliability/fixtures.js';

/**
 * The reduced crash and PSP-fault suites over the Adyen connector: the gateway's Adyen connector
 * (the official `@adyen/api-library`) talks to the psp-sim's Adyen wire, whose refunds answer
 * `received` and finish by HMAC-signed notification, retried on Adyen's schedule (time-scaled)
 * while the gateway is down. Same checks as over the sandbox (crash.test.ts, faults.test.ts) but
 * reconciliation, which cannot ask Adyen what it did for a payment: the gateway's refunds are
 * checked against the sim's own record instead, and every notification must have been delivered.
 * The scenarios share nothing (each has its own PSP, gateway and database) and mostly wait on
 * processes, so they run at once.
 */
describe('refunds over the Adyen connector under crashes and PSP faults (reduced)', { concurrency: true }, () => {
  test('SIGKILLed mid-load on PostgreSQL and restarted at its address: notifications retried until acknowledged, nothing lost, nothing refunded twice, gateway and PSP agree', { timeout: 240_000 }, async (t) => {
    if (!(await postgresOrSkip(t))) return;
    assertNoViolations(await runCrashScenario({ backend: 'postgres', rounds: 2, requests: 100, payments: 12, concurrency: 6, setup: ADYEN_SETUP }));
  });

  test('Adyen API errors, timeouts and lost answers end in final refunds that match the PSP, none applied twice', { timeout: 240_000 }, async (t) => {
    if (!(await postgresOrSkip(t))) return;
    assertNoViolations(await runSimFaultScenario({ backend: 'postgres', requestsPerPhase: 20, payments: 16, concurrency: 6, setup: ADYEN_SETUP }));
  });
});
