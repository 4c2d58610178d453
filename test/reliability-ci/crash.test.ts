import { describe, test } from 'node:test';
import { postgresOrSkip } from '../helpers/databases.js';
import { runCrashScenario } from '../reliability/crash.scenario.js';
import { assertNoViolations } from '../reliability/fixtures.js';

/**
 * The crash suite of test/reliability, reduced to run on every `npm test`: fewer kills and
 * requests, the same checks.
 * The scenarios share nothing (each has its own PSP, gateway and database) and mostly wait on
 * processes, so they run at once.
 */
describe('gateway crashes under refund load (reduced)', { concurrency: true }, () => {
  test('SIGKILLed mid-load on PostgreSQL and restarted, it loses nothing it acknowledged and refunds nothing twice', { timeout: 240_000 }, async (t) => {
    if (!(await postgresOrSkip(t))) return;
    const r = await runCrashScenario({ backend: 'postgres', rounds: 3, requests: 240, payments: 24, concurrency: 8 });
    assertNoViolations(r);
  });

  test('SIGKILLed mid-load on embedded PGlite and restarted on the same data directory, the same holds', { timeout: 240_000 }, async () => {
    const r = await runCrashScenario({ backend: 'pglite', rounds: 1, requests: 80, payments: 10, concurrency: 4 });
    assertNoViolations(r);
  });
});
