/**
 * `npm run test:reliability`: runs every `*.suite.js` next to this file (crash, faults, soak, …)
 * with the node test runner, one file at a time — each suite drives real processes hard and
 * measures them, so two at once would only disturb each other. Exits non-zero when any fails.
 *
 *   node dist/test/reliability/run.js [name-filter …] [-- extra node --test flags]
 *
 * e.g. `node dist/test/reliability/run.js crash` runs crash.suite.js only.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const split = args.indexOf('--');
const filters = split >= 0 ? args.slice(0, split) : args;
const extra = split >= 0 ? args.slice(split + 1) : [];

const suites = readdirSync(here)
  .filter((f) => f.endsWith('.suite.js'))
  .filter((f) => filters.length === 0 || filters.some((name) => f.includes(name)))
  .sort()
  .map((f) => join(here, f));

if (suites.length === 0) {
  console.error(`no *.suite.js in ${here}${filters.length ? ` matching ${filters.join(', ')}` : ''} (did the build run?)`);
  process.exit(1);
}

console.log(`reliability suites: ${suites.map((f) => f.slice(here.length + 1)).join(', ')}`);
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...extra, ...suites], { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => {
  if (signal) console.error(`node --test ended by ${signal}`);
  process.exit(code ?? 1);
});
