// printf-style column helpers: widths are minimums, as in C (%-16s pads but
// never cuts), so our columns line up exactly where the C tools' do.

/** %-Ns */
export const left = (text: string | number, width: number): string => String(text).padEnd(width);
/** %Ns */
export const right = (text: string | number, width: number): string => String(text).padStart(width);
/**
 * %.Pf: toFixed() and printf agree except on an exact tie, which toFixed
 * rounds away from zero (0.125 -> "0.13") and printf to even ("0.12").
 */
export function printfFixed(value: number, precision: number): string {
  const rounded = value.toFixed(precision);
  // A tie has at most precision + 1 binary fraction digits, so it is exact in precision + 1 decimals.
  if (!Number.isInteger(value * 2 ** (precision + 1))) return rounded;
  const longer = value.toFixed(precision + 1);
  if (!longer.endsWith('5')) return rounded;
  const truncated = longer.slice(0, precision === 0 ? -2 : -1);
  return Number(truncated.at(-1)) % 2 === 0 ? truncated : rounded;
}
/** %-N.Pf */
export const fixedLeft = (value: number, width: number, precision: number): string =>
  printfFixed(value, precision).padEnd(width);
/** %N.Pf */
export const fixedRight = (value: number, width: number, precision: number): string =>
  printfFixed(value, precision).padStart(width);
