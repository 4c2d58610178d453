/**
 * Transaction groups (src/db/group.ts) on both backends: waiting transactions share one, never
 * two with one key, members start in key order, a member failing after a read only fails
 * itself, one failing after a write sends everyone back to a transaction of their own, a failed
 * COMMIT fails everyone — and on a real server, concurrent
 * groups over overlapping keys neither deadlock nor lose an update.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TransactionRolledBackError, sqlState, type Db, type Tx } from '../../src/db/db.js';
import { groupLimits, TransactionGroups } from '../../src/db/group.js';
import { loadConfig } from '../../src/config.js';
import { createPgliteDb } from '../../src/db/pglite.js';
import { createPostgresDb } from '../../src/db/postgres.js';
import { createTempDatabase, postgresOrSkip, type TempDatabase } from '../helpers/databases.js';

const SCHEMA = `
  CREATE TABLE g (key text PRIMARY KEY, n integer NOT NULL DEFAULT 0);
  CREATE TABLE gd (v integer UNIQUE DEFERRABLE INITIALLY DEFERRED);
  INSERT INTO g (key) SELECT 'k' || i FROM generate_series(1, 10) i;`;

/** The database handle, counting the transactions it opens and logging each statement's key. */
function counted(inner: Db) {
  const log: string[] = [];
  let transactions = 0;
  const db: Db = {
    kind: inner.kind,
    query: (sql, params) => inner.query(sql, params),
    exec: (sql) => inner.exec(sql),
    close: () => inner.close(),
    transaction(fn) {
      transactions++;
      return inner.transaction((tx) => fn({
        query: (sql, params) => {
          log.push(String(params?.[0]));
          return tx.query(sql, params);
        },
        lastQuery: (sql, params) => {
          log.push(String(params?.[0]));
          return tx.lastQuery(sql, params);
        },
      }));
    },
  };
  return { db, log, transactions: () => transactions };
}

/** Holds the only slot (maxInFlight 1) until released, so what is queued meanwhile forms one group. */
function blocker(groups: TransactionGroups) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const done = groups.run('blocker', async (tx) => {
    await tx.query('SELECT $1::text', ['blocker']);
    await gate;
  });
  return { release, done };
}

/** Locks the row, adds one, and answers with the transaction's id. */
const bump = (key: string) => async (tx: Tx) => {
  await tx.query('SELECT n FROM g WHERE key = $1 FOR UPDATE', [key]);
  await tx.query('UPDATE g SET n = n + 1 WHERE key = $1', [key]);
  return (await tx.query<{ id: string }>('SELECT $1::text AS k, txid_current()::text AS id', [key])).rows[0].id;
};

async function counts(db: Db) {
  const r = await db.query<{ key: string; n: number }>('SELECT key, n FROM g WHERE n <> 0 ORDER BY key');
  return Object.fromEntries(r.rows.map((x) => [x.key, x.n]));
}

function suite(name: string, open: () => Promise<{ db: Db; cleanup: () => Promise<void> }>) {
  describe(`transaction groups on ${name}`, () => {
    let inner: Db;
    let cleanup: (() => Promise<void>) | undefined;
    before(async (t) => {
      if (name === 'PostgreSQL' && !(await postgresOrSkip(t as never))) return;
      ({ db: inner, cleanup } = await open());
    });
    after(async () => {
      await cleanup?.();
    });
    const fresh = async () => {
      await inner.exec('DROP TABLE IF EXISTS g, gd;' + SCHEMA);
      const c = counted(inner);
      return { ...c, groups: new TransactionGroups(c.db, { maxInFlight: 1, maxSize: 16 }) };
    };

    test('a transaction that finds a free slot runs at once, alone', async (t) => {
      if (!cleanup) return t.skip('no database');
      const { db, groups, transactions } = await fresh();
      const id = await groups.run('k1', bump('k1'));
      assert.match(id, /^\d+$/);
      assert.equal(transactions(), 1);
      assert.deepEqual(groups.stats, { transactions: 1, members: 1, groupsRolledBack: 0 });
      assert.deepEqual(await counts(db), { k1: 1 });
    });

    test('transactions that wait share one, their first statements sent in key order', async (t) => {
      if (!cleanup) return t.skip('no database');
      const { db, groups, log, transactions } = await fresh();
      const b = blocker(groups);
      const keys = ['k5', 'k3', 'k1', 'k4', 'k2'];
      const runs = keys.map((k) => groups.run(k, bump(k)));
      b.release();
      await b.done;
      const ids = await Promise.all(runs);
      assert.equal(new Set(ids).size, 1, 'one database transaction for the five');
      assert.equal(transactions(), 2);
      assert.deepEqual(groups.stats, { transactions: 2, members: 6, groupsRolledBack: 0 });
      // after the blocker's statement: each member's locking statement, in key order
      assert.deepEqual(log.slice(1, 6), ['k1', 'k2', 'k3', 'k4', 'k5']);
      assert.deepEqual(await counts(db), { k1: 1, k2: 1, k3: 1, k4: 1, k5: 1 });
    });

    test('with gatherTurn, the steps started in one event-loop turn share a transaction', async (t) => {
      if (!cleanup) return t.skip('no database');
      const { db } = await fresh();
      const c = counted(inner);
      const groups = new TransactionGroups(c.db, { maxInFlight: 1, maxSize: 16, gatherTurn: true });
      const ids = await Promise.all(['k3', 'k1', 'k2'].map((k) => groups.run(k, bump(k))));
      assert.equal(new Set(ids).size, 1, 'one transaction for the three');
      assert.equal(c.transactions(), 1);
      assert.deepEqual(c.log.slice(0, 3), ['k1', 'k2', 'k3']);
      // a lone step still runs, in the next turn
      assert.match(await groups.run('k4', bump('k4')), /^\d+$/);
      assert.equal(c.transactions(), 2);
      assert.deepEqual(groups.stats, { transactions: 2, members: 4, groupsRolledBack: 0 });
      assert.deepEqual(await counts(db), { k1: 1, k2: 1, k3: 1, k4: 1 });
    });

    test('two transactions for one key never share one: the second sees the first committed', async (t) => {
      if (!cleanup) return t.skip('no database');
      const { db, groups } = await fresh();
      const b = blocker(groups);
      const first = groups.run('k1', bump('k1'));
      const second = groups.run('k1', async (tx) => {
        const r = await tx.query<{ n: number }>('SELECT n FROM g WHERE key = $1 FOR UPDATE', ['k1']);
        await tx.query('UPDATE g SET n = n + 1 WHERE key = $1', ['k1']);
        return { seen: r.rows[0].n, id: (await tx.query<{ id: string }>('SELECT $1::text AS k, txid_current()::text AS id', ['k1'])).rows[0].id };
      });
      const other = groups.run('k2', bump('k2'));
      b.release();
      const [a, s, o] = await Promise.all([first, second, other]);
      assert.equal(a, o, 'k1 and k2 shared a transaction');
      assert.notEqual(s.id, a, 'the second k1 ran in the next one');
      assert.equal(s.seen, 1, 'and saw the first one committed');
      assert.deepEqual(await counts(db), { k1: 2, k2: 1 });
    });

    test('a member that fails rolls its group back; every member then runs alone', async (t) => {
      if (!cleanup) return t.skip('no database');
      const { db, groups } = await fresh();
      const b = blocker(groups);
      let failingRuns = 0;
      const ok1 = groups.run('k1', bump('k1'));
      const failing = groups.run('k2', async (tx) => {
        failingRuns++;
        await bump('k2')(tx);
        throw new Error('refused after writing');
      });
      const ok3 = groups.run('k3', bump('k3'));
      b.release();
      const [r1, r2, r3] = await Promise.allSettled([ok1, failing, ok3]);
      assert.equal(r1.status, 'fulfilled');
      assert.equal(r3.status, 'fulfilled');
      assert.equal(r2.status, 'rejected');
      assert.equal((r2 as PromiseRejectedResult).reason.message, 'refused after writing');
      assert.notEqual((r1 as PromiseFulfilledResult<string>).value, (r3 as PromiseFulfilledResult<string>).value, 'k1 and k3 committed alone');
      assert.equal(failingRuns, 2, 'the failing member ran in the group, then alone');
      assert.equal(groups.stats.groupsRolledBack, 1);
      assert.deepEqual(await counts(db), { k1: 1, k3: 1 }, "k1 and k3 once each, nothing of k2's");
    });

    test('a member that fails having only read gets its error; the others commit together', async (t) => {
      if (!cleanup) return t.skip('no database');
      const { db, groups } = await fresh();
      const b = blocker(groups);
      let refusedRuns = 0;
      const ok1 = groups.run('k1', bump('k1'));
      const refused = groups.run('k2', async (tx) => {
        refusedRuns++;
        const r = await tx.query<{ n: number }>('SELECT n FROM g WHERE key = $1 FOR UPDATE', ['k2']);
        throw new Error(`refused at n = ${r.rows[0].n}`);
      });
      const ok3 = groups.run('k3', bump('k3'));
      b.release();
      const [r1, r2, r3] = await Promise.allSettled([ok1, refused, ok3]);
      assert.ok(r2.status === 'rejected' && r2.reason.message === 'refused at n = 0', String((r2 as PromiseRejectedResult).reason));
      assert.ok(r1.status === 'fulfilled' && r3.status === 'fulfilled');
      assert.equal(r1.value, r3.value, 'k1 and k3 committed in the group');
      assert.equal(refusedRuns, 1, 'not run again');
      assert.equal(groups.stats.groupsRolledBack, 0);
      assert.deepEqual(await counts(db), { k1: 1, k3: 1 });
    });

    test('a failed statement a member catches still rolls the group back', async (t) => {
      if (!cleanup) return t.skip('no database');
      const { db, groups } = await fresh();
      const b = blocker(groups);
      const ok1 = groups.run('k1', bump('k1'));
      const swallowing = groups.run('k2', async (tx) => {
        await bump('k2')(tx);
        try {
          await tx.query("INSERT INTO g (key) VALUES ($1)", ['k2']); // duplicate key
        } catch (err) {
          assert.equal(sqlState(err), '23505');
        }
        return 'carried on';
      });
      const ok3 = groups.run('k3', bump('k3'));
      b.release();
      const [r1, r2, r3] = await Promise.allSettled([ok1, swallowing, ok3]);
      assert.equal(r1.status, 'fulfilled');
      assert.equal(r3.status, 'fulfilled');
      // alone, its COMMIT answers ROLLBACK, as it would have without groups
      assert.ok(r2.status === 'rejected' && r2.reason instanceof TransactionRolledBackError, String((r2 as PromiseRejectedResult).reason));
      assert.deepEqual(await counts(db), { k1: 1, k3: 1 });
    });

    test("a member's lastQuery does not commit the group; the group commits once every member is done", async (t) => {
      if (!cleanup) return t.skip('no database');
      const { db, groups } = await fresh();
      const b = blocker(groups);
      const early = groups.run('k1', async (tx) => {
        await tx.lastQuery('UPDATE g SET n = n + 1 WHERE key = $1', ['k1']);
        await assert.rejects(tx.query('SELECT $1::text', ['k1']), /Transaction is closed/);
        return 'done';
      });
      let lateRan = false;
      const late = groups.run('k2', async (tx) => {
        await new Promise((r) => setTimeout(r, 50));
        // not yet visible to others: the group has not committed (PGlite runs one transaction at a time)
        if (db.kind === 'postgres') assert.deepEqual(await counts(db), {});
        await tx.query('UPDATE g SET n = n + 1 WHERE key = $1', ['k2']);
        lateRan = true;
        return 'done';
      });
      b.release();
      assert.deepEqual(await Promise.all([early, late]), ['done', 'done']);
      assert.ok(lateRan);
      assert.equal(groups.stats.groupsRolledBack, 0);
      assert.deepEqual(await counts(db), { k1: 1, k2: 1 });
    });

    test('a COMMIT that fails fails every member of the group, and none runs again', async (t) => {
      if (!cleanup) return t.skip('no database');
      const { db, groups } = await fresh();
      const b = blocker(groups);
      let runs = 0;
      // each insert is fine; the deferred unique constraint fails at COMMIT
      const insert = (key: string) => groups.run(key, async (tx) => {
        runs++;
        await tx.query('INSERT INTO gd (v) SELECT 1 WHERE $1::text IS NOT NULL', [key]);
      });
      const members = [insert('k1'), insert('k2')];
      b.release();
      const settled = await Promise.allSettled(members);
      for (const s of settled) assert.ok(s.status === 'rejected' && sqlState(s.reason) === '23505', String((s as PromiseRejectedResult).reason));
      assert.equal(runs, 2, 'neither member ran again');
      assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM gd')).rows[0].n, 0);
    });

    if (name === 'PostgreSQL') {
      test('concurrent groups over overlapping keys, from two handles: no deadlock, no lost update', async () => {
        const { db } = await fresh();
        // two handles with pools of their own, as two gateway processes
        const second = createPostgresDb({ connectionString: temp!.url, max: 8 });
        try {
          const sides = [new TransactionGroups(inner, { maxInFlight: 4, maxSize: 8 }), new TransactionGroups(second, { maxInFlight: 4, maxSize: 8 })];
          const ops = Array.from({ length: 600 }, (_, i) => `k${1 + ((i * 7) % 10)}`);
          const expected: Record<string, number> = {};
          for (const k of ops) expected[k] = (expected[k] ?? 0) + 1;
          await Promise.all(ops.map((k, i) => sides[i % 2].run(k, bump(k))));
          assert.deepEqual(await counts(db), expected);
          for (const g of sides) {
            assert.ok(g.stats.members > g.stats.transactions, `grouped: ${JSON.stringify(g.stats)}`);
            assert.equal(g.stats.groupsRolledBack, 0, 'no group met a deadlock');
          }
        } finally {
          await second.close();
        }
      });
    }
  });
}

let temp: TempDatabase | undefined;
suite('PGlite', async () => {
  const db = await createPgliteDb('memory://');
  return { db, cleanup: () => db.close() };
});
suite('PostgreSQL', async () => {
  temp = await createTempDatabase();
  const db = createPostgresDb({ connectionString: temp.url, max: 8 });
  return { db, cleanup: async () => {
    await db.close();
    await temp?.drop();
  } };
});

describe("the gateway's group limits", () => {
  test('half the pool on PostgreSQL, one group at a time on PGlite, SETTLE_REFUND_GROUP_MAX members', () => {
    assert.deepEqual(groupLimits('postgres', 8), { maxInFlight: 4, maxSize: 16 });
    assert.deepEqual(groupLimits('postgres', 1), { maxInFlight: 1, maxSize: 16 });
    assert.deepEqual(groupLimits('pglite', 8), { maxInFlight: 1, maxSize: 16, gatherTurn: true });
    assert.deepEqual(groupLimits('pglite', 8, 1), { maxInFlight: 1, maxSize: 1, gatherTurn: false });
    const config = (env: Record<string, string>) => loadConfig({ LOG_LEVEL: 'silent', ...env });
    assert.equal(config({}).refundGroupMax, 16);
    assert.equal(config({ SETTLE_REFUND_GROUP_MAX: '1' }).refundGroupMax, 1);
    assert.throws(() => config({ SETTLE_REFUND_GROUP_MAX: '0' }), /SETTLE_REFUND_GROUP_MAX/);
    assert.deepEqual(groupLimits('postgres', 8, config({ SETTLE_REFUND_GROUP_MAX: '1' }).refundGroupMax), { maxInFlight: 4, maxSize: 1 });
  });
});
