/** Amounts are integers in the currency's minor unit, end to end. */
export const MIN_AMOUNT = 1;
export const MAX_AMOUNT = 999_999_999_999;

const CURRENCIES = new Set(Intl.supportedValuesOf('currency'));

/** Upper-cased ISO 4217 code, or undefined when the code is unknown. */
export function normalizeCurrency(input: string): string | undefined {
  const code = input.toUpperCase();
  return /^[A-Z]{3}$/.test(code) && CURRENCIES.has(code) ? code : undefined;
}

/** Digits after the decimal point for display (e.g. 2 for INR, 0 for JPY). */
export function minorUnitDigits(currency: string): number {
  return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions()
    .maximumFractionDigits ?? 2;
}

export function isAmount(value: unknown, min = MIN_AMOUNT): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= MAX_AMOUNT;
}
