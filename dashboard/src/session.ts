import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Session } from './api.js';

export const SessionContext = createContext<{ session: Session; signOut: () => void; switchMode: () => void } | null>(null);

export function useSession() {
  const s = useContext(SessionContext);
  if (!s) throw new Error('no session');
  return s;
}

/**
 * What the signed-in key may do, as the API will decide it: a secret key everything, a
 * restricted key its permissions (`write` includes `read`). The console hides the rest; the API
 * refuses it anyway.
 */
export function can(session: Session, permission: string): boolean {
  if (session.role === 'admin') return false;
  if (!session.permissions) return true;
  if (session.permissions.includes(permission)) return true;
  const [resource, access] = permission.split(':');
  return access === 'read' && session.permissions.includes(`${resource}:write`);
}

/** Every permission a restricted key can be given (the API's table, docs/dashboard.md). */
export const PERMISSIONS = [
  'payments:read', 'payments:write', 'refunds:read', 'refunds:write', 'connector_accounts:read', 'connector_accounts:write',
  'webhook_endpoints:read', 'webhook_endpoints:write', 'events:read', 'events:write', 'ledger:read', 'api_keys:read', 'api_keys:write',
];
