/**
 * Kubernetes resource quantities as byte counts (`20Mi`, `512Ki`, `1G`, `1.5Gi`, `1e6`, `1048576`).
 * Binary suffixes are powers of 1024, decimal suffixes powers of 1000, as in
 * k8s.io/apimachinery `resource.Quantity`. A fractional byte count rounds up.
 */
const SUFFIX: Readonly<Record<string, number>> = {
  '': 1,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
  Pi: 1024 ** 5,
  Ei: 1024 ** 6,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

const QUANTITY = /^([+]?[0-9]+(?:\.[0-9]*)?|[+]?\.[0-9]+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)|[eE]([+-]?[0-9]+))?$/;

/** Bytes for a quantity, or `undefined` when the text is not a quantity. */
export function parseQuantityBytes(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.ceil(value) : undefined;
  const m = QUANTITY.exec(value.trim());
  if (m === null) return undefined;
  const base = Number(m[1]);
  const multiplier = m[3] !== undefined ? 10 ** Number(m[3]) : (SUFFIX[m[2] ?? ''] ?? 1);
  const bytes = Math.ceil(base * multiplier);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** A human form for messages and summaries: `20Mi`, `1.5Gi`, `900`. */
export function formatBytes(bytes: number): string {
  for (const [suffix, size] of [['Gi', 1024 ** 3], ['Mi', 1024 ** 2], ['Ki', 1024]] as const) {
    if (bytes >= size) {
      const n = bytes / size;
      return `${Number.isInteger(n) ? n : n.toFixed(1)}${suffix}`;
    }
  }
  return String(bytes);
}
