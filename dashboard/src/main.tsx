import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, setCsrfToken, whenSignedOut, type Session } from './api.js';
import { ConnectorAccounts } from './pages/connector-accounts.js';
import { Developers } from './pages/developers.js';
import { Overview } from './pages/overview.js';
import { PaymentDetail } from './pages/payment-detail.js';
import { Payments } from './pages/payments.js';
import { Platform } from './pages/platform.js';
import { Refunds } from './pages/refunds.js';
import { SignIn } from './pages/sign-in.js';
import { can, SessionContext } from './session.js';
import './style.css';

interface Route {
  path: string;
  title: string;
  /** Shown in the navigation when this holds. */
  visible: (s: Session) => boolean;
}

const ROUTES: Route[] = [
  { path: '', title: 'Overview', visible: (s) => s.role !== 'admin' },
  { path: 'payments', title: 'Payments', visible: (s) => can(s, 'payments:read') },
  { path: 'refunds', title: 'Refunds', visible: (s) => can(s, 'refunds:read') },
  { path: 'developers', title: 'Developers', visible: (s) => ['webhook_endpoints:read', 'events:read', 'api_keys:read'].some((p) => can(s, p)) },
  { path: 'connectors', title: 'Connector accounts', visible: (s) => can(s, 'connector_accounts:read') },
  { path: 'platform', title: 'Platform', visible: (s) => s.role === 'admin' },
];

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash.replace(/^#\/?/, '');
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [wantMode, setWantMode] = useState<'test' | 'live' | undefined>();
  const path = useHash();
  const main = useRef<HTMLElement>(null);

  const adopt = (s: Session | null) => {
    setCsrfToken(s?.csrf_token ?? '');
    setSession(s);
  };
  useEffect(() => {
    whenSignedOut(() => adopt(null));
    api<Session>('GET', '/v1/console/session').then(adopt, () => adopt(null));
  }, []);
  // a new page: focus its heading, so keyboard and screen-reader users start there
  useEffect(() => {
    main.current?.querySelector('h1')?.focus();
  }, [path, session?.key_prefix]);

  if (session === undefined) return <p class="muted">Loading…</p>;
  if (session === null) {
    return <SignIn mode={wantMode} onSignedIn={(s) => { setWantMode(undefined); adopt(s); if (s.role === 'admin') location.hash = '#/platform'; }} />;
  }

  const signOut = () => {
    api('DELETE', '/v1/console/session').catch(() => undefined).finally(() => adopt(null));
  };
  const switchMode = () => {
    // one session, one mode: the other mode needs a key of that mode
    setWantMode(session.test_mode ? 'live' : 'test');
    signOut();
  };
  const routes = ROUTES.filter((r) => r.visible(session));
  const [first, id] = path.split('/');
  const page = (() => {
    if (first === 'payments' && id) return <PaymentDetail id={decodeURIComponent(id)} />;
    switch (first) {
      case 'payments': return <Payments />;
      case 'refunds': return <Refunds />;
      case 'developers': return <Developers />;
      case 'connectors': return <ConnectorAccounts />;
      case 'platform': return <Platform />;
      default: return session.role === 'admin' ? <Platform /> : <Overview />;
    }
  })();

  return (
    <SessionContext.Provider value={{ session, signOut, switchMode }}>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); main.current?.querySelector('h1')?.focus(); }}>Skip to content</a>
      <header class={`top ${session.test_mode === false ? 'live' : ''}`}>
        <div class="brand">
          Settle <span class="muted">{session.merchant ? session.merchant.name : 'Platform'}</span>
        </div>
        <ModeSwitch session={session} onSwitch={switchMode} />
        <div class="who">
          <span class="muted" title="the key this session was opened with">{session.role === 'admin' ? 'admin' : session.key_prefix}</span>
          <button type="button" onClick={signOut}>Sign out</button>
        </div>
      </header>
      {session.test_mode === true ? <div class="banner" role="note">Test mode: test data only. Nothing here moves real money.</div> : null}
      <nav aria-label="Console">
        <ul>
          {routes.map((r) => {
            const current = (first ?? '') === r.path || (r.path === 'platform' && session.role === 'admin' && !first);
            return (
              <li>
                <a href={`#/${r.path}`} aria-current={current ? 'page' : undefined}>{r.title}</a>
              </li>
            );
          })}
        </ul>
      </nav>
      <main id="main" ref={main}>{page}</main>
    </SessionContext.Provider>
  );
}

/** Always visible. A session has one mode; switching signs in again with a key of the other. */
function ModeSwitch({ session, onSwitch }: { session: Session; onSwitch: () => void }) {
  if (session.test_mode === null) {
    return <div class="mode" role="group" aria-label="Mode"><span class="mode-on">Platform</span></div>;
  }
  const live = !session.test_mode;
  return (
    <div class="mode" role="group" aria-label="Mode">
      <button type="button" aria-pressed={!live} class={!live ? 'mode-on' : ''} onClick={live ? onSwitch : undefined} title={live ? 'Sign in with a test key' : undefined}>Test</button>
      <button type="button" aria-pressed={live} class={live ? 'mode-on live' : ''} onClick={live ? undefined : onSwitch} title={live ? undefined : 'Sign in with a live key'}>Live</button>
    </div>
  );
}

render(<App />, document.getElementById('app')!);

export { ApiError };
