import { describe, test } from 'node:test';
import { postgresOrSkip } from '../helpers/databases.js';
import { assertNoViolations } from '../reliability/fixtures.js';
import { runSoak } from '../reliability/soak.scenario.js';

/**
 * The load soak of test/reliability, reduced to run on every `npm test`: 16 s of traffic instead
 * of 2 minutes, memory sampled twice as often, the same checks.
 */
describe('load soak (reduced)', () => {
  test('mixed traffic at concurrency 16 on PostgreSQL: no 5xx, identical replays, flat memory, a clean ledger, totals and reconciliation agreeing with the PSP', { timeout: 180_000 }, async (t) => {
    if (!(await postgresOrSkip(t))) return;
    assertNoViolations(await runSoak({ durationMs: 16_000, concurrency: 16, warmupMs: 6_000, sampleEveryMs: 500 }));
  });
});
