import type { Db } from '../../db/db.js';
import { AppError } from '../../http/errors.js';
import { decodeCursor, toPage } from '../../http/pagination.js';
import { grants, type Permission } from '../../http/permissions.js';
import { merchantsRepository as repo, type ApiKeyListRow } from '../merchants/merchants.repository.js';
import { keyPrefixOf, type AuthContext, type MerchantsService } from '../merchants/merchants.service.js';

export interface CreateRestrictedKeyInput {
  name: string;
  permissions: Permission[];
}

export function renderApiKey(row: ApiKeyListRow) {
  return {
    id: row.prefix,
    object: 'api_key' as const,
    type: row.permissions ? ('restricted' as const) : ('secret' as const),
    key_prefix: row.prefix,
    name: row.name,
    permissions: row.permissions,
    test_mode: row.test_mode,
    created_at: row.created_at.toISOString(),
    revoked: row.revoked_at !== null,
    revoked_at: row.revoked_at?.toISOString() ?? null,
  };
}

/**
 * A merchant's own keys, in the mode of the key that asks: restricted keys are created here
 * (secret keys only by the platform admin), listed without their secrets, and revoked.
 */
export class ApiKeysService {
  constructor(
    private readonly db: Db,
    private readonly merchants: MerchantsService,
  ) {}

  async create(auth: AuthContext, input: CreateRestrictedKeyInput) {
    const permissions = [...new Set(input.permissions)].sort();
    // a restricted key may hand on only what it holds itself: no key makes a stronger one
    const missing = auth.permissions && permissions.find((p) => !grants(auth.permissions!, p));
    if (missing) {
      throw new AppError('insufficient_permissions', `This API key cannot grant the ${missing} permission: it does not hold it.`, { param: 'permissions' });
    }
    const mode = auth.testMode ? 'test' : 'live';
    const secret = await this.merchants.createRestrictedKey(auth.merchantId, mode, input.name, permissions);
    return { ...renderApiKey(await this.find(auth, keyPrefixOf(secret)!)), secret };
  }

  async list(auth: AuthContext, q: { limit: number; cursor?: string }) {
    const rows = await repo.listKeys(this.db, auth.merchantId, auth.testMode, q.limit, decodeCursor(q.cursor));
    return toPage(rows.map((r) => ({ ...r, id: r.prefix })), q.limit, renderApiKey);
  }

  async revoke(auth: AuthContext, prefix: string) {
    await this.find(auth, prefix);
    await repo.revokeKey(this.db, prefix);
    this.merchants.forgetKey(prefix);
    return renderApiKey(await this.find(auth, prefix));
  }

  /** A key of this merchant and mode; another merchant's or mode's key does not exist (404). */
  private async find(auth: AuthContext, prefix: string): Promise<ApiKeyListRow> {
    const row = await repo.findKey(this.db, prefix);
    if (!row || row.merchant_id !== auth.merchantId || row.test_mode !== auth.testMode) {
      throw new AppError('not_found', `No such API key: ${prefix}.`, { param: 'prefix' });
    }
    return (await repo.keyListing(this.db, prefix))!;
  }
}
