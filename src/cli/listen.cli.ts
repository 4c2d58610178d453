/**
 * `settle listen --forward-to <url>`: follows the merchant's event stream (GET /v1/events/stream)
 * and forwards every event to a local server, signed afresh for a local secret exactly as the
 * gateway signs webhook deliveries (Settle-Signature and Standard Webhooks headers), printing the
 * status and latency of each. After a lost connection it reconnects with Last-Event-ID, so no
 * event is lost or repeated; `--last-event-id` resumes a new run where an earlier one stopped.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { signPayload, standardWebhookSignature } from '../modules/webhooks/webhooks.service.js';
import { EVENT_TYPES } from '../modules/webhooks/events.repository.js';

export const LISTEN_USAGE = `settle listen --forward-to <url> [--api-key <key>] [--api-base <url>] [--events <type,type>]
             [--secret <whsec_…>] [--last-event-id <evt_…>] [--live]
  Forwards the merchant's events, as they happen, to <url>, each signed for a local secret that is
  printed at start (a new one each run unless --secret is given). The key is --api-key or
  SETTLE_API_KEY (a test key; a live key needs --live); the gateway is --api-base, SETTLE_API_BASE
  or http://127.0.0.1:8080.`;

const FORWARD_TIMEOUT_MS = 30_000;
const MAX_BACKOFF_MS = 10_000;

interface ListenOptions {
  forwardTo: URL;
  apiKey: string;
  apiBase: string;
  types?: string[];
  secret: string;
  lastEventId?: string;
  live: boolean;
}

/** Exit code: 0 after SIGINT/SIGTERM, 1 when the gateway refuses the stream, 2 on bad arguments. */
export async function listen(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let opts: ListenOptions;
  try {
    opts = parseListenArgs(argv, env);
  } catch (err) {
    process.stderr.write(`listen: ${(err as Error).message}\n\n${LISTEN_USAGE}\n`);
    return 2;
  }
  const stopping = new AbortController();
  const stop = () => stopping.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await run(opts, stopping.signal);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

function parseListenArgs(argv: string[], env: NodeJS.ProcessEnv): ListenOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      'forward-to': { type: 'string' },
      'api-key': { type: 'string' },
      'api-base': { type: 'string' },
      events: { type: 'string' },
      secret: { type: 'string' },
      'last-event-id': { type: 'string' },
      live: { type: 'boolean' },
    },
  });
  if (!values['forward-to']) throw new Error('--forward-to <url> is required');
  let forwardTo: URL;
  try {
    forwardTo = new URL(values['forward-to']);
  } catch {
    throw new Error(`--forward-to must be an http(s) URL; got ${values['forward-to']}`);
  }
  if (!['http:', 'https:'].includes(forwardTo.protocol)) throw new Error(`--forward-to must be an http(s) URL; got ${values['forward-to']}`);
  const apiKey = values['api-key'] ?? env.SETTLE_API_KEY;
  if (!apiKey) throw new Error('a merchant key is required: --api-key or SETTLE_API_KEY');
  const apiBase = (values['api-base'] ?? env.SETTLE_API_BASE ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  if (!/^https?:\/\//.test(apiBase)) throw new Error(`--api-base must be an http(s) URL; got ${apiBase}`);
  const types = values.events?.split(',').map((t) => t.trim()).filter(Boolean);
  const unknown = types?.find((t) => !(EVENT_TYPES as readonly string[]).includes(t));
  if (unknown !== undefined) throw new Error(`--events: ${unknown} is not an event type; use ${EVENT_TYPES.join(', ')}`);
  const secret = values.secret ?? `whsec_${randomBytes(24).toString('base64')}`;
  if (!/^whsec_[A-Za-z0-9+/]{16,}={0,2}$/.test(secret)) throw new Error('--secret must be whsec_ followed by at least 16 base64 characters');
  const lastEventId = values['last-event-id'];
  if (lastEventId !== undefined && !/^evt_[0-9A-Za-z]{1,64}$/.test(lastEventId)) throw new Error(`--last-event-id must be an event id (evt_…); got ${lastEventId}`);
  return { forwardTo, apiKey, apiBase, types, secret, lastEventId, live: values.live ?? false };
}

async function run(opts: ListenOptions, signal: AbortSignal): Promise<number> {
  let lastEventId = opts.lastEventId;
  let announced = false;
  let backoff = 500;
  // events are forwarded one at a time, in the stream's order
  let forwarding: Promise<void> = Promise.resolve();
  const query = new URLSearchParams();
  if (opts.types?.length) query.set('types', opts.types.join(','));
  if (opts.live) query.set('live', 'true');
  const url = `${opts.apiBase}/v1/events/stream${query.size ? `?${query}` : ''}`;

  while (!signal.aborted) {
    const headers: Record<string, string> = { authorization: `Bearer ${opts.apiKey}`, accept: 'text/event-stream' };
    if (lastEventId) headers['last-event-id'] = lastEventId;
    let res: Response;
    try {
      res = await fetch(url, { headers, signal });
    } catch (err) {
      if (signal.aborted) break;
      process.stderr.write(`Cannot reach ${opts.apiBase} (${describe(err)}); retrying in ${Math.round(backoff / 100) / 10} s\n`);
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      continue;
    }
    if (res.status !== 200 || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      const text = await res.text().catch(() => '');
      let message = text.slice(0, 500);
      try {
        message = (JSON.parse(text) as { error: { message: string } }).error.message;
      } catch {
        // not the error envelope: shown as it came
      }
      // 429 and 5xx are worth retrying; anything else will not change by itself
      if (res.status === 429 || res.status >= 500) {
        process.stderr.write(`The gateway answered ${res.status}: ${message}; retrying in ${Math.round(backoff / 100) / 10} s\n`);
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        continue;
      }
      process.stderr.write(`The gateway refused the event stream (${res.status}): ${message}\n`);
      return 1;
    }
    backoff = 500;
    if (!announced) {
      announced = true;
      process.stderr.write(
        `Ready! Forwarding ${opts.live ? 'live' : 'test'}-mode events from ${opts.apiBase} to ${opts.forwardTo.href}` +
        `${opts.types?.length ? ` (${opts.types.join(', ')})` : ''}\n` +
        `Your webhook signing secret is ${opts.secret} (^C to quit)\n`,
      );
    } else {
      process.stderr.write(`Reconnected${lastEventId ? `, resuming after ${lastEventId}` : ''}\n`);
    }
    const parser = createParser({
      onEvent: (message: EventSourceMessage) => {
        if (!message.id || !message.event) return;
        lastEventId = message.id;
        forwarding = forwarding.then(() => forward(opts, message));
      },
    });
    try {
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
    } catch (err) {
      if (signal.aborted) break;
      process.stderr.write(`Lost the event stream (${describe(err)}); reconnecting\n`);
      continue;
    }
    if (signal.aborted) break;
    process.stderr.write('The gateway ended the event stream; reconnecting\n');
    await sleep(250, signal);
  }
  await forwarding;
  return 0;
}

/** POSTs one event to the local server, signed as a webhook delivery, and prints the outcome. */
async function forward(opts: ListenOptions, message: EventSourceMessage): Promise<void> {
  const body = message.data;
  const id = message.id!;
  const t = Math.floor(Date.now() / 1000);
  const started = performance.now();
  let outcome: string;
  try {
    const res = await fetch(opts.forwardTo, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'Settle-Listen/1.0',
        'settle-signature': signPayload(opts.secret, body, t),
        'settle-event-id': id,
        'webhook-id': id,
        'webhook-timestamp': String(t),
        'webhook-signature': standardWebhookSignature(opts.secret, id, t, body),
      },
      signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
    });
    await res.arrayBuffer().catch(() => undefined);
    outcome = `[${res.status}]`;
  } catch (err) {
    outcome = `[ERROR ${describe(err)}]`;
  }
  const ms = Math.round(performance.now() - started);
  process.stdout.write(`${new Date().toISOString()}  --> ${message.event} ${id}  <-- ${outcome} ${ms} ms\n`);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'TimeoutError') return 'timed out';
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) return (cause as NodeJS.ErrnoException).code ?? cause.message;
  return err.message;
}
