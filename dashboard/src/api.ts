/**
 * The console's only way to the gateway: the public HTTP API (and the session routes), with the
 * session cookie the browser sends by itself and the session's CSRF token on every write.
 */

export interface ApiErrorBody {
  error: { type: string; code: string; message: string; param?: string; permission?: string; request_id?: string };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody | undefined,
  ) {
    // the API's own message, verbatim: it is written for the person reading it
    super(body?.error?.message ?? `The gateway answered HTTP ${status}.`);
  }
  get code(): string | undefined {
    return this.body?.error?.code;
  }
}

export interface List<T> {
  object: 'list';
  data: T[];
  has_more: boolean;
  next_cursor: string | null;
}

export interface Session {
  object: 'console_session';
  role: 'merchant' | 'restricted' | 'admin';
  merchant: { id: string; name: string } | null;
  test_mode: boolean | null;
  key_prefix: string | null;
  permissions: string[] | null;
  csrf_token: string;
  expires_at: string;
}

let csrfToken = '';
/** Called when the session is learnt or ends; a page reload asks the gateway again. */
export function setCsrfToken(token: string): void {
  csrfToken = token;
}

/** Called when a request finds the session over (401): the app shows the sign-in page. */
let onSignedOut: () => void = () => {};
export function whenSignedOut(fn: () => void): void {
  onSignedOut = fn;
}

export async function api<T = any>(method: string, path: string, body?: unknown, opts: { idempotencyKey?: string } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrfToken;
  if (opts.idempotencyKey) headers['idempotency-key'] = opts.idempotencyKey;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, { error: { type: 'api_error', code: 'network', message: 'The gateway could not be reached. Check your connection and try again.' } });
  }
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    if (res.status === 401 && !path.startsWith('/v1/console/session')) onSignedOut();
    throw new ApiError(res.status, json);
  }
  return json as T;
}

/** Builds a query string from the set values only. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** A fresh Idempotency-Key for one logical action. */
export function newIdempotencyKey(action: string): string {
  return `console-${action}-${crypto.randomUUID()}`;
}
