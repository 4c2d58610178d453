/**
 * What a restricted key (rk_test_… / rk_live_…) may do. Each merchant route needs exactly one
 * permission, `<resource>:read` or `<resource>:write`; `write` includes `read` of the same
 * resource (as Stripe's restricted keys have it). Secret keys (sk_…) hold every permission.
 *
 * The table below is the only place a route is given its permission: a merchant route missing
 * from it is refused to every restricted key (and fails the test that walks the routes).
 */

export const RESOURCES = ['payments', 'refunds', 'connector_accounts', 'webhook_endpoints', 'events', 'ledger', 'api_keys'] as const;
export type Resource = (typeof RESOURCES)[number];
export type Permission = `${Resource}:${'read' | 'write'}`;

/** Every permission a restricted key can be given (the ledger is read-only). */
export const PERMISSIONS: readonly Permission[] = RESOURCES.flatMap((r): Permission[] =>
  r === 'ledger' ? [`${r}:read`] : [`${r}:read`, `${r}:write`],
);

/** `METHOD /route/:pattern` → the permission it needs. */
export const ROUTE_PERMISSIONS: Readonly<Record<string, Permission>> = {
  'POST /v1/payments': 'payments:write',
  'GET /v1/payments': 'payments:read',
  'GET /v1/payments/:id': 'payments:read',
  'POST /v1/payments/:id/capture': 'payments:write',
  'POST /v1/payments/:id/cancel': 'payments:write',

  'POST /v1/payments/:id/refunds': 'refunds:write',
  'POST /v1/refunds': 'refunds:write',
  'POST /v1/payments/refund': 'refunds:write',
  'GET /v1/payments/:id/refunds': 'refunds:read',
  'GET /v1/refunds': 'refunds:read',
  'GET /v1/refunds/:id': 'refunds:read',

  'POST /v1/connector_accounts': 'connector_accounts:write',
  'GET /v1/connector_accounts': 'connector_accounts:read',
  'GET /v1/connector_accounts/:id': 'connector_accounts:read',
  'POST /v1/connector_accounts/:id/make_default': 'connector_accounts:write',
  'DELETE /v1/connector_accounts/:id': 'connector_accounts:write',

  'POST /v1/webhook_endpoints': 'webhook_endpoints:write',
  'GET /v1/webhook_endpoints': 'webhook_endpoints:read',
  'GET /v1/webhook_endpoints/:id': 'webhook_endpoints:read',
  'DELETE /v1/webhook_endpoints/:id': 'webhook_endpoints:write',

  'GET /v1/events': 'events:read',
  'GET /v1/events/:id': 'events:read',
  'GET /v1/events/stream': 'events:read',
  'POST /v1/events/:id/redeliver': 'events:write',

  'GET /v1/ledger/accounts': 'ledger:read',
  'GET /v1/ledger/transactions': 'ledger:read',
  // differences between the ledger and the PSP's record: read with the ledger
  'GET /v1/reconciliation/differences': 'ledger:read',

  // the compatibility surfaces (docs/compat.md): the same permissions as the native routes they translate
  'POST /compat/gatelithix/v1/payments/refund': 'refunds:write',
  'POST /compat/shiftxpay/v1/payments/:id/refunds': 'refunds:write',
  'POST /compat/generic/refunds': 'refunds:write',
  'POST /compat/primer/payments/:id/refund': 'refunds:write',
  'GET /compat/primer/payments/:id': 'payments:read',
  'POST /compat/elasticpay/api/v1/payment_intents/:id/refunds': 'refunds:write',
  'GET /compat/elasticpay/api/v1/payment_intents/:id/refunds': 'refunds:read',

  'POST /v1/api_keys': 'api_keys:write',
  'GET /v1/api_keys': 'api_keys:read',
  'DELETE /v1/api_keys/:prefix': 'api_keys:write',
};

/** The permission a route needs; HEAD is a GET. Undefined: no restricted key may call it. */
export function permissionFor(method: string, routeUrl: string): Permission | undefined {
  return ROUTE_PERMISSIONS[`${method === 'HEAD' ? 'GET' : method} ${routeUrl}`];
}

/** `write` includes `read` of the same resource. */
export function grants(granted: readonly string[], needed: Permission): boolean {
  if (granted.includes(needed)) return true;
  const [resource, access] = needed.split(':');
  return access === 'read' && granted.includes(`${resource}:write`);
}
