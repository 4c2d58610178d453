import { describe, test } from 'node:test';
import { postgresOrSkip } from '../helpers/databases.js';
import { runDbDropScenario, runSimFaultScenario } from './faults.scenario.js';
import { assertNoViolations } from './fixtures.js';

/**
 * Refund load while the PSP fails, stalls and loses answers, and while PostgreSQL connections
 * are killed under the gateway. Reduced version: test/reliability-ci/faults.test.ts.
 */
describe('refunds under PSP and database faults', () => {
  test('PSP errors, timeouts and lost answers on PostgreSQL: every refund ends final, matches the PSP, none applied twice', { timeout: 600_000 }, async (t) => {
    if (!(await postgresOrSkip(t))) return;
    assertNoViolations(await runSimFaultScenario({ backend: 'postgres', requestsPerPhase: 300, payments: 120, concurrency: 12 }));
  });

  test('PSP errors, timeouts and lost answers on embedded PGlite: the same holds', { timeout: 600_000 }, async () => {
    assertNoViolations(await runSimFaultScenario({ backend: 'pglite', requestsPerPhase: 100, payments: 40, concurrency: 6 }));
  });

  test('PostgreSQL connections killed mid-request: clean 500s or answers, retries converge, nothing half-written', { timeout: 600_000 }, async (t) => {
    if (!(await postgresOrSkip(t))) return;
    assertNoViolations(await runDbDropScenario({ requests: 1000, payments: 80, concurrency: 12 }));
  });
});
