// printf-style column helpers: widths are minimums, as in C (%-16s pads but
// never cuts), so our columns line up exactly where the C tools' do.

/** %-Ns */
export const left = (text: string | number, width: number): string => String(text).padEnd(width);
/** %Ns */
export const right = (text: string | number, width: number): string => String(text).padStart(width);
/** %-N.Pf */
export const fixedLeft = (value: number, width: number, precision: number): string =>
  value.toFixed(precision).padEnd(width);
/** %N.Pf */
export const fixedRight = (value: number, width: number, precision: number): string =>
  value.toFixed(precision).padStart(width);
