import { createParser, type EventSourceMessage } from 'eventsource-parser';

export interface SseConnection {
  status: number;
  headers: Headers;
  /** The body, when the answer is not a stream (an error envelope). */
  body?: string;
  messages: EventSourceMessage[];
  comments: string[];
  /** Resolves once `n` messages in all have arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs?: number): Promise<EventSourceMessage[]>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

/** A server-sent events connection read with `fetch`: every message and comment, as they come. */
export async function openSse(url: string, headers: Record<string, string>): Promise<SseConnection> {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
  const messages: EventSourceMessage[] = [];
  const comments: string[] = [];
  const waiters = new Set<() => void>();
  if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    const body = await res.text();
    return { status: res.status, headers: res.headers, body, messages, comments, waitFor: async () => [], ended: Promise.resolve(), close: () => {} };
  }
  const parser = createParser({
    onEvent: (m) => {
      messages.push(m);
      for (const w of waiters) w();
    },
    onComment: (c) => comments.push(c),
  });
  const ended = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
    } catch {
      // aborted by close()
    }
  })();
  return {
    status: res.status,
    headers: res.headers,
    messages,
    comments,
    ended,
    close: () => abort.abort(),
    waitFor(n, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (messages.length < n) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(messages.slice());
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`waited ${timeoutMs} ms for ${n} events; got ${messages.length}: ${messages.map((m) => m.event).join(', ')}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}
