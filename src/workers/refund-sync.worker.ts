import type { Db } from '../db/db.js';
import type { Logger } from '../lib/logger.js';
import { connectorAccountsRepository } from '../modules/connector-accounts/connector-accounts.repository.js';
import { paymentsRepository } from '../modules/payments/payments.repository.js';
import { refundsRepository } from '../modules/refunds/refunds.repository.js';
import type { RefundsService } from '../modules/refunds/refunds.service.js';

export interface RefundSyncOptions {
  /** Refunds claimed per pass. Default 20. */
  batch?: number;
  /** How long a claimed refund is reserved for this worker. Default 60000 ms. */
  leaseMs?: number;
  syncBaseMs: number;
  syncMaxMs: number;
}

/**
 * One pass of the refund sync: drives pending refunds (unknown PSP outcome, PSP pending, or left
 * behind by a crash) to a final state. A refund the PSP never answered for is sent again with
 * its own idempotency key — the PSP applies it at most once — otherwise its status is asked.
 * Safe to run in several processes at once and to run twice: claims are leased with SKIP
 * LOCKED, and RefundsService.finish applies an outcome once.
 */
export async function syncPendingRefunds(db: Db, refunds: RefundsService, log: Logger, opts: RefundSyncOptions): Promise<number> {
  const due = await refundsRepository.claimDue(db, opts.batch ?? 20, opts.leaseMs ?? 60_000);
  for (const refund of due) {
    try {
      const account = await connectorAccountsRepository.findById(db, refund.connector_account_id);
      const payment = await paymentsRepository.findById(db, refund.payment_id);
      if (!account || !payment?.connector_ref) {
        log.error({ refund_id: refund.id }, 'pending refund cannot be synced: its connector account was hard-deleted');
        await refundsRepository.scheduleSync(db, refund.id, opts.syncMaxMs, opts.syncMaxMs, null);
        continue;
      }
      let outcome = await refunds.askPsp(refund, account, payment.connector_ref, refund.connector_ref ? 'status' : 'refund');
      if (outcome.status === 'failed' && outcome.code === 'refund_not_found' && refund.source === 'api') {
        // the PSP has no record under our key: the first call never reached it — send it now
        outcome = await refunds.askPsp(refund, account, payment.connector_ref, 'refund');
      }
      await refunds.finish(refund, outcome);
    } catch (err) {
      log.warn({ refund_id: refund.id, err: (err as Error).message }, 'refund sync attempt failed');
      await refundsRepository.scheduleSync(db, refund.id, opts.syncBaseMs, opts.syncMaxMs, null).catch(() => {});
    }
  }
  return due.length;
}
