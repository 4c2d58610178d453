/**
 * One SQL dialect, two backends: the same statements through the PostgreSQL handle and the
 * embedded PGlite handle (which speaks the wire protocol to PGlite itself, with prepared
 * statements) give the same rows, types, counts, errors and transaction outcomes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TransactionRolledBackError, sqlState, type Db } from '../../src/db/db.js';
import { createPgliteDb } from '../../src/db/pglite.js';
import { createPostgresDb } from '../../src/db/postgres.js';
import { createTempDatabase, postgresAvailable, type TempDatabase } from '../helpers/databases.js';

const SCHEMA = `CREATE TABLE t (
  id text PRIMARY KEY, n bigint, i integer, flag boolean, j jsonb, tags text[], ts timestamptz,
  u uuid, raw bytea, note text, code text UNIQUE CHECK (code <> 'bad'))`;

const ROWS: unknown[][] = [
  ['a', 9007199254740991, 42, true, JSON.stringify({ z: 1, a: [1, 'two', null], nested: { 'ü': '😀' } }), ['x', 'y'], new Date('2026-11-29T05:00:00.123Z'), '7d444840-9dc0-11d1-b245-5ffdce74fad2', Buffer.from([0, 1, 255]), '\ufeffleading BOM, tab\t, newline\n, emoji 😀', 'c1'],
  ['b', -5, null, false, 'null', [], new Date(0), null, null, '', 'c2'],
  ['c', 0, 2147483647, null, '"just a string"', null, null, null, Buffer.alloc(0), null, null],
];

async function exercise(db: Db) {
  const out: Record<string, unknown> = {};
  await db.exec(SCHEMA);
  const insert = 'INSERT INTO t (id, n, i, flag, j, tags, ts, u, raw, note, code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)';
  out.inserted = [];
  for (const row of ROWS) (out.inserted as number[]).push((await db.query(insert, row)).rowCount);
  // the same statement many times: past the point where a prepared statement gets a generic plan
  for (let k = 0; k < 30; k++) await db.query(insert, [`k${k}`, k, k, k % 2 === 0, '{}', [`${k}`], new Date(k * 1000), null, null, `row ${k}`, null]);
  const all = await db.query<Record<string, unknown>>('SELECT * FROM t ORDER BY id');
  out.rows = all.rows.map((r) => ({ ...r, raw: r.raw === null ? null : Buffer.from(r.raw as Uint8Array).toString('hex') }));
  out.selectCount = all.rowCount;
  out.emptySelect = (await db.query("SELECT * FROM t WHERE id = 'none'")).rowCount;
  out.update = (await db.query("UPDATE t SET note = 'u' WHERE id LIKE 'k%'")).rowCount;
  out.updateReturning = (await db.query<{ id: string }>("UPDATE t SET i = i + 1 WHERE id = 'a' RETURNING id, i")).rows;
  out.conflict = (await db.query("INSERT INTO t (id) VALUES ('a') ON CONFLICT DO NOTHING")).rowCount;
  out.delete = (await db.query("DELETE FROM t WHERE id IN ('k1', 'k2', 'k3')")).rowCount;
  out.expressions = (await db.query('SELECT $1::int + 1 AS sum, $2::text AS t, now() IS NOT NULL AS has_now, NULL::bigint AS nothing', [41, 'é'])).rows;

  const errorOf = async (p: Promise<unknown>) => {
    try {
      await p;
      return 'no error';
    } catch (err) {
      const e = err as { constraint?: string; message: string };
      return { code: sqlState(err), constraint: e.constraint ?? null, message: e.message };
    }
  };
  out.uniqueViolation = await errorOf(db.query(insert, ['d', 1, 1, true, '{}', [], null, null, null, null, 'c1']));
  out.checkViolation = await errorOf(db.query(insert, ['e', 1, 1, true, '{}', [], null, null, null, null, 'bad']));
  out.badInput = await errorOf(db.query('SELECT $1::int AS x', ['not a number']));
  out.badSql = await errorOf(db.query('SELEC 1'));
  out.usableAfterErrors = (await db.query('SELECT count(*)::int AS n FROM t')).rows;

  // a transaction that throws writes nothing; one whose failed statement was caught does not commit
  out.thrown = await errorOf(db.transaction(async (tx) => {
    await tx.query("INSERT INTO t (id) VALUES ('tx1')");
    throw new Error('boom');
  }));
  /** Whether a transaction whose failed statement was swallowed reports that it rolled back. */
  const rolledBack = async (run: Promise<unknown>) => {
    try {
      await run;
      return false;
    } catch (err) {
      return err instanceof TransactionRolledBackError;
    }
  };
  out.swallowedIsRolledBack = await rolledBack(db.transaction(async (tx) => {
    await tx.query("INSERT INTO t (id) VALUES ('tx2')");
    await tx.query("INSERT INTO t (id) VALUES ('a')").catch(() => undefined);
    return 'looked fine';
  }));
  out.committed = await db.transaction(async (tx) => {
    await tx.query("INSERT INTO t (id) VALUES ('tx3')");
    return (await tx.query<{ id: string }>("SELECT id FROM t WHERE id LIKE 'tx%' ORDER BY id")).rows;
  });
  out.afterTransactions = (await db.query<{ id: string }>("SELECT id FROM t WHERE id LIKE 'tx%' ORDER BY id")).rows;

  // lastQuery: the statement and the commit together; the transaction is over when it resolves
  out.lastCommitted = await db.transaction(async (tx) => {
    await tx.query("INSERT INTO t (id) VALUES ('last1')");
    const r = await tx.lastQuery<{ id: string }>("INSERT INTO t (id) VALUES ('last2') RETURNING id");
    return { rows: r.rows, after: await errorOf(tx.query('SELECT 1')) };
  });
  // a failed last statement rolls back the whole transaction, with the statement's own error
  out.lastFailed = await errorOf(db.transaction(async (tx) => {
    await tx.query("INSERT INTO t (id) VALUES ('last3')");
    await tx.lastQuery("INSERT INTO t (id) VALUES ('a')");
  }));
  // a failed last statement swallowed: the transaction still does not look committed
  out.lastSwallowedIsRolledBack = await rolledBack(db.transaction(async (tx) => {
    await tx.query("INSERT INTO t (id) VALUES ('last4')");
    await tx.lastQuery("INSERT INTO t (id) VALUES ('a')").catch(() => undefined);
    return 'looked fine';
  }));
  // once lastQuery resolved the transaction is committed, whatever fn does next
  out.throwAfterLast = await errorOf(db.transaction(async (tx) => {
    await tx.lastQuery("INSERT INTO t (id) VALUES ('last5')");
    throw new Error('after the commit');
  }));
  out.afterLast = (await db.query<{ id: string }>("SELECT id FROM t WHERE id LIKE 'last%' ORDER BY id")).rows;
  out.usableAfterLast = (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM t WHERE id LIKE 'last%'")).rows;

  // concurrent transactions each see their own writes and all commit
  await Promise.all(Array.from({ length: 8 }, (_, k) => db.transaction(async (tx) => {
    await tx.query('INSERT INTO t (id, n) VALUES ($1, $2)', [`p${k}`, k]);
    await tx.query('UPDATE t SET n = n + 100 WHERE id = $1', [`p${k}`]);
  })));
  out.parallel = (await db.query("SELECT sum(n)::bigint AS s FROM t WHERE id LIKE 'p%'")).rows;

  // a prepared SELECT * survives the table changing shape under it
  await db.query("SELECT * FROM t WHERE id = 'a'");
  await db.exec('ALTER TABLE t ADD COLUMN extra text DEFAULT \'new\'');
  out.afterAlter = (await db.query<{ extra: string }>("SELECT * FROM t WHERE id = 'a'")).rows.map((r) => r.extra);

  // a large result and a large parameter
  const big = 'x'.repeat(3 * 1024 * 1024);
  await db.query("UPDATE t SET note = $1 WHERE id = 'b'", [big]);
  out.bigRoundTrip = (await db.query<{ note: string }>("SELECT note FROM t WHERE id = 'b'")).rows[0].note === big;
  out.manyRows = (await db.query('SELECT g FROM generate_series(1, 20000) g')).rowCount;
  return out;
}

describe('PGlite and PostgreSQL answer alike', () => {
  let temp: TempDatabase | undefined;
  const dbs: Db[] = [];
  before(async () => {
    if (await postgresAvailable()) temp = await createTempDatabase();
    else if (process.env.CI === 'true') throw new Error('PostgreSQL is required under CI=true');
  });
  after(async () => {
    for (const db of dbs) await db.close();
    await temp?.drop();
  });

  test('rows, types, counts, errors, transactions, a changed table, large values', async (t) => {
    const lite = await createPgliteDb('memory://');
    dbs.push(lite);
    const fromLite = await exercise(lite);
    // what PGlite gives must hold by itself, not only agree
    assert.deepEqual(fromLite.inserted, [1, 1, 1]);
    assert.equal((fromLite.rows as Record<string, unknown>[])[0].note, ROWS[0][9], 'text comes back as sent, a leading U+FEFF included');
    assert.equal((fromLite.rows as Record<string, unknown>[])[0].n, 9007199254740991);
    assert.equal(fromLite.swallowedIsRolledBack, true);
    assert.deepEqual(fromLite.afterTransactions, [{ id: 'tx3' }]);
    assert.deepEqual(fromLite.afterAlter, ['new']);
    assert.equal(fromLite.bigRoundTrip, true);
    assert.equal(fromLite.manyRows, 20000);
    assert.equal((fromLite.uniqueViolation as { code: string }).code, '23505');
    assert.deepEqual((fromLite.lastCommitted as { rows: unknown }).rows, [{ id: 'last2' }]);
    assert.notEqual((fromLite.lastCommitted as { after: unknown }).after, 'no error', 'nothing runs after lastQuery');
    assert.equal((fromLite.lastFailed as { code: string }).code, '23505');
    assert.equal(fromLite.lastSwallowedIsRolledBack, true);
    assert.deepEqual(fromLite.afterLast, [{ id: 'last1' }, { id: 'last2' }, { id: 'last5' }]);

    if (!temp) return t.skip('no PostgreSQL to compare with');
    const pgDb = createPostgresDb({ connectionString: temp.url, max: 4 });
    dbs.push(pgDb);
    const fromPg = await exercise(pgDb);
    assert.deepEqual(fromLite, fromPg);
  });
});
