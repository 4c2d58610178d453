import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.js';

/** How often a page refreshes what it shows (fresh data without a reload). */
export const POLL_MS = 2500;

/**
 * Loads data and keeps it fresh: again every POLL_MS while the tab is visible, and at once on
 * `reload()`. The last good data stays on screen while a refresh fails.
 */
export function useLive<T>(load: () => Promise<T>, deps: unknown[]): { data: T | undefined; error: ApiError | undefined; reload: () => void } {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<ApiError>();
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let alive = true;
    const run = () => {
      if (document.hidden) return;
      loadRef.current().then(
        (d) => alive && (setData(d), setError(undefined)),
        (e) => alive && setError(e instanceof ApiError ? e : new ApiError(0, undefined)),
      );
    };
    run();
    const timer = setInterval(run, POLL_MS);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, [...deps, tick]);
  return { data, error, reload: useCallback(() => setTick((t) => t + 1), []) };
}

/**
 * Runs one logical action (a refund, a capture …) with an Idempotency-Key that stays the same
 * until the gateway gives a definite answer: a double click, or a retry after a network error,
 * replays the first request instead of doing it twice. A definite answer (success or a refusal)
 * ends the action; the next one gets a new key.
 */
export function useAction<A extends unknown[], R>(name: string, run: (key: string, ...args: A) => Promise<R>) {
  const key = useRef<string>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  const inFlight = useRef(false);
  const go = async (...args: A): Promise<R | undefined> => {
    if (inFlight.current) return undefined;
    inFlight.current = true;
    key.current ??= `console-${name}-${crypto.randomUUID()}`;
    setBusy(true);
    setError(undefined);
    try {
      const result = await run(key.current, ...args);
      key.current = undefined;
      return result;
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(0, undefined);
      // unknown outcome (no answer, 5xx, still in flight): keep the key so a retry cannot double it
      if (err.status !== 0 && err.status < 500 && err.code !== 'idempotency_key_in_use') key.current = undefined;
      setError(err);
      return undefined;
    } finally {
      inFlight.current = false;
      setBusy(false);
    }
  };
  return { go, busy, error, clearError: () => setError(undefined) };
}
