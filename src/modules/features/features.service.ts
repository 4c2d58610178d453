import type { Db } from '../../db/db.js';

export const REFUNDS_FEATURE = 'refunds';
/** How long a process trusts its copy of the switches. The contract asks for every process to
 *  see a change within 1 second; this leaves room for the query itself. */
const CACHE_MS = 500;

export interface FeatureState {
  platform: boolean;
  merchants: Record<string, boolean>;
}

/** Feature switches (the refund kill switch), platform-wide or per merchant. Default on. */
export class FeaturesService {
  private cached: { at: number; state: Map<string, boolean> } | undefined;
  private loading: Promise<Map<string, boolean>> | undefined;

  constructor(private readonly db: Db) {}

  async isEnabled(name: string, merchantId: string): Promise<boolean> {
    const state = await this.snapshot();
    if (state.get(`${name}:`) === false) return false;
    return state.get(`${name}:${merchantId}`) !== false;
  }

  async set(name: string, enabled: boolean, merchantId?: string): Promise<void> {
    await this.db.query(
      `INSERT INTO feature_flags (name, merchant_id, enabled, updated_at) VALUES ($1, $2, $3, now())
       ON CONFLICT (name, merchant_id) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = now()`,
      [name, merchantId ?? '', enabled],
    );
    this.cached = undefined;
  }

  async get(name: string): Promise<FeatureState> {
    this.cached = undefined;
    const state = await this.snapshot();
    const merchants: Record<string, boolean> = {};
    for (const [k, v] of state) {
      const [n, m] = k.split(':');
      if (n === name && m) merchants[m] = v;
    }
    return { platform: state.get(`${name}:`) !== false, merchants };
  }

  private async snapshot(): Promise<Map<string, boolean>> {
    if (this.cached && Date.now() - this.cached.at < CACHE_MS) return this.cached.state;
    // one query per process per window, shared by the requests that arrive meanwhile
    this.loading ??= this.db
      .query<{ name: string; merchant_id: string; enabled: boolean }>('SELECT name, merchant_id, enabled FROM feature_flags')
      .then((r) => {
        const state = new Map(r.rows.map((row) => [`${row.name}:${row.merchant_id}`, row.enabled]));
        this.cached = { at: Date.now(), state };
        return state;
      })
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }
}
