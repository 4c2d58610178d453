import { describe, test } from 'node:test';
import { postgresOrSkip } from '../helpers/databases.js';
import { assertNoViolations } from './fixtures.js';
import { runSoak } from './soak.scenario.js';

/**
 * The full load soak: 2 minutes of mixed traffic at concurrency 16 against a real gateway on
 * PostgreSQL (see soak.scenario.ts). `RELIABILITY_SEED=<n>` replays a run's choices.
 */
describe('load soak', () => {
  test('2 minutes of mixed traffic at concurrency 16: no 5xx, identical replays, flat memory, a clean ledger', { timeout: 600_000 }, async (t) => {
    if (!(await postgresOrSkip(t))) return;
    assertNoViolations(await runSoak({ durationMs: 120_000, concurrency: 16, warmupMs: 20_000, sampleEveryMs: 1000 }));
  });
});
