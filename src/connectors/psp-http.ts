/**
 * The HTTP client the connectors that speak plain HTTP (the sandbox over HTTP, Adyen) send their
 * PSP calls through: undici's `request` on one keep-alive `Agent` per process.
 *
 * Not the global `fetch`: it builds WHATWG `Request`, `Headers` and `Response` objects and a body
 * stream for every call, which cost about four times the CPU of `request` per call (measured on
 * loopback, 100 calls at a time: ~0.6 ms against ~0.15 ms of the client's CPU per call). At
 * hundreds of PSP calls a second that is the gateway's event loop, shared with every API request
 * (docs/benchmarks.md, "A slow PSP").
 *
 * Semantics kept from `fetch` where the connectors rely on them:
 * - One deadline for the whole exchange, the body included (a PSP that sends its headers and then
 *   stalls is still unanswered): `timeoutMs` aborts the request whatever phase it is in.
 * - Redirects are never followed (a 3xx is an answer like any other, for the connector to judge).
 * - Connections per origin are not capped, as with `fetch`: the PSP calls in flight are bounded by
 *   the refunds in flight, and a cap would queue a refund behind another's slow PSP call.
 */
import { Agent, request } from 'undici';

export interface PspHttpRequest {
  method: string;
  headers: Record<string, string>;
  /** JSON text. */
  body?: string;
  /** The deadline of the whole exchange, in milliseconds. */
  timeoutMs: number;
}

export interface PspHttpResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
}

/**
 * One exchange with a PSP. Rejects with `PspHttpTimeoutError` when the deadline passed, and with
 * the network error otherwise (refused, reset, DNS); either way the PSP may or may not have acted.
 */
export type PspHttp = (url: string | URL, req: PspHttpRequest) => Promise<PspHttpResponse>;

export class PspHttpTimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

let agent: Agent | undefined;

/** The process's keep-alive agent for PSP calls, made on first use. */
function pspAgent(): Agent {
  // a PSP may close an idle connection at any time; 4 s (undici's default) keeps most of a busy
  // gateway's connections warm without holding many idle ones
  agent ??= new Agent({ keepAliveTimeout: 4_000, keepAliveMaxTimeout: 60_000 });
  return agent;
}

export const pspHttp: PspHttp = async (url, req) => {
  const signal = AbortSignal.timeout(req.timeoutMs);
  try {
    const res = await request(url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      dispatcher: pspAgent(),
      signal,
      // the deadline above is the only limit; undici's own (300 s each) never come first
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(res.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    return { status: res.statusCode, headers, text: await res.body.text() };
  } catch (err) {
    if (signal.aborted) throw new PspHttpTimeoutError(`no answer within ${req.timeoutMs} ms`, { cause: err });
    throw err;
  }
};

/** A `PspHttp` over a `fetch` function: for tests that answer the connector with `Response`s. */
export function pspHttpFromFetch(doFetch: typeof fetch): PspHttp {
  return async (url, req) => {
    const res = await doFetch(url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(req.timeoutMs),
    });
    return { status: res.status, headers: Object.fromEntries(res.headers.entries()), text: await res.text() };
  };
}
