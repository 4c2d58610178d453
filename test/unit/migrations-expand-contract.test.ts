import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MIGRATIONS, splitStatements } from '../../src/db/migrate.js';

/**
 * Statements that break a process of the previous release still running on the migrated schema
 * (docs/operations.md, "Migrations while older processes run").
 */
const CONTRACTING = [
  /\bDROP\s+(TABLE|COLUMN|TYPE|VIEW|FUNCTION)\b/i,
  /\bALTER\s+TABLE\b[\s\S]*\bDROP\s+(?!CONSTRAINT|DEFAULT|NOT NULL)\w+/i, // DROP <column> without the COLUMN keyword
  /\bRENAME\b/i,
  /\bALTER\s+COLUMN\b[\s\S]*\b(TYPE|SET\s+NOT\s+NULL)\b/i,
];

/**
 * Contract migrations that shipped, each with the release from which no code used what it
 * removes. Add one here only when that holds.
 */
const ALLOWED_CONTRACTIONS: Record<string, string> = {};

test('migrations only expand the schema, except contractions listed with the release they follow', () => {
  const offending: string[] = [];
  for (const m of MIGRATIONS.slice(1)) { // 001 creates the schema
    if (ALLOWED_CONTRACTIONS[m.id]) continue;
    for (const statement of splitStatements(m.sql)) {
      if (CONTRACTING.some((re) => re.test(statement))) offending.push(`${m.id}: ${statement.replace(/\s+/g, ' ').slice(0, 120)}`);
    }
  }
  assert.deepEqual(offending, []);
});

test('the contraction check recognises a dropped or renamed column and a tightened one', () => {
  const contracts = (sql: string) => CONTRACTING.some((re) => re.test(sql));
  assert.equal(contracts('ALTER TABLE refunds DROP COLUMN reason'), true);
  assert.equal(contracts('ALTER TABLE refunds DROP reason'), true);
  assert.equal(contracts('ALTER TABLE refunds RENAME COLUMN reason TO why'), true);
  assert.equal(contracts('ALTER TABLE refunds ALTER COLUMN reason SET NOT NULL'), true);
  assert.equal(contracts('ALTER TABLE refunds ALTER COLUMN amount TYPE integer'), true);
  assert.equal(contracts('DROP TABLE refunds'), true);
  assert.equal(contracts('ALTER TABLE refunds ADD COLUMN note text'), false);
  assert.equal(contracts('CREATE INDEX refunds_note ON refunds (note)'), false);
  assert.equal(contracts('DROP INDEX IF EXISTS events_object'), false);
  assert.equal(contracts('ALTER TABLE refunds DROP CONSTRAINT refunds_reason_check'), false);
});
