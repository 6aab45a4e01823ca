/** The count's deviation from its binomial expectation, in standard deviations. */
export function binomialZ(count: number, n: number, p: number): number {
  return (count - n * p) / Math.sqrt(n * p * (1 - p));
}

/** Runs `task` `n` times with at most `concurrency` in flight; results in call order. */
export async function runConcurrently<T>(n: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      out[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return out;
}
