import { describe, test } from 'node:test';
import { postgresOrSkip } from '../helpers/databases.js';
import { ADYEN_SETUP } from '../helpers/connectors.js';
import { runCrashScenario } from './crash.scenario.js';
import { assertNoViolations } from './fixtures.js';

/**
 * A gateway SIGKILLed at random moments under refund load and restarted on the same database and
 * address, with the PSP (psp-sim) living on. Reduced versions: test/reliability-ci/crash.test.ts,
 * and over the Stripe and Adyen connectors test/reliability-ci/stripe-wire.test.ts and
 * adyen-wire.test.ts.
 */
describe('gateway crashes under refund load', () => {
  test('killed 10 times mid-load on PostgreSQL and restarted: nothing acknowledged is lost, nothing refunded twice, gateway and PSP agree', { timeout: 900_000 }, async (t) => {
    if (!(await postgresOrSkip(t))) return;
    assertNoViolations(await runCrashScenario({ backend: 'postgres', rounds: 10, requests: 1500, payments: 150, concurrency: 12 }));
  });

  test('over the Adyen connector, killed 6 times mid-load on PostgreSQL: every notification retried until acknowledged, nothing lost, nothing refunded twice, gateway and PSP agree', { timeout: 900_000 }, async (t) => {
    if (!(await postgresOrSkip(t))) return;
    assertNoViolations(await runCrashScenario({ backend: 'postgres', rounds: 6, requests: 600, payments: 60, concurrency: 10, setup: ADYEN_SETUP }));
  });

  test('killed 4 times mid-load on embedded PGlite and restarted on the same data directory: the same holds', { timeout: 600_000 }, async () => {
    assertNoViolations(await runCrashScenario({ backend: 'pglite', rounds: 4, requests: 400, payments: 40, concurrency: 6 }));
  });
});
