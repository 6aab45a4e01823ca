/**
 * Durations as the Gateway API writes them (`24h`, `30s`, `1h30m`, `500ms`): one to four
 * number+unit pairs with units h, m, s, ms and at most five digits each
 * (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`, gateway.networking.k8s.io `Duration`; Envoy Gateway's
 * `timeout.http.requestTimeout` uses the same form).
 */
const DURATION = /^([0-9]{1,5}(h|ms|m|s)){1,4}$/;
const PART = /([0-9]{1,5})(h|ms|m|s)/g;
const UNIT_MS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Milliseconds for a duration, or `undefined` when the text is not one. */
export function parseDurationMs(value: string): number | undefined {
  if (!DURATION.test(value)) return undefined;
  let total = 0;
  for (const m of value.matchAll(PART)) total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? 0);
  return total;
}

/** `24h`, `1h30m`, `500ms`: the shortest form for logs and summaries. */
export function formatDurationMs(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
