import type { Db } from './db.js';
import * as m001 from './migrations/001-initial.js';
import * as m002 from './migrations/002-drop-events-object-index.js';
import * as m003 from './migrations/003-reconciliation.js';
import * as m007 from './migrations/007-restricted-keys-and-console-sessions.js';
import * as m009 from './migrations/009-webhook-endpoint-dialect.js';
import * as m004 from './migrations/004-encryption-key-fingerprint.js';
import * as m005 from './migrations/005-webhook-delivery-hardening.js';
import * as m010 from './migrations/010-events-stream-position.js';
import * as m011 from './migrations/011-capture-corrections.js';
import * as m012 from './migrations/012-payments-processing.js';

export interface Migration {
  id: string;
  sql: string;
}

/** In order; never edit a migration that has shipped, add a new one. */
export const MIGRATIONS: readonly Migration[] = [
  { id: '001-initial', sql: m001.sql },
  { id: '002-drop-events-object-index', sql: m002.sql },
  { id: '007-restricted-keys-and-console-sessions', sql: m007.sql },
  { id: '009-webhook-endpoint-dialect', sql: m009.sql },
  { id: '003-reconciliation', sql: m003.sql },
  { id: '004-encryption-key-fingerprint', sql: m004.sql },
  { id: '005-webhook-delivery-hardening', sql: m005.sql },
  { id: '010-events-stream-position', sql: m010.sql },
  { id: '011-capture-corrections', sql: m011.sql },
  { id: '012-payments-processing', sql: m012.sql },
];

/** Arbitrary constant: the advisory lock that serializes migrations across processes. */
const MIGRATION_LOCK = 727_274_001;

/**
 * Applies pending migrations, each in its own transaction, under an advisory lock so that
 * several gateway processes starting together do not race. Returns the ids applied.
 */
export async function migrate(db: Db): Promise<string[]> {
  const applied: string[] = [];
  for (const migration of MIGRATIONS) {
    const done = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      // under the lock: concurrent CREATE TABLE IF NOT EXISTS would race in the catalog
      await tx.query('CREATE TABLE IF NOT EXISTS schema_migrations (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
      const seen = await tx.query('SELECT 1 FROM schema_migrations WHERE id = $1', [migration.id]);
      if (seen.rowCount > 0) return false;
      for (const statement of splitStatements(migration.sql)) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (id) VALUES ($1)', [migration.id]);
      return true;
    });
    if (done) applied.push(migration.id);
  }
  return applied;
}

/** True when every known migration is applied (readiness). */
export async function migrationsApplied(db: Db): Promise<boolean> {
  try {
    const r = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
    return r.rows[0].n >= MIGRATIONS.length;
  } catch {
    return false;
  }
}

/**
 * Splits a script into statements at top-level semicolons, keeping `$$ … $$` bodies whole, so a
 * migration runs statement by statement inside one transaction on both backends.
 */
export function splitStatements(script: string): string[] {
  const out: string[] = [];
  let current = '';
  let inDollar = false;
  let inLineComment = false;
  for (let i = 0; i < script.length; i++) {
    const ch = script[i];
    if (inLineComment) {
      if (ch === '\n') inLineComment = false;
      continue;
    }
    if (!inDollar && ch === '-' && script[i + 1] === '-') {
      inLineComment = true;
      continue;
    }
    if (ch === '$' && script[i + 1] === '$') {
      inDollar = !inDollar;
      current += '$$';
      i++;
      continue;
    }
    if (ch === ';' && !inDollar) {
      if (current.trim()) out.push(current.trim());
      current = '';
      continue;
    }
    current += ch;
  }
  if (current.trim()) out.push(current.trim());
  return out;
}
