/**
 * Counts failures per client address in fixed one-minute windows, and tells how long an
 * address that went over the limit must wait. Bounded: at most `maxAddresses` are tracked; when
 * full, windows that have ended are dropped first, then the oldest.
 */
export class FailureWindow {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly maxAddresses = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds `address` must wait before it may try again, or 0. */
  blockedFor(address: string): number {
    if (this.perMinute <= 0) return 0;
    const w = this.windows.get(address);
    if (!w || w.count < this.perMinute) return 0;
    const left = w.start + 60_000 - this.now();
    if (left <= 0) {
      this.windows.delete(address);
      return 0;
    }
    return Math.ceil(left / 1000);
  }

  record(address: string): void {
    if (this.perMinute <= 0) return;
    const t = this.now();
    const w = this.windows.get(address);
    if (w && t - w.start < 60_000) {
      w.count += 1;
      return;
    }
    this.windows.delete(address);
    if (this.windows.size >= this.maxAddresses) this.evict(t);
    this.windows.set(address, { start: t, count: 1 });
  }

  private evict(t: number): void {
    for (const [address, w] of this.windows) if (t - w.start >= 60_000) this.windows.delete(address);
    // Map iterates in insertion order: the first entry is the oldest window
    while (this.windows.size >= this.maxAddresses) this.windows.delete(this.windows.keys().next().value as string);
  }
}
