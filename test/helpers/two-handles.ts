/**
 * Two database handles on one fresh, migrated database, as two gateway processes would hold
 * them, on each backend: PGlite (one in-memory database, so both handles are the same) and
 * PostgreSQL (a temporary database dropped at close). Under CI a missing PostgreSQL fails.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { Db } from '../../src/db/db.js';
import { migrate } from '../../src/db/migrate.js';
import { createPgliteDb } from '../../src/db/pglite.js';
import { createPostgresDb } from '../../src/db/postgres.js';
import { createTempDatabase, postgresAvailable, TEST_DATABASE_URL } from './databases.js';

export interface Backend {
  db: Db;
  /** A second, independent handle (another "process"); the same handle on PGlite. */
  db2: Db;
  close(): Promise<void>;
}

export async function openPglite(): Promise<Backend> {
  const db = await createPgliteDb('memory://');
  await migrate(db);
  return { db, db2: db, close: () => db.close() };
}

export async function openPostgres(): Promise<Backend> {
  const temp = await createTempDatabase();
  const db = createPostgresDb({ connectionString: temp.url, max: 10 });
  const db2 = createPostgresDb({ connectionString: temp.url, max: 10 });
  await migrate(db);
  return {
    db,
    db2,
    async close() {
      await db2.close();
      await db.close();
      await temp.drop();
    },
  };
}

/** Declares `suite` once per backend; PostgreSQL's is skipped when unreachable, failed under CI. */
export async function onEachBackend(suite: (name: string, open: () => Promise<Backend>, skip?: string) => void): Promise<void> {
  const pgUp = await postgresAvailable();
  if (!pgUp && process.env.CI === 'true') {
    it('PostgreSQL is reachable under CI', () => assert.fail(`CI=true but PostgreSQL is unreachable at ${TEST_DATABASE_URL}`));
  }
  suite('pglite', openPglite);
  suite('postgres', openPostgres, pgUp ? undefined : `PostgreSQL unreachable at ${TEST_DATABASE_URL}`);
}
