/*
 * "Did you mean" for names a person typed: `wieght` → `weight`, `targetmodels` → `targetModels`,
 * `routing-stratgy` → `routing-strategy`. A suggestion is offered only when it is close enough that
 * a typo is the likely story: a case-only difference, or an edit distance of at most 2 (1 for
 * names of 4 characters or fewer, where 2 edits reach too many unrelated words).
 */

/** Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent swaps. */
export function editDistance(a: string, b: string): number {
  const n = a.length;
  const m = b.length;
  // Three rows: the swap rule looks two rows back.
  let prev2 = new Array<number>(m + 1).fill(0);
  let prev = Array.from({ length: m + 1 }, (_, j) => j);
  let cur = new Array<number>(m + 1).fill(0);
  for (let i = 1; i <= n; i++) {
    cur[0] = i;
    for (let j = 1; j <= m; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (prev2[j - 2] as number) + 1);
      cur[j] = d;
    }
    [prev2, prev, cur] = [prev, cur, prev2];
  }
  return prev[m] as number;
}

/** The known name closest to `typed`, if one is close enough to be what was meant. */
export function closest(typed: string, known: Iterable<string>): string | undefined {
  // Names longer than this are not typos of a field name; bounding it bounds the work too.
  if (typed.length > 128) return undefined;
  const lower = typed.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of known) {
    if (name.toLowerCase() === lower) return name;
    const d = editDistance(lower, name.toLowerCase());
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  const allowed = typed.length <= 4 ? 1 : 2;
  return bestDistance <= allowed ? best : undefined;
}

/** `; did you mean "x"?` when a close name exists, else the empty string. */
export function didYouMean(typed: string, known: Iterable<string>): string {
  const near = closest(typed, known);
  return near === undefined ? '' : `; did you mean "${near}"?`;
}
