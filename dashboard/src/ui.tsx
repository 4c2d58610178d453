import type { ComponentChildren } from 'preact';
import type { ApiError } from './api.js';

/** An API error exactly as the gateway worded it, with its request id for support. */
export function ErrorText({ error }: { error: ApiError | undefined }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error.message}
      {error.body?.error?.request_id ? <span class="muted"> ({error.body.error.request_id})</span> : null}
    </p>
  );
}

export function Status({ value }: { value: string }) {
  return <span class={`status status-${value}`}>{value.replace(/_/g, ' ')}</span>;
}

export function Section({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="card" aria-label={title}>
      <div class="card-head">
        <h2>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

export function Table({ head, children, label }: { head: string[]; children: ComponentChildren; label: string }) {
  return (
    <div class="table-wrap" role="region" aria-label={label} tabIndex={0}>
      <table>
        <thead>
          <tr>{head.map((h) => <th scope="col">{h}</th>)}</tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

export function Loading() {
  return <p class="muted" aria-live="polite">Loading…</p>;
}

/** Shown once, right after creation: the gateway keeps only a digest. */
export function SecretOnce({ label, secret, onDone }: { label: string; secret: string; onDone: () => void }) {
  return (
    <div class="secret" role="status">
      <p>
        <strong>{label}</strong> — copy it now: it is shown only once.
      </p>
      <code class="secret-value" data-testid="secret">{secret}</code>
      <button type="button" onClick={onDone}>I have copied it</button>
    </div>
  );
}
