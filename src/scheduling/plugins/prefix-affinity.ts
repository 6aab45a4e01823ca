import type { Endpoint } from '../../core/endpoint.js';
import { rendezvousHome } from '../../prefix/home.js';
import type { PrefixMatch } from './prefix-cache-scorer.js';

/** The tunables both prefix scorers share (prefix-cache-scorer.ts documents each and its default). */
export interface AffinityParameters {
  readonly minBlocksForFullScore: number;
  readonly hotspotQueueDelta: number;
  readonly hotspotKvDelta: number;
  readonly homeBonus: number;
}

/**
 * Prefix affinity from per-candidate matched blocks, the same for estimate and precise mode (only
 * where the matches come from differs): score = matched / max(total, minBlocksForFullScore); a
 * candidate much busier than the least busy (the hot-spot guard) scores 0; the prompt's prefix
 * home (`anchor`, src/prefix/home.ts) gets `homeBonus` while no candidate outside the guard holds
 * the whole anchor. Writes `out[i]` for `endpoints[i]`; returns what it found (for the log line),
 * with `best`, the most blocks any candidate holds.
 */
export function scoreAffinity(
  endpoints: readonly Endpoint[],
  counts: ArrayLike<number>,
  total: number,
  anchor: number | undefined,
  p: AffinityParameters,
  out: Float64Array,
): PrefixMatch & { readonly best: number } {
  let minQueue = Infinity;
  let minKv = Infinity;
  for (const e of endpoints) {
    minQueue = Math.min(minQueue, e.estimatedWaiting());
    minKv = Math.min(minKv, e.estimatedKvUsage());
  }
  const matched = new Map<Endpoint, number>();
  const guarded: Endpoint[] = [];
  let best = 0;
  const minBlocks = p.minBlocksForFullScore;
  const denominator = Math.max(total, minBlocks);
  const homeAt = anchor === undefined || p.homeBonus <= 0 ? -1 : rendezvousHome(anchor, endpoints);
  let homeHot = false;
  /** Most blocks a candidate outside the hot-spot guard holds. */
  let bestCool = 0;
  endpoints.forEach((e, i) => {
    const n = counts[i] ?? 0;
    matched.set(e, n);
    best = Math.max(best, n);
    const hot = e.estimatedWaiting() - minQueue > p.hotspotQueueDelta || e.estimatedKvUsage() - minKv > p.hotspotKvDelta;
    if (hot && (n > 0 || i === homeAt)) guarded.push(e);
    if (i === homeAt) homeHot = hot;
    if (!hot) bestCool = Math.max(bestCool, n);
    out[i] = hot ? 0 : n / denominator;
  });
  // The home is where the other replicas send a prefix they do not know; this replica needs the
  // guess only while it does not know better itself: once a candidate it may use holds the whole
  // anchor, where that candidate is wins.
  const homeBonus = homeAt >= 0 && !homeHot && bestCool < minBlocks;
  if (homeBonus) out[homeAt] = Math.max(out[homeAt] as number, p.homeBonus);
  return { totalBlocks: total, matched, guarded, home: endpoints[homeAt], homeBonus, best };
}
