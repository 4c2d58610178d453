import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDatabaseUnavailable } from '../../src/db/db.js';

const withCode = (message: string, code: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(message), { code, ...extra });

test('a database that is down, restarting, or dropped the connection counts as unavailable', () => {
  for (const err of [
    withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED', { syscall: 'connect' }),
    withCode('connect ENOENT /run/postgresql/.s.PGSQL.5432', 'ENOENT', { syscall: 'connect' }),
    withCode('terminating connection due to administrator command', '57P01'),
    withCode('the database system is starting up', '57P03'),
    withCode('the database system is shutting down', '57P03'),
    withCode('sorry, too many clients already', '53300'),
    withCode('server login has been failing, try again later (server_login_retry)', '08P01'),
    new Error('Connection terminated unexpectedly'),
    new Error('Connection terminated due to connection timeout'),
    new Error('Client has encountered a connection error and is not queryable'),
    new Error('timeout exceeded when trying to connect'),
    new AggregateError([withCode('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED'), withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')]),
  ]) {
    assert.equal(isDatabaseUnavailable(err), true, err.message);
  }
});

test('a failing statement, or a refused connection to someone else, is not an outage', () => {
  for (const err of [
    withCode('duplicate key value violates unique constraint', '23505'),
    withCode('deadlock detected', '40P01'),
    withCode('relation "payments" does not exist', '42P01'),
    new Error('boom'),
    // a PSP call that was refused, wrapped by fetch: the database is fine
    Object.assign(new TypeError('fetch failed'), { cause: withCode('connect ECONNREFUSED 127.0.0.1:9999', 'ECONNREFUSED') }),
    withCode('ENOENT: no such file or directory', 'ENOENT', { syscall: 'open' }),
    undefined,
    'text',
  ]) {
    assert.equal(isDatabaseUnavailable(err), false, String((err as Error)?.message ?? err));
  }
});
