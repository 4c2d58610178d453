#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';
import type { Runtime } from './bootstrap.js';
import { ConfigError, isServeRole, loadConfig, SERVE_ROLES, type Config, type ServeRole } from './config.js';
import { createLogger } from './lib/logger.js';
import type { RotationReport, SealedReport } from './modules/encryption/encryption-keys.service.js';

// Each command imports what it runs when it runs: the PSP simulator, `listen` and `trigger` need
// none of the gateway, and the database commands none of its HTTP server (loading them all
// costs a second or two of CPU at every start).
const runtime = async (config: Config, logger: ReturnType<typeof createLogger>): Promise<Runtime> =>
  (await import('./bootstrap.js')).createRuntime(config, logger);

const USAGE = `Usage: settle <command>

Commands:
  serve [--role api|worker|all]
                             Run the gateway: the HTTP API, the background workers, or both
                             (default all, or SETTLE_ROLE)
  migrate                    Apply database migrations and exit
  ledger verify              Check every ledger invariant; exits 1 on any violation
  reconcile [--since T] [--fix]  Compare payments with activity since T (ISO time or 30m/24h/7d,
                             default 24h) with what their PSP did; exits 1 on any difference left
  merchants create --name N  Create a merchant and print its secret keys (shown once)
  api-keys create --merchant ID [--mode test|live]
                             Mint another secret key for a merchant (shown once)
  connector-accounts create --merchant ID [--mode test|live] [--connector sandbox] [--name N]
                            [--settings JSON] [--credentials JSON] [--default]
                             Add a connector account to a merchant (its webhook secret is shown once)
  keys check                 Open every stored secret with the configured encryption keys; exits 1 if one fails
  keys rotate                Re-seal every stored secret with SETTLE_ENCRYPTION_KEY (reading with
                             SETTLE_ENCRYPTION_KEY_PREVIOUS), then record the new key's fingerprint
  psp-sim [--port P] [--host H] [--wire sandbox|stripe|adyen] [--retry-time-scale F]
                             Run the PSP simulator as an HTTP service, speaking one PSP's API
                             (F speeds up the Adyen wire's notification retries, e.g. 0.0002)

Configuration is read from the environment; see README.md.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'psp-sim') {
    const { runPspSim } = await import('./psp-sim/server.js');
    await runPspSim(rest);
    return -1; // keeps running
  }
  // clients of a running gateway: no configuration or database of their own
  if (command === 'listen') return (await import('./cli/listen.cli.js')).listen(rest);
  if (command === 'trigger') return (await import('./cli/trigger.cli.js')).trigger(rest);
  if (!command || command === '--help' || command === 'help') {
    console.log(USAGE);
    return command ? 0 : 2;
  }

  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 78; // EX_CONFIG
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);

  switch (command) {
    case 'serve': {
      let role: ServeRole = config.role;
      try {
        const { values } = parseArgs({ args: rest, options: { role: { type: 'string' } } });
        if (values.role !== undefined) {
          if (!isServeRole(values.role)) throw new Error(`--role must be one of ${SERVE_ROLES.join(', ')}`);
          role = values.role;
        }
      } catch (err) {
        console.error(`${(err as Error).message}\n\n${USAGE}`);
        return 2;
      }
      if (role !== 'all' && !config.databaseUrl) {
        console.error(`--role ${role} needs DATABASE_URL: the embedded database serves a single process, which runs both roles`);
        return 2;
      }
      return serve(config, role, logger);
    }
    case 'migrate': {
      const [{ openDb }, { migrate }] = await Promise.all([import('./db/open.js'), import('./db/migrate.js')]);
      const db = await openDb(config);
      const applied = await migrate(db);
      await db.close();
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
      return 0;
    }
    case 'ledger': {
      if (rest[0] !== 'verify') break;
      const [{ openDb }, { migrate }, { verifyLedger }] = await Promise.all([
        import('./db/open.js'), import('./db/migrate.js'), import('./modules/ledger/ledger.verify.js'),
      ]);
      const db = await openDb(config);
      await migrate(db);
      const { checked, violations } = await verifyLedger(db);
      await db.close();
      console.log(`checked ${checked.transactions} ledger transactions, ${checked.entries} entries, ${checked.payments} payments, ${checked.refunds} refunds`);
      for (const v of violations) console.log(`VIOLATION ${v.check}: ${v.detail}`);
      console.log(violations.length === 0 ? 'ledger verify: OK (0 violations)' : `ledger verify: FAILED (${violations.length} violations)`);
      return violations.length === 0 ? 0 : 1;
    }
    case 'reconcile': {
      let opts: { since: Date; fix: boolean };
      try {
        const { values } = parseArgs({ args: rest, options: { since: { type: 'string' }, fix: { type: 'boolean' } } });
        opts = { since: parseSince(values.since ?? '24h'), fix: values.fix ?? false };
      } catch (err) {
        console.error(`reconcile: ${(err as Error).message}`);
        return 2;
      }
      const rt = await runtime(config, logger);
      try {
        const report = await rt.services.reconciliation.run({ ...opts, stalePendingMs: config.reconcileStalePendingHours * 3_600_000 });
        for (const d of report.differences) {
          console.log(`DIFFERENCE${d.status === 'fixed' ? ' (fixed)' : ''} ${d.payment_id} ${d.kind}${d.refund_id ? ` ${d.refund_id}` : ''}${d.connector_ref ? ` [${d.connector_ref}]` : ''}: ${d.message}`);
        }
        for (const u of report.unverifiable) console.log(`UNVERIFIED ${u.paymentId}: ${u.reason}`);
        const left = report.differences.filter((d) => d.status !== 'fixed').length;
        const fixed = report.differences.length - left;
        console.log(`reconcile: checked ${report.checked} payments since ${opts.since.toISOString()}; ${report.differences.length} differences` +
          `${opts.fix ? ` (${fixed} fixed)` : ''}, ${report.unverifiable.length} unverifiable`);
        return left === 0 ? 0 : 1;
      } finally {
        await rt.db.close();
      }
    }
    case 'merchants': {
      if (rest[0] !== 'create') break;
      const { values } = parseArgs({ args: rest.slice(1), options: { name: { type: 'string' } } });
      if (!values.name) {
        console.error('merchants create needs --name');
        return 2;
      }
      const rt = await runtime(config, logger);
      const { merchant, keys } = await rt.services.merchants.create(values.name);
      await rt.db.close();
      console.log(JSON.stringify({ id: merchant.id, name: merchant.name, api_keys: keys }, null, 2));
      return 0;
    }
    case 'api-keys':
    case 'connector-accounts': {
      if (rest[0] !== 'create') break;
      const { createApiKey, createConnectorAccount } = await import('./cli/operator.cli.js');
      const rt = await runtime(config, logger);
      try {
        return await (command === 'api-keys' ? createApiKey(rt, rest.slice(1)) : createConnectorAccount(rt, rest.slice(1)));
      } finally {
        await rt.db.close();
      }
    }
    case 'keys': {
      if (rest[0] === 'check' || rest[0] === 'rotate') return keysCommand(rest[0], config, logger);
      break;
    }
  }
  console.error(`unknown command: ${argv.join(' ')}\n\n${USAGE}`);
  return 2;
}

/** `2026-01-31T00:00:00Z`, or a duration back from now: `30m`, `24h`, `7d`. */
function parseSince(raw: string): Date {
  const rel = /^(\d+)([smhd])$/.exec(raw);
  if (rel) return new Date(Date.now() - Number(rel[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[rel[2] as 's' | 'm' | 'h' | 'd']);
  const t = Date.parse(raw);
  if (Number.isNaN(t)) throw new Error(`--since must be an ISO time or a duration like 30m, 24h or 7d; got ${raw}`);
  return new Date(t);
}

/** `keys check` and `keys rotate` (docs/security.md). */
async function keysCommand(command: 'check' | 'rotate', config: Config, logger: ReturnType<typeof createLogger>): Promise<number> {
  const [{ encryptionKeysRepository }, { shortFingerprint }] = await Promise.all([
    import('./modules/encryption/encryption-keys.repository.js'), import('./modules/encryption/encryption-keys.service.js'),
  ]);
  const rt = await runtime(config, logger);
  try {
    const keys = rt.services.encryptionKeys;
    const report: SealedReport & Partial<RotationReport> = command === 'rotate' ? await keys.rotate() : await keys.report();
    const total = Object.values(report.counts).reduce((a, b) => a + b, 0);
    const counts = Object.entries(report.counts).map(([kind, n]) => `${n} ${kind.replaceAll('_', ' ')}`).join(', ');
    console.log(`${total} stored secrets (${counts})`);
    if (report.resealed !== undefined) console.log(`re-sealed with SETTLE_ENCRYPTION_KEY: ${report.resealed}`);
    if (report.underPrevious > 0) console.log(`still sealed with SETTLE_ENCRYPTION_KEY_PREVIOUS: ${report.underPrevious}`);
    for (const u of report.unreadable) console.log(`UNREADABLE with the configured keys: ${u}`);
    const fingerprint = report.fingerprint ?? await encryptionKeysRepository.fingerprint(rt.db);
    console.log(`database key fingerprint: ${fingerprint ? shortFingerprint(fingerprint) : 'none'}; SETTLE_ENCRYPTION_KEY: ${shortFingerprint(rt.services.encryptionKeys.fingerprint)}`);
    if (command === 'rotate') {
      const done = report.unreadable.length === 0 && report.underPrevious === 0 && fingerprint === rt.services.encryptionKeys.fingerprint;
      console.log(done ? 'keys rotate: done; SETTLE_ENCRYPTION_KEY_PREVIOUS may now be removed' : 'keys rotate: NOT finished; the fingerprint was not changed');
      return done ? 0 : 1;
    }
    console.log(report.unreadable.length === 0 ? 'keys check: OK' : `keys check: FAILED (${report.unreadable.length} unreadable)`);
    return report.unreadable.length === 0 ? 0 : 1;
  } finally {
    await rt.db.close();
  }
}

async function serve(config: Config, role: ServeRole, logger: ReturnType<typeof createLogger>): Promise<number> {
  const [{ createRuntime, seedDemoMerchant }, { buildApp }, { WorkerRunner }, { Redis }] = await Promise.all([
    import('./bootstrap.js'), import('./http/app.js'), import('./workers/runner.js'), import('ioredis'),
  ]);
  const rt = await createRuntime(config, logger);
  const api = role !== 'worker';
  // a rate limit shared by every gateway process when Redis is configured; per process otherwise
  const redis = config.redisUrl ? new Redis(config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000 }) : undefined;
  redis?.on('error', (err) => logger.warn({ err: err.message }, 'redis unavailable; rate limiting fails open'));
  const lifecycle = { draining: false };
  const app = await buildApp({ config, db: rt.db, logger, services: rt.services, adminKey: rt.secrets.adminKey, redis, api, lifecycle });
  const runsWorkers = role === 'worker' || (role === 'all' && config.workersEnabled);
  const workers = runsWorkers ? WorkerRunner.forGateway(config, rt.db, rt.services, logger) : undefined;
  let address: string;
  try {
    address = await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' && (err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
    throw new Error(`Cannot listen on ${config.host}:${config.port} (${(err as NodeJS.ErrnoException).code}): set PORT or HOST. Nothing was created.`);
  }
  // Only once the port is ours: the demo merchant's keys are shown once, so they must not be
  // made by a start that then fails to listen. The process that serves the API prints them.
  const demo = api ? await seedDemoMerchant(rt.services) : undefined;
  workers?.start();

  // before the banner: whoever reads the banner may stop the gateway at once
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    // Readiness goes false first: a load balancer polling /readyz stops sending new requests
    // during the delay; then the listener closes and the requests in flight finish. Ctrl-C
    // (SIGINT) at a terminal skips the delay.
    lifecycle.draining = true;
    const delay = signal === 'SIGTERM' ? config.shutdownDelayMs : 0;
    logger.info({ signal, delay_ms: delay }, 'shutting down: not ready, then closing once requests in flight finish');
    const deadline = setTimeout(() => {
      logger.error({ timeout_ms: config.shutdownTimeoutMs }, 'shutdown took too long; exiting with work unfinished');
      process.exit(1);
    }, delay + config.shutdownTimeoutMs);
    deadline.unref();
    await new Promise((r) => setTimeout(r, delay));
    await app.close();
    await workers?.stop();
    await rt.services.webhooks.close();
    redis?.disconnect();
    await rt.db.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  const base = address.replace('[::1]', 'localhost');
  const lines = [
    '',
    `Settle is running at ${base} (role: ${role}${runsWorkers ? '' : ', no background workers'}; database: ${rt.db.kind === 'pglite' ? `embedded PGlite in ${config.dataDir}` : 'PostgreSQL'})`,
    `  Heap limit:    ${Math.round(getHeapStatistics().heap_size_limit / 2 ** 20)} MB (node --max-old-space-size; docs/operations.md, "Memory")`,
    ...(api
      ? [`  Console:       ${base}/dashboard (sign in with a key below)`, `  API reference: ${base}/docs`]
      : [`  Background workers only; ${base}/healthz, /readyz and /metrics answer here`]),
  ];
  if (rt.secrets.generated.adminKey) lines.push(`  Admin key (generated, kept in ${config.dataDir}/admin.key): ${rt.secrets.adminKey}`);
  else if (!config.adminKey) lines.push(`  Admin key: in ${config.dataDir}/admin.key`);
  if (demo) {
    lines.push(
      `  Demo merchant ${demo.merchantId} with a sandbox connector account (${demo.testAccountShortId})`,
      `  Test secret key (shown once): ${demo.testKey}`,
      `  Live secret key (shown once): ${demo.liveKey}`,
      '',
      'Try it:',
      `  curl -s ${base}/v1/payments -H "Authorization: Bearer ${demo.testKey}" \\`,
      `    -H "Content-Type: application/json" -d '{"amount": 5000, "currency": "USD", "payment_method": "pm_card_visa"}'`,
      `  curl -s ${base}/v1/payments/<pay_id>/refunds -X POST -H "Authorization: Bearer ${demo.testKey}" \\`,
      `    -H "Idempotency-Key: $(uuidgen || date +%s%N)" -H "Content-Type: application/json" -d '{"amount": 1500}'`,
    );
  }
  // On stderr, the terminal's: stdout carries the JSON log stream, and whatever consumes it
  // (a log shipper) must never receive the keys. Secrets are never logged.
  process.stderr.write(lines.join('\n') + '\n\n');

  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
