import { describe, test } from 'node:test';
import { postgresOrSkip } from '../helpers/databases.js';
import { ADYEN_SETUP } from '../helpers/connectors.js';
import { runSimFaultScenario } from '../reliability/faults.scenario.js';
import { assertNoViolations } from '../reliability/fixtures.js';

/**
 * The reduced PSP-fault suite over the Adyen connector: the gateway's Adyen connector (the
 * official `@adyen/api-library`) talks to the psp-sim's Adyen wire, whose refunds answer
 * `received` and finish by HMAC-signed notification. Same checks as over the sandbox
 * (faults.test.ts) but reconciliation: Adyen cannot be asked what it did for a payment.
 */
describe('refunds over the Adyen connector under PSP faults (reduced)', () => {
  test('Adyen API errors, timeouts and lost answers end in final refunds that match the PSP, none applied twice', { timeout: 240_000 }, async (t) => {
    if (!(await postgresOrSkip(t))) return;
    assertNoViolations(await runSimFaultScenario({ backend: 'postgres', requestsPerPhase: 20, payments: 16, concurrency: 6, setup: ADYEN_SETUP }));
  });
});
