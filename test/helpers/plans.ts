/** Reading PostgreSQL plans of the statements the gateway sends. */
import assert from 'node:assert/strict';
import type pg from 'pg';
import type { Queryable, QueryResult } from '../../src/db/db.js';

/** The nodes of a PostgreSQL `EXPLAIN (FORMAT JSON)` plan that tests look at. */
export interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  Plans?: PlanNode[];
}

/** Every node of the plan that reads a table, in plan order. */
export function scans(node: PlanNode, out: PlanNode[] = []): PlanNode[] {
  if (node['Relation Name']) out.push(node);
  for (const child of node.Plans ?? []) scans(child, out);
  return out;
}

export interface Statement {
  sql: string;
  params: readonly unknown[];
}

/** The statement `send` makes on the connection it is given, exactly as the gateway sends it; not run. */
export async function statementOf(send: (db: Queryable) => Promise<unknown>): Promise<Statement> {
  let sent: Statement | undefined;
  await send({
    async query<T>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<T>> {
      sent = { sql, params };
      return { rows: [], rowCount: 0 };
    },
  });
  assert.ok(sent, 'no statement was sent');
  return sent;
}

/**
 * Prepares `stmt` on `c` as `name` under `plan_cache_mode = mode` (dropping what `c` had prepared)
 * and returns the `EXECUTE` of it with its parameters written as literals.
 */
export async function prepare(c: pg.Client, name: string, stmt: Statement, mode: 'force_custom_plan' | 'force_generic_plan'): Promise<string> {
  await c.query(`SET plan_cache_mode = ${mode}`);
  await c.query('DEALLOCATE ALL');
  await c.query(`PREPARE ${name} AS ${stmt.sql}`);
  const args = stmt.params.map((v) => (typeof v === 'number' ? String(v) : `'${String(v).replace(/'/g, "''")}'`)).join(', ');
  return `EXECUTE ${name}(${args})`;
}

/** The plan of `statement` (`EXPLAIN (FORMAT JSON)`, run with `ANALYZE` when asked). */
export async function planOf(c: pg.Client, statement: string, { analyze = false } = {}): Promise<PlanNode> {
  const r = await c.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (${analyze ? 'ANALYZE, ' : ''}FORMAT JSON) ${statement}`);
  return r.rows[0]['QUERY PLAN'][0].Plan;
}
