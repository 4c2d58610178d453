/** Money arrives in minor units; the console shows and reads it in the currency's major unit. */
export function digitsOf(currency: string): number {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

export function money(minor: number, currency: string): string {
  const digits = digitsOf(currency);
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency, minimumFractionDigits: digits }).format(minor / 10 ** digits);
  } catch {
    return `${minor} ${currency}`;
  }
}

/** "12.5" in USD → 1250; undefined when it is not a positive amount with at most the currency's digits. */
export function toMinor(text: string, currency: string): number | undefined {
  const digits = digitsOf(currency);
  const m = /^\s*(\d+)(?:[.,](\d*))?\s*$/.exec(text);
  if (!m || (m[2] ?? '').length > digits) return undefined;
  const minor = Number(m[1]) * 10 ** digits + Number((m[2] ?? '').padEnd(digits, '0') || '0');
  return Number.isSafeInteger(minor) && minor > 0 ? minor : undefined;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}
