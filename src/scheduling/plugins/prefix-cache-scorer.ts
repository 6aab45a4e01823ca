import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import { blockHashes, TOKENS_PER_BLOCK } from '../../prefix/block-hash.js';
import { homeAnchor } from '../../prefix/home.js';
import { withAnswer } from '../../prefix/prompt-text.js';
import { stateKey, type StateKey } from '../cycle-state.js';
import { scoreAffinity } from './prefix-affinity.js';
import { EXPECTED_CACHED_TOKENS, type CompletedResponse, type PluginHandle, type RequestControl, type Scorer, type SchedulingRequest, type TypedName } from '../types.js';

export const PREFIX_CACHE_SCORER = 'prefix-cache-scorer';

/** What the prefix scorer found for a request, for the log line and the index hit ratio. */
export interface PrefixMatch {
  readonly totalBlocks: number;
  /** Matched leading blocks per candidate. */
  readonly matched: ReadonlyMap<Endpoint, number>;
  /** Candidates whose affinity (a match, or the home bonus) was dropped because they were much busier than the least busy. */
  readonly guarded: readonly Endpoint[];
  /** The prompt's prefix home among the candidates (src/prefix/home.ts), if it has one. */
  readonly home: Endpoint | undefined;
  /** True when the home got the bonus: the hot-spot guard did not catch it, and no candidate outside the guard holds the whole anchor. */
  readonly homeBonus: boolean;
}

/** Chained block hashes of the request's prompt, computed once and shared by every prefix scorer of the request. */
const PROMPT_HASHES = stateKey<Uint32Array>('prefix.hashes');
const NO_HASHES = new Uint32Array(0);

/** The prompt's block hashes for its target model (LoRA-aware: the model seeds the chain). */
export function promptHashes(request: SchedulingRequest): Uint32Array {
  let hashes = request.state.read(PROMPT_HASHES);
  if (hashes === undefined) {
    const text = request.promptText();
    hashes = text === undefined ? NO_HASHES : blockHashes(text, request.targetModel);
    request.state.write(PROMPT_HASHES, hashes);
  }
  return hashes;
}

/** The estimate scorer's parameters (the precise scorer extends them: src/scheduling/plugins/precise-prefix-scorer.ts). */
export const PrefixScorerParametersSchema = z
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
    /**
     * Score of the prompt's prefix home (src/prefix/home.ts), the endpoint every gateway replica
     * picks for the prompt's first `minBlocksForFullScore` blocks by rendezvous hashing, so that
     * active-active replicas, each learning its index only from its own requests, still send a
     * shared prefix to the same engine. Only prompts of at least `minBlocksForFullScore` blocks
     * have a home (src/prefix/home.ts says why). Withheld from a home the hot-spot guard catches, withheld when a candidate outside the guard
     * already holds the prompt's whole anchor, and combined with the home's own match by max, not
     * sum: the home is a guess of where the other replicas put the prefix, a match is this
     * replica's knowledge of where it put it, and the guess must neither override the knowledge
     * (a single gateway would split its groups between where it put them and their homes:
     * measured, 1.21 engines per group instead of 1.00) nor add to it (one piece of evidence
     * counted twice would weigh affinity more against load than a full match does). At most 1,
     * a full match. 0 disables. Default 1, a full match's worth (chosen by bench/k8s/replicas.ts,
     * docs/benchmarks.md "Replicas": 0.5 left 1.69 engines per group with 2 replicas, 1 left 1.41).
     * At the prefix weight 3 it is 3 points: more than the load differences a replica's own recent
     * dispatches make (in-flight range 1, one pending 7,000-token prefill 1.6), so with equal
     * server load every replica picks the home; less than a home busier on every load signal
     * loses (queue range 2 + in-flight 1 + pending prefill up to 2), and the hot-spot guard
     * withdraws it outright.
     */
    homeBonus: z.number().min(0).max(1).default(1),
  })
  .strict();

export type PrefixScorerParameters = z.output<typeof PrefixScorerParametersSchema>;

/**
 * Pulls requests towards endpoints that already hold their prompt prefix in KV cache: the number
 * of leading prompt blocks the endpoint is believed to hold (from the gateway's prefix index),
 * over the prompt's blocks. Protects against hot-spots: a very popular prefix must not pin all
 * its traffic on one endpoint, so a much busier endpoint scores 0 and the prefix spreads to the
 * next endpoint chosen by load (which then holds it too). The prompt's prefix home (`homeBonus`,
 * src/prefix/home.ts) scores like a partial match on every gateway replica, so replicas that do
 * not share their indexes still agree where a new shared prefix goes.
 *
 * It also keeps the index ("estimate mode", Gateway API Inference Extension, approximate prefix cache: pkg/epp/framework/plugins/requestcontrol/dataproducer/approximateprefix) through its request-control hooks:
 * the prompt's blocks are recorded on the endpoint a request is sent to, and the prompt plus the
 * answer when the response completes, so a conversation's next turn matches its whole history.
 * Enabling or disabling prefix affinity is this one plugin.
 */
export class PrefixCacheScorer implements Scorer, RequestControl {
  readonly typedName: TypedName;
  readonly category = 'affinity' as const;
  readonly needsResponseText = true;
  readonly #handle: PluginHandle;
  readonly #p: PrefixScorerParameters;
  /** This instance's match, per request (an instance per profile: prefill and decode keep theirs). */
  readonly #match: StateKey<PrefixMatch>;

  constructor(name: string, handle: PluginHandle, parameters: PrefixScorerParameters) {
    this.typedName = { type: PREFIX_CACHE_SCORER, name };
    this.#handle = handle;
    this.#p = parameters;
    this.#match = stateKey<PrefixMatch>(`prefix.match:${name}`);
  }

  /** What this scorer found for the request, if it scored it. */
  matchOf(request: SchedulingRequest): PrefixMatch | undefined {
    return request.state.read(this.#match);
  }

  score(request: SchedulingRequest, endpoints: readonly Endpoint[], out: Float64Array): void {
    const hashes = promptHashes(request);
    const total = hashes.length;
    if (total === 0) {
      out.fill(0);
      return;
    }
    const counts = new Int32Array(endpoints.length);
    this.#handle.prefixIndex.match(hashes, endpoints, counts);
    const anchor = this.#p.homeBonus > 0 ? homeAnchor(hashes, this.#p.minBlocksForFullScore) : undefined;
    const { best, ...match } = scoreAffinity(endpoints, counts, total, anchor, this.#p, out);
    this.#handle.prefixIndex.countLookup(best, total);
    request.state.write(this.#match, match);
    const matched = match.matched;
    // Merged with what another prefix scorer of the request (the other PD role's) found.
    const cached = new Map<Endpoint, number>(request.state.read(EXPECTED_CACHED_TOKENS) ?? []);
    for (const [e, n] of matched) cached.set(e, Math.min(request.promptTokens, n * TOKENS_PER_BLOCK));
    request.state.write(EXPECTED_CACHED_TOKENS, cached);
  }

  /** The endpoint computes the prompt now: its cache will hold these blocks. */
  preRequest(request: SchedulingRequest, endpoint: Endpoint): void {
    if (this.matchOf(request)?.matched.has(endpoint) !== true) return;
    this.#handle.prefixIndex.record(endpoint, promptHashes(request));
  }

  /**
   * After a complete answer the endpoint caches the prompt and the generated text; index both so
   * the conversation's next turn, which resends them, matches this endpoint in full.
   */
  responseComplete(request: SchedulingRequest, endpoint: Endpoint, response: CompletedResponse): void {
    if (!response.complete || response.status !== 200 || response.text === undefined || response.text === '') return;
    if (request.body === undefined || this.matchOf(request)?.matched.has(endpoint) !== true) return;
    const text = withAnswer(request.body, response.text);
    if (text !== undefined) this.#handle.prefixIndex.record(endpoint, blockHashes(text, request.targetModel));
  }

  logFields(request: SchedulingRequest, endpoint: Endpoint): Readonly<Record<string, string>> | undefined {
    const m = this.matchOf(request);
    if (m === undefined) return undefined;
    const fields: Record<string, string> = { prefixBlocks: `${m.matched.get(endpoint) ?? 0}/${m.totalBlocks}` };
    // Whether the request went to its prefix home, so a log shows replicas agreeing (or load overriding).
    if (m.home !== undefined) fields['prefixHome'] = m.home === endpoint ? 'yes' : 'no';
    return fields;
  }
}

export function createPrefixCacheScorer(name: string, parameters: Readonly<Record<string, unknown>>, handle: PluginHandle): PrefixCacheScorer {
  return new PrefixCacheScorer(name, handle, PrefixScorerParametersSchema.parse(parameters));
}
