import { createHmac } from 'node:crypto';
import type { Db } from '../../db/db.js';
import { AppError } from '../../http/errors.js';
import { constantTimeEqual } from '../../lib/crypto.js';
import { randomString } from '../../lib/ids.js';
import type { AdminAuth } from '../../services.js';
import type { AuthContext, MerchantsService } from '../merchants/merchants.service.js';
import { consoleSessionsRepository as repo, type ConsoleSessionRow } from './console-sessions.repository.js';

/** Who a console session acts as: the platform admin, or a merchant in one mode (with the key's permissions). */
export type ConsoleIdentity = { admin: true } | { admin: false; auth: AuthContext; merchantName: string };

export interface ConsoleSession {
  identity: ConsoleIdentity;
  /** Sent back by the console in `X-CSRF-Token` on every write. */
  csrfToken: string;
  expiresAt: Date;
}

const expired = () => new AppError('invalid_api_key', 'Your console session has ended: sign in again.');

/**
 * Console sign-in: an API key (secret, restricted or admin) is exchanged for a random session
 * token kept in an HttpOnly cookie; the key itself is never stored, in the browser or here.
 *
 * Tokens are stored as HMAC-SHA256(admin key, token): a database read alone yields nothing
 * usable, and changing SETTLE_ADMIN_KEY ends every console session. The CSRF token is derived
 * from the session token, so it needs no storage and dies with the session.
 */
export class ConsoleSessionsService {
  constructor(
    private readonly db: Db,
    private readonly merchants: MerchantsService,
    private readonly admin: AdminAuth,
    private readonly adminKey: string,
    private readonly minutes: number,
  ) {}

  /** Checks the key as the API does (401 when it is not valid) and opens a session for it. */
  async signIn(key: string): Promise<{ token: string; session: ConsoleSession }> {
    const isAdmin = this.admin.check(key);
    const auth = isAdmin ? undefined : await this.merchants.authenticate(key);
    const token = randomString(43);
    await repo.prune(this.db);
    const expiresAt = await repo.insert(this.db, {
      tokenHash: this.tokenHash(token),
      admin: isAdmin,
      merchantId: auth?.merchantId ?? null,
      testMode: auth?.testMode ?? false,
      keyPrefix: auth?.keyPrefix ?? null,
      minutes: this.minutes,
    });
    const merchant = auth ? await this.merchants.find(auth.merchantId) : undefined;
    return {
      token,
      session: {
        identity: auth ? { admin: false, auth, merchantName: merchant?.name ?? '' } : { admin: true },
        csrfToken: this.csrfToken(token),
        expiresAt,
      },
    };
  }

  /** The live session of a cookie token, or 401. */
  async resume(token: string): Promise<ConsoleSession> {
    const row = await repo.findLive(this.db, this.tokenHash(token));
    if (!row) throw expired();
    return { identity: identityOf(row), csrfToken: this.csrfToken(token), expiresAt: row.expires_at };
  }

  /** True when `presented` is this session's CSRF token (constant time). */
  checkCsrf(token: string, presented: string | undefined): boolean {
    return presented !== undefined && constantTimeEqual(Buffer.from(this.csrfToken(token)), Buffer.from(presented));
  }

  async signOut(token: string): Promise<void> {
    await repo.end(this.db, this.tokenHash(token));
  }

  private tokenHash(token: string): Buffer {
    return createHmac('sha256', this.adminKey).update(`console-session:${token}`).digest();
  }

  private csrfToken(token: string): string {
    return createHmac('sha256', this.adminKey).update(`console-csrf:${token}`).digest('base64url');
  }
}

function identityOf(row: ConsoleSessionRow): ConsoleIdentity {
  if (row.admin) return { admin: true };
  return {
    admin: false,
    merchantName: row.merchant_name ?? '',
    auth: {
      merchantId: row.merchant_id!,
      testMode: row.test_mode,
      keyPrefix: row.key_prefix!,
      ...(row.permissions ? { permissions: row.permissions } : {}),
    },
  };
}

export function renderSession(s: ConsoleSession) {
  const id = s.identity;
  return {
    object: 'console_session' as const,
    role: id.admin ? 'admin' : id.auth.permissions ? 'restricted' : 'merchant',
    merchant: id.admin ? null : { id: id.auth.merchantId, name: id.merchantName },
    test_mode: id.admin ? null : id.auth.testMode,
    key_prefix: id.admin ? null : id.auth.keyPrefix,
    permissions: id.admin ? null : (id.auth.permissions ?? null),
    csrf_token: s.csrfToken,
    expires_at: s.expiresAt.toISOString(),
  };
}
