import { useState } from 'preact/hooks';
import { api, ApiError, type Session } from '../api.js';
import { ErrorText } from '../ui.js';

/** The key is sent once to be exchanged for a session cookie, and then forgotten. */
export function SignIn({ mode, onSignedIn }: { mode?: 'test' | 'live'; onSignedIn: (s: Session) => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const s = await api<Session>('POST', '/v1/console/session', { key: key.trim() });
      setKey('');
      onSignedIn(s);
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin" id="main">
      <h1 tabIndex={-1}>Sign in to Settle</h1>
      <p class="muted">
        {mode
          ? `Switching to ${mode} mode: sign in with a ${mode} key (sk_${mode}_… or rk_${mode}_…).`
          : 'Use a secret key (sk_…) for the merchant view, a restricted key (rk_…) for what it was granted, or the admin key for the platform view.'}
      </p>
      <form onSubmit={submit}>
        <label for="key">API key</label>
        <input id="key" name="key" type="password" autocomplete="off" spellcheck={false} required value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} />
        <button type="submit" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
      </form>
      <ErrorText error={error} />
      <p class="muted small">The key is exchanged for a session cookie and is not stored in this browser.</p>
    </main>
  );
}
