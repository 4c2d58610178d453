import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MIGRATIONS, migrate, splitStatements } from '../../src/db/migrate.js';
import { createPgliteDb } from '../../src/db/pglite.js';
import { createPostgresDb } from '../../src/db/postgres.js';
import { createTempDatabase, postgresOrSkip } from '../helpers/databases.js';

describe('database handle', () => {
  test('PGlite on disk: migrations apply once, survive a reopen, and fsync is on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'settle-db-'));
    try {
      const first = await createPgliteDb(dir);
      assert.deepEqual(await migrate(first), MIGRATIONS.map((m) => m.id));
      assert.equal((await first.query<{ fsync: string }>('SHOW fsync')).rows[0].fsync, 'on');
      await first.query("INSERT INTO merchants (id, name) VALUES ('mer_x', 'kept')");
      await first.close();
      const second = await createPgliteDb(dir);
      assert.deepEqual(await migrate(second), [], 'nothing applied twice');
      const kept = await second.query('SELECT name FROM merchants');
      assert.equal(kept.rowCount, 1, 'rowCount counts the rows a SELECT returns');
      const none = await second.query("SELECT 1 FROM merchants WHERE id = 'nope'");
      assert.equal(none.rowCount, 0);
      const upd = await second.query("UPDATE merchants SET name = 'x'");
      assert.equal(upd.rowCount, 1, 'rowCount counts the rows a write touched');
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('PostgreSQL: concurrent migrations from several processes apply once; rowCount agrees with PGlite', async (t) => {
    if (!(await postgresOrSkip(t))) return;
    const temp = await createTempDatabase();
    const dbs = [1, 2, 3].map(() => createPostgresDb({ connectionString: temp.url, max: 2 }));
    try {
      const applied = await Promise.all(dbs.map((db) => migrate(db)));
      assert.deepEqual(applied.flat().sort(), MIGRATIONS.map((m) => m.id).sort(), 'each migration applied by one process');
      await dbs[0].query("INSERT INTO merchants (id, name) VALUES ('mer_x', 'kept')");
      assert.equal((await dbs[1].query('SELECT name FROM merchants')).rowCount, 1);
      assert.equal((await dbs[1].query("UPDATE merchants SET name = 'y'")).rowCount, 1);
      // a deadlock-free transaction that throws rolls back everything it wrote
      await assert.rejects(dbs[2].transaction(async (tx) => {
        await tx.query("INSERT INTO merchants (id, name) VALUES ('mer_y', 'gone')");
        throw new Error('boom');
      }));
      assert.equal((await dbs[0].query("SELECT 1 FROM merchants WHERE id = 'mer_y'")).rowCount, 0);
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
      await temp.drop();
    }
  });

  test('a database made by an earlier release gets only the migrations it lacks', async () => {
    const db = await createPgliteDb('memory://');
    try {
      // a database as 001-initial alone left it: its schema and its one migration row
      const [first] = MIGRATIONS;
      await db.transaction(async (tx) => {
        await tx.query('CREATE TABLE schema_migrations (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
        for (const statement of splitStatements(first.sql)) await tx.query(statement);
        await tx.query('INSERT INTO schema_migrations (id) VALUES ($1)', [first.id]);
      });
      assert.equal((await db.query("SELECT 1 FROM pg_indexes WHERE indexname = 'events_object'")).rowCount, 1);
      assert.deepEqual(await migrate(db), MIGRATIONS.slice(1).map((m) => m.id));
      const left = await db.query("SELECT 1 FROM pg_indexes WHERE indexname = 'events_object'");
      assert.equal(left.rowCount, 0, 'events_object, which no query reads, is dropped');
    } finally {
      await db.close();
    }
  });

  test('splits a script at top-level semicolons, keeping function bodies whole', () => {
    const parts = splitStatements(`CREATE TABLE a (x int); -- a comment; with a semicolon
      CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no; never'; END $$;
      SELECT 1`);
    assert.equal(parts.length, 3);
    assert.match(parts[1], /RAISE EXCEPTION 'no; never'; END \$\$$/);
  });
});
