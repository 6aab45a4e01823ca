import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import { stateKey } from '../cycle-state.js';
import type { PluginHandle, Scorer, SchedulingRequest, TypedName } from '../types.js';

export const PREFIX_CACHE_SCORER = 'prefix-cache-scorer';

/** What the prefix scorer found for a request, for the log line and the index hit ratio. */
export interface PrefixMatch {
  readonly totalBlocks: number;
  /** Matched leading blocks per candidate. */
  readonly matched: ReadonlyMap<Endpoint, number>;
  /** Candidates whose affinity was dropped because they were much busier than the least busy. */
  readonly guarded: readonly Endpoint[];
}

export const PREFIX_MATCH = stateKey<PrefixMatch>('prefix.match');

const Parameters = z
  .object({
    /**
     * A match is worth full marks only from this many blocks (64 characters ≈ 16 tokens each):
     * score = matched / max(total, minBlocks). Matching 2 blocks of a 2-block prompt saves almost
     * no prefill, so it must not outweigh load. Default 16 blocks ≈ 256 tokens.
     */
    minBlocksForFullScore: z.number().int().min(1).default(16),
    /**
     * Hot-spot guard: an endpoint whose estimated server queue exceeds the shortest candidate queue
     * by more than this loses its prefix affinity for the request. Default 5, the queue depth at
     * which a vLLM server is considered saturated: past it, a queued request waits for whole
     * requests to finish, which costs more than the prefill a cache hit saves.
     */
    hotspotQueueDelta: z.number().min(0).default(5),
    /** Hot-spot guard on KV utilisation: more than this above the emptiest candidate. Default 0.3. */
    hotspotKvDelta: z.number().min(0).max(1).default(0.3),
  })
  .strict();

export type PrefixScorerParameters = z.output<typeof Parameters>;

/**
 * Pulls requests towards endpoints that already hold their prompt prefix in KV cache: the number
 * of leading prompt blocks the endpoint is believed to hold (from the gateway's prefix index),
 * over the prompt's blocks. Protects against hot-spots: a very popular prefix must not pin all
 * its traffic on one endpoint, so a much busier endpoint scores 0 and the prefix spreads to the
 * next endpoint chosen by load (which then holds it too).
 */
export class PrefixCacheScorer implements Scorer {
  readonly typedName: TypedName;
  readonly category = 'affinity' as const;
  readonly #handle: PluginHandle;
  readonly #p: PrefixScorerParameters;

  constructor(name: string, handle: PluginHandle, parameters: PrefixScorerParameters) {
    this.typedName = { type: PREFIX_CACHE_SCORER, name };
    this.#handle = handle;
    this.#p = parameters;
  }

  score(request: SchedulingRequest, endpoints: readonly Endpoint[], out: Float64Array): void {
    const total = request.prefixHashes.length;
    if (total === 0) {
      out.fill(0);
      return;
    }
    const counts = new Int32Array(endpoints.length);
    this.#handle.prefixIndex.match(request.prefixHashes, endpoints, counts);
    let minQueue = Infinity;
    let minKv = Infinity;
    for (const e of endpoints) {
      minQueue = Math.min(minQueue, e.estimatedWaiting());
      minKv = Math.min(minKv, e.estimatedKvUsage());
    }
    const matched = new Map<Endpoint, number>();
    const guarded: Endpoint[] = [];
    let best = 0;
    const denominator = Math.max(total, this.#p.minBlocksForFullScore);
    endpoints.forEach((e, i) => {
      const n = counts[i] ?? 0;
      matched.set(e, n);
      best = Math.max(best, n);
      const hot = e.estimatedWaiting() - minQueue > this.#p.hotspotQueueDelta || e.estimatedKvUsage() - minKv > this.#p.hotspotKvDelta;
      if (hot && n > 0) guarded.push(e);
      out[i] = hot ? 0 : n / denominator;
    });
    this.#handle.prefixIndex.countLookup(best, total);
    request.state.write(PREFIX_MATCH, { totalBlocks: total, matched, guarded });
  }
}

export function createPrefixCacheScorer(name: string, parameters: Readonly<Record<string, unknown>>, handle: PluginHandle): PrefixCacheScorer {
  return new PrefixCacheScorer(name, handle, Parameters.parse(parameters));
}
