/**
 * Captures the exact SQL the gateway issues for one refund: the real app (buildApp, the same
 * hooks, services and repositories as `settle serve`) runs in this process on a recording
 * database handle, and one refund request is injected. The recording is what F_db replays.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime } from '../src/bootstrap.js';
import { loadConfig } from '../src/config.js';
import type { Db, QueryResult, Tx } from '../src/db/db.js';
import { createPostgresDb } from '../src/db/postgres.js';
import { buildApp } from '../src/http/app.js';
import { createLogger } from '../src/lib/logger.js';
import { ADMIN_KEY, ENCRYPTION_KEY } from './processes.js';
import type { Recording, RecordedStep } from './protocol.js';
import { paymentRef, type BenchMerchant } from './seed.js';

/** Ids the gateway generates per request, and the sandbox's refund refs. */
const GENERATED = /(?:re|txn|evt)_[0-9a-z]{10}[0-9A-Za-z]{14}|sbx_re_[0-9A-Za-z]{16}/g;

function recordingDb(inner: Db, steps: RecordedStep[], on: () => boolean): Db {
  const record = (step: () => RecordedStep | undefined, sql: string, params: readonly unknown[] | undefined, last?: boolean) => {
    const s = step();
    if (s) s.statements.push({ text: sql, values: structuredClone([...(params ?? [])]), ...(last ? { last } : {}) });
  };
  const db: Db = {
    kind: inner.kind,
    query<T>(sql: string, params?: readonly unknown[]) {
      record(() => {
        if (!on()) return undefined;
        const s: RecordedStep = { tx: false, statements: [] };
        steps.push(s);
        return s;
      }, sql, params);
      return inner.query<T>(sql, params);
    },
    transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
      return inner.transaction((tx) => {
        const s: RecordedStep | undefined = on() ? { tx: true, statements: [] } : undefined;
        if (s) steps.push(s);
        // a statement sent while an earlier one is still unanswered is pipelined behind it
        let unanswered = 0;
        const track = <R>(sql: string, params: readonly unknown[] | undefined, last: boolean, send: () => Promise<R>) => {
          record(() => s, sql, params, last);
          const st = s?.statements.at(-1);
          if (st && unanswered > 0) st.pipelined = true;
          unanswered++;
          return send().finally(() => unanswered--);
        };
        return fn({
          query: <R>(sql: string, params?: readonly unknown[]) => track(sql, params, false, () => tx.query<R>(sql, params)),
          lastQuery: <R>(sql: string, params?: readonly unknown[]) => track(sql, params, true, () => tx.lastQuery<R>(sql, params)),
        });
      });
    },
    exec: (sql) => inner.exec(sql),
    close: () => inner.close(),
  };
  return db;
}

export interface StatementProfile {
  /** Statements per refund, BEGIN/COMMIT not counted. */
  statements: number;
  /** Round trips to the database per refund: BEGIN travels with the first statement, COMMIT with a `last` one, a `pipelined` statement with the one before it. */
  roundTrips: number;
  transactions: number;
  /** Transactions that write (each one a WAL flush at commit). */
  commits: number;
  steps: { tx: boolean; statements: string[] }[];
}

const WRITES = /\b(INSERT|UPDATE|DELETE)\b/i;

export function profileOf(rec: Recording): StatementProfile {
  let statements = 0;
  let roundTrips = 0;
  let commits = 0;
  for (const s of rec.steps) {
    statements += s.statements.length;
    // BEGIN goes out with the first statement, COMMIT with a last one (pipelined)
    roundTrips += s.statements.filter((st) => !st.pipelined).length + (s.tx && !s.statements.at(-1)?.last ? 1 : 0);
    if (s.tx || s.statements.some((st) => WRITES.test(st.text))) commits++;
  }
  return {
    statements,
    roundTrips,
    transactions: rec.steps.filter((s) => s.tx).length,
    commits,
    steps: rec.steps.map((s) => ({ tx: s.tx, statements: s.statements.map((st) => st.text.replace(/\s+/g, ' ').slice(0, 160)) })),
  };
}

/**
 * Runs two full refunds through the in-process app (the first warms the auth and kill-switch
 * caches, as on a running gateway) and records the second.
 */
export async function recordRefund(databaseUrl: string, m: BenchMerchant, warmPayment: string, recordedPayment: string, amount: number): Promise<Recording> {
  const dataDir = mkdtempSync(join(tmpdir(), 'settle-bench-rec-'));
  const steps: RecordedStep[] = [];
  let recording = false;
  const inner = createPostgresDb({ connectionString: databaseUrl, max: 4 });
  const db = recordingDb(inner, steps, () => recording);
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    SETTLE_DATA_DIR: dataDir,
    SETTLE_ADMIN_KEY: ADMIN_KEY,
    SETTLE_ENCRYPTION_KEY: ENCRYPTION_KEY,
    LOG_LEVEL: 'silent',
    SETTLE_RATE_LIMIT_PER_SECOND: '0',
  });
  const logger = createLogger('silent');
  const rt = await createRuntime(config, logger, { db });
  const app = await buildApp({ config, db, logger, services: rt.services, adminKey: ADMIN_KEY });
  try {
    const refund = async (paymentId: string, key: string) => {
      const r = await app.inject({
        method: 'POST',
        url: `/v1/payments/${paymentId}/refunds`,
        headers: { authorization: `Bearer ${m.key}`, 'content-type': 'application/json', 'idempotency-key': key },
        payload: '{}',
      });
      if (r.statusCode !== 201) throw new Error(`recording refund failed: ${r.statusCode} ${r.body}`);
    };
    await refund(warmPayment, 'bench-record-warm');
    const key = 'bench-record-key';
    recording = true;
    await refund(recordedPayment, key);
    recording = false;

    // per-second cache refreshes (auth, kill switch) are not part of one refund's cost
    const kept = steps.filter((s) => !s.statements.some((st) => /\b(api_keys|feature_flags)\b/.test(st.text)));
    const tokens = new Set<string>([recordedPayment, paymentRef(recordedPayment, amount), key]);
    const scan = (v: unknown) => {
      if (typeof v === 'string') for (const t of v.match(GENERATED) ?? []) tokens.add(t);
      else if (Array.isArray(v)) v.forEach(scan);
    };
    for (const s of kept) for (const st of s.statements) st.values.forEach(scan);
    return { steps: kept, tokens: [...tokens], paymentId: recordedPayment, paymentRef: paymentRef(recordedPayment, amount), idempotencyKey: key };
  } finally {
    await app.close();
    await inner.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
