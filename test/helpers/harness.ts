import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createConnectors, createRuntime, type Runtime } from '../../src/bootstrap.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createSandboxConnector } from '../../src/connectors/sandbox/sandbox.connector.js';
import type { ConnectorRegistry } from '../../src/connectors/connector.js';
import type { Db } from '../../src/db/db.js';
import { createPgliteDb } from '../../src/db/pglite.js';
import { createPostgresDb } from '../../src/db/postgres.js';
import { buildApp } from '../../src/http/app.js';
import { createLogger } from '../../src/lib/logger.js';
import { Contract } from './contract.js';
import { pgliteInitialDataDir } from './pglite-initdb.js';
import { createTempDatabase, postgresOrSkip, type TempDatabase } from './databases.js';

export type Backend = 'pglite' | 'postgres';
/**
 * Both by default. `SETTLE_TEST_BACKENDS=postgres` (or `pglite`) runs the suites on one only: the
 * mutation run (test/mutation) runs its tests once per mutant and needs them fast.
 */
export const BACKENDS: Backend[] = process.env.SETTLE_TEST_BACKENDS
  ? (process.env.SETTLE_TEST_BACKENDS.split(',').map((b) => b.trim()).filter((b) => b === 'pglite' || b === 'postgres') as Backend[])
  : ['pglite', 'postgres'];

/**
 * Inside a `describe`: a harness opened before its tests (handed to `opened`) and closed after.
 * Returns the `it` the tests use, which skips them on `postgres` when there is no server (locally;
 * under CI=true a missing server fails the hook instead).
 */
export function harnessFor(backend: Backend, opened: (h: Harness) => void) {
  let skip = false;
  let h: Harness | undefined;
  before(async (t) => {
    if (backend === 'postgres' && !(await postgresOrSkip(t as never))) {
      skip = true;
      return;
    }
    h = await createHarness(backend);
    opened(h);
  });
  after(async () => h?.close());
  return (name: string, fn: () => Promise<void>) => test(name, async (t) => (skip ? t.skip('no postgres') : fn()));
}

export const ADMIN_KEY = 'sk_admin_test_0123456789abcdefghijklmnop';
export const ENCRYPTION_KEY = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

export interface Res {
  status: number;
  body: any;
  raw: string;
  headers: Record<string, string | string[] | number | undefined>;
}

export interface CallOptions {
  key?: string | null;
  body?: unknown;
  /** Sent as is, instead of JSON-encoding `body`. */
  payload?: string;
  headers?: Record<string, string>;
  idempotencyKey?: string;
  /** The client's address as the gateway sees it (default 127.0.0.1). */
  remoteAddress?: string;
}

export interface Harness {
  backend: Backend;
  app: FastifyInstance;
  db: Db;
  rt: Runtime;
  dbUrl?: string;
  merchant: { id: string; testKey: string; liveKey: string; testAccount: any; liveAccount: any };
  call(method: string, url: string, opts?: CallOptions): Promise<Res>;
  admin(method: string, url: string, body?: unknown): Promise<Res>;
  /** A second merchant, for isolation tests. */
  newMerchant(name?: string): Promise<{ id: string; testKey: string; liveKey: string; testAccount: any }>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  env?: Record<string, string>;
  connectors?: ConnectorRegistry;
  logStream?: NodeJS.WritableStream;
  /** Wraps the database handle the gateway is given (to observe its statements). */
  wrapDb?: (db: Db) => Db;
}

/**
 * The gateway's connectors, with the sandbox also standing in for a live-mode PSP: the real
 * sandbox is test-mode only, and the in-process tests of live mode (isolation of modes, keys,
 * permissions) need some live PSP that answers without a network.
 */
export function harnessConnectors(config: Config): ConnectorRegistry {
  const registry = new Map(createConnectors(config));
  registry.set('sandbox', createSandboxConnector({ timeoutMs: config.connectorTimeoutMs, liveModeStandIn: true }));
  return registry;
}

/** A gateway on a fresh database (in-memory PGlite, or a new database on the test Postgres). */
export async function createHarness(backend: Backend, opts: HarnessOptions = {}): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'settle-test-'));
  let temp: TempDatabase | undefined;
  let db: Db;
  if (backend === 'postgres') {
    temp = await createTempDatabase();
    db = createPostgresDb({ connectionString: temp.url, max: Number(process.env.SETTLE_DB_POOL_SIZE ?? 8) });
  } else {
    db = await createPgliteDb('memory://', undefined, { loadDataDir: await pgliteInitialDataDir() });
  }
  if (opts.wrapDb) db = opts.wrapDb(db);
  const config = loadConfig({
    SETTLE_DATA_DIR: dataDir,
    SETTLE_ADMIN_KEY: ADMIN_KEY,
    SETTLE_ENCRYPTION_KEY: ENCRYPTION_KEY,
    LOG_LEVEL: opts.logStream ? 'debug' : 'silent',
    SETTLE_RATE_LIMIT_PER_SECOND: '0',
    SETTLE_AUTH_FAILURES_PER_MINUTE: '0',
    ...(temp ? { DATABASE_URL: temp.url } : {}),
    ...opts.env,
  });
  const logger = createLogger(config.logLevel, opts.logStream);
  const rt = await createRuntime(config, logger, { db, connectors: opts.connectors ?? harnessConnectors(config) });
  const app = await buildApp({ config, db, logger, services: rt.services, adminKey: ADMIN_KEY });
  await app.ready();
  const contract = new Contract(app.swagger() as unknown as Record<string, unknown>);

  const call = async (method: string, url: string, o: CallOptions = {}): Promise<Res> => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.key) headers.authorization = `Bearer ${o.key}`;
    if (o.idempotencyKey) headers['idempotency-key'] = o.idempotencyKey;
    let payload: string | undefined = o.payload;
    if (payload === undefined && o.body !== undefined) {
      payload = JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const r = await app.inject({ method: method as 'GET', url, headers, payload, remoteAddress: o.remoteAddress });
    contract.check(method, url, r.statusCode, r.headers, r.body);
    let body: unknown;
    try {
      body = r.body ? JSON.parse(r.body) : undefined;
    } catch {
      body = r.body;
    }
    return { status: r.statusCode, body, raw: r.body, headers: r.headers };
  };
  const admin = (method: string, url: string, body?: unknown) => call(method, url, { key: ADMIN_KEY, body });

  const newMerchant = async (name = 'Test Merchant') => {
    const m = await admin('POST', '/v1/admin/merchants', { name });
    if (m.status !== 201) throw new Error(`merchant create failed: ${m.raw}`);
    const ta = await call('POST', '/v1/connector_accounts', { key: m.body.api_keys.test, body: { connector: 'sandbox', name: 'test acct' } });
    return { id: m.body.id, testKey: m.body.api_keys.test, liveKey: m.body.api_keys.live, testAccount: ta.body };
  };
  const m = await newMerchant('Harness Merchant');
  const la = await call('POST', '/v1/connector_accounts', { key: m.liveKey, body: { connector: 'sandbox', name: 'live acct' } });

  return {
    backend,
    app,
    db,
    rt,
    dbUrl: temp?.url,
    merchant: { ...m, liveAccount: la.body },
    call,
    admin,
    newMerchant,
    async close() {
      await app.close();
      await db.close();
      await temp?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A payment through the API, asserting it succeeded (or required capture). */
export async function pay(h: Harness, body: Record<string, unknown> = {}, key = h.merchant.testKey): Promise<any> {
  const r = await h.call('POST', '/v1/payments', {
    key,
    body: { amount: 10_000, currency: 'USD', payment_method: 'pm_card_visa', ...body },
  });
  if (r.status !== 201) throw new Error(`payment failed: ${r.status} ${r.raw}`);
  return r.body;
}
