/**
 * Min-max scores for a "lower is better" quantity: `(max − v) / (max − min)` over the candidates,
 * 1.0 for all when they are equal (a scorer that cannot tell candidates apart stays neutral).
 */
export function scoreLowerIsBetter(values: ArrayLike<number>, out: Float64Array): void {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const span = max - min;
  for (let i = 0; i < values.length; i++) out[i] = span === 0 || !Number.isFinite(span) ? 1 : (max - (values[i] as number)) / span;
}
