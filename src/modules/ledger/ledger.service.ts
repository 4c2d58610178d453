import type { Db } from '../../db/db.js';
import { decodeCursor, toPage } from '../../http/pagination.js';
import type { AuthContext } from '../merchants/merchants.service.js';
import { ledgerRepository as repo, MERCHANT_BALANCE, type LedgerTxnRow } from './ledger.repository.js';
import { verifyLedger } from './ledger.verify.js';

export function renderLedgerTransaction(t: LedgerTxnRow) {
  return {
    id: t.id,
    object: 'ledger_transaction' as const,
    type: t.type,
    payment_id: t.payment_id,
    refund_id: t.refund_id,
    currency: t.currency,
    entries: t.entries,
    created_at: new Date(t.created_at).toISOString(),
  };
}

export class LedgerService {
  constructor(private readonly db: Db) {}

  /**
   * Balances in each account's normal direction: the merchant balance is a liability (credit
   * normal: captures raise it), a connector clearing account is an asset (debit normal: what the
   * PSP owes the merchant).
   */
  async accounts(auth: AuthContext) {
    const rows = await repo.balances(this.db, auth.merchantId, auth.testMode);
    return {
      object: 'list' as const,
      data: rows.map((r) => ({
        object: 'ledger_account' as const,
        account: r.account,
        currency: r.currency,
        normal_balance: r.account === MERCHANT_BALANCE ? 'credit' : 'debit',
        balance: r.account === MERCHANT_BALANCE ? r.credits - r.debits : r.debits - r.credits,
        debits: r.debits,
        credits: r.credits,
      })),
      has_more: false,
      next_cursor: null,
    };
  }

  async transactions(auth: AuthContext, q: { limit: number; cursor?: string; payment_id?: string }) {
    const rows = await repo.transactions(this.db, auth.merchantId, auth.testMode, q.limit, {
      paymentId: q.payment_id,
      after: decodeCursor(q.cursor),
    });
    return toPage(rows, q.limit, renderLedgerTransaction);
  }

  verify() {
    return verifyLedger(this.db);
  }
}
