import { invalidParam } from './errors.js';

/** Keyset cursor over (created_at DESC, id DESC): stable under concurrent inserts. */
export interface Cursor {
  createdAt: string;
  id: string;
}

export function encodeCursor(createdAt: Date | string, id: string): string {
  const ts = createdAt instanceof Date ? createdAt.toISOString() : createdAt;
  return Buffer.from(JSON.stringify([ts, id]), 'utf8').toString('base64url');
}

const CURSOR_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function decodeCursor(cursor: string | undefined): Cursor | undefined {
  if (cursor === undefined) return undefined;
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    // exactly what encodeCursor writes: Date#toISOString of a year PostgreSQL takes, and an id
    // the database can compare ('1' or '99999-01-01' pass Date.parse but not timestamptz)
    if (typeof createdAt === 'string' && CURSOR_TIMESTAMP.test(createdAt) && !createdAt.startsWith('0000')
      && new Date(createdAt).toISOString() === createdAt
      && typeof id === 'string' && id.length > 0 && id.length <= 100 && !id.includes('\u0000')) {
      return { createdAt, id };
    }
  } catch {
    // fall through
  }
  throw invalidParam('cursor', 'Invalid cursor: pass the next_cursor of a previous page.');
}

export interface ListPage<T> {
  object: 'list';
  data: T[];
  has_more: boolean;
  next_cursor: string | null;
}

/** Rows were fetched with `limit + 1` to learn whether there is a next page. */
export function toPage<R extends { id: string; created_at: Date | string }, T>(
  rows: R[],
  limit: number,
  render: (row: R) => T,
): ListPage<T> {
  const hasMore = rows.length > limit;
  const pageRows = hasMore ? rows.slice(0, limit) : rows;
  const last = pageRows[pageRows.length - 1];
  return {
    object: 'list',
    data: pageRows.map(render),
    has_more: hasMore,
    next_cursor: hasMore && last ? encodeCursor(last.created_at, last.id) : null,
  };
}
