import { describe, test } from 'node:test';
import { postgresOrSkip } from '../helpers/databases.js';
import { runDbDropScenario, runSimFaultScenario } from '../reliability/faults.scenario.js';
import { assertNoViolations } from '../reliability/fixtures.js';

/**
 * The fault suite of test/reliability, reduced to run on every `npm test`: fewer requests,
 * the same faults and the same checks.
 * The scenarios share nothing (each has its own PSP, gateway and database) and mostly wait on
 * processes, so they run at once.
 */
describe('refunds under PSP and database faults (reduced)', { concurrency: true }, () => {
  test('PSP errors, timeouts and lost answers end in final refunds that match the PSP, none applied twice', { timeout: 240_000 }, async () => {
    assertNoViolations(await runSimFaultScenario({ backend: 'pglite', requestsPerPhase: 25, payments: 16, concurrency: 6 }));
  });

  test('PostgreSQL connections killed mid-request give clean 500s or answers, and retries converge with nothing half-written', { timeout: 240_000 }, async (t) => {
    if (!(await postgresOrSkip(t))) return;
    assertNoViolations(await runDbDropScenario({ requests: 150, payments: 16, concurrency: 8 }));
  });
});
