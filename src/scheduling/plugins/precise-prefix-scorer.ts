import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import { blockKeys } from '../../kvevents/block-keys.js';
import { stateKey, type StateKey } from '../cycle-state.js';
import type { PreciseFallbackReason, RequestTokenizer } from '../precise-services.js';
import { EXPECTED_CACHED_TOKENS, type CompletedResponse, type DataProducer, type PluginHandle, type RequestControl, type Scorer, type SchedulingRequest, type TypedName } from '../types.js';
import { scoreAffinity } from './prefix-affinity.js';
import { PrefixCacheScorer, PrefixScorerParametersSchema, type PrefixMatch } from './prefix-cache-scorer.js';

export const PRECISE_PREFIX_SCORER = 'precise-prefix-scorer';

/**
 * Blocks matched at most per request: 8,192 blocks of 16 tokens are 131,072 tokens, the longest
 * context of the models this gateway is sized for. Bounds the keys computed and the lookup.
 */
const MAX_BLOCKS_TO_MATCH = 8192;

const Parameters = PrefixScorerParametersSchema.extend({
  /** Tokens per block (config/prefix-mode.ts: default 16, vLLM's). */
  blockSize: z.number().int().min(1).max(1024).default(16),
  /** The tokenizer directory per served base model (config/prefix-mode.ts). */
  tokenizers: z.array(z.object({ model: z.string().min(1), path: z.string().min(1) }).strict()).min(1).max(64),
  /**
   * Longest a request waits for its tokens before it is judged in estimate mode instead. Tokenising
   * costs about 1 µs per character off the event loop (src/tokens/), so 1 s covers a 200 KB prompt
   * on a busy worker several times over; past it a request must not wait on routing.
   */
  tokenizeTimeoutMs: z.number().int().min(1).max(60_000).default(1000),
}).strict();

export type PreciseScorerParameters = z.output<typeof Parameters>;

/** The request's block keys (or why there are none), computed once and shared by every precise scorer of the request (both PD roles). */
type PreciseKeys = { readonly keys: Float64Array } | { readonly fallback: PreciseFallbackReason };
const PRECISE_KEYS = stateKey<PreciseKeys>('precise.keys');
const PRECISE_WORK = stateKey<Promise<void>>('precise.work');

/**
 * Prefix affinity from what the engines really cache ("precise mode"): the request's token ids
 * (the model's own tokenizer and chat template, src/tokens/, tokenised off the event loop while
 * the request waits for admission) are cut into the gateway's block keys (src/kvevents/block-keys.ts)
 * and looked up in the index the engines' KV events keep (src/kvevents/block-index.ts): each
 * candidate's score is its longest run of cached blocks from the prompt's start, weighted by tier
 * (GPU 1, CPU 0.8), over the prompt's blocks, with the same hot-spot guard and prefix home as
 * estimate mode (prefix-affinity.ts). A pick is recorded as speculative blocks on the endpoint
 * until its events arrive (the lag between a pick and the engine's prefill).
 *
 * A request that cannot be judged precisely (no tokenizer for its model, a tokenizer still
 * loading or failing, tokenising over `tokenizeTimeoutMs`, a prompt that is not text) is judged
 * by the estimate-mode scorer this one embeds, and counted by reason
 * (`infergate_prefix_precise_fallbacks_total`).
 */
export class PrecisePrefixScorer implements Scorer, RequestControl, DataProducer {
  readonly typedName: TypedName;
  readonly category = 'affinity' as const;
  readonly needsResponseText = true;
  readonly #handle: PluginHandle;
  readonly #p: PreciseScorerParameters;
  readonly #estimate: PrefixCacheScorer;
  readonly #byModel: ReadonlyMap<string, string>;
  /** This instance's match, per request (an instance per profile: prefill and decode keep theirs). */
  readonly #match: StateKey<PrefixMatch & { readonly mode: 'precise' | 'estimate' }>;

  constructor(name: string, handle: PluginHandle, parameters: PreciseScorerParameters) {
    this.typedName = { type: PRECISE_PREFIX_SCORER, name };
    this.#handle = handle;
    this.#p = parameters;
    const { blockSize: _b, tokenizers, tokenizeTimeoutMs: _t, ...estimate } = parameters;
    this.#estimate = new PrefixCacheScorer(name, handle, estimate);
    this.#byModel = new Map(tokenizers.map((t) => [t.model, t.path]));
    this.#match = stateKey(`precise.match:${name}`);
  }

  prepareRequestData(request: SchedulingRequest): Promise<void> | undefined {
    if (request.state.read(PRECISE_KEYS) !== undefined) return undefined;
    const running = request.state.read(PRECISE_WORK);
    if (running !== undefined) return running;
    const work = this.#tokenize(request)
      .catch((): PreciseKeys => ({ fallback: 'tokenize_failed' }))
      .then((keys) => {
        // Counted once per request, whichever of its scorers judges it.
        if ('fallback' in keys) this.#handle.precise?.fellBack(keys.fallback);
        request.state.write(PRECISE_KEYS, keys);
      });
    request.state.write(PRECISE_WORK, work);
    return work;
  }

  score(request: SchedulingRequest, endpoints: readonly Endpoint[], out: Float64Array): void {
    const prepared = request.state.read(PRECISE_KEYS) ?? { fallback: 'tokenizer_loading' as const };
    const blocks = this.#handle.precise?.blocks;
    if ('fallback' in prepared || blocks === undefined) {
      this.#estimate.score(request, endpoints, out);
      // The log line says the request was judged in estimate mode, even when its prompt was too short to match.
      const m = this.#estimate.matchOf(request) ?? { totalBlocks: 0, matched: new Map<Endpoint, number>(), guarded: [], home: undefined, homeBonus: false };
      request.state.write(this.#match, { ...m, mode: 'estimate' });
      return;
    }
    const { keys } = prepared;
    const counts = new Float64Array(endpoints.length);
    if (keys.length > 0) blocks.match(keys, endpoints.map((e) => e.key), counts);
    // Tier-weighted block counts (CPU blocks 0.8 each): two decimals keep the log line readable.
    for (let i = 0; i < counts.length; i++) counts[i] = Math.round((counts[i] as number) * 100) / 100;
    const anchorAt = Math.max(1, this.#p.minBlocksForFullScore) - 1;
    const anchor = this.#p.homeBonus > 0 && anchorAt < keys.length ? (keys[anchorAt] as number) >>> 0 : undefined;
    const { best: _best, ...match } = scoreAffinity(endpoints, counts, keys.length, anchor, this.#p, out);
    request.state.write(this.#match, { ...match, mode: 'precise' });
    const cached = new Map<Endpoint, number>(request.state.read(EXPECTED_CACHED_TOKENS) ?? []);
    for (const [e, n] of match.matched) cached.set(e, Math.min(request.promptTokens, Math.floor(n) * this.#p.blockSize));
    request.state.write(EXPECTED_CACHED_TOKENS, cached);
  }

  /** The endpoint computes the prompt now: count its blocks there until the engine's own events say so. */
  preRequest(request: SchedulingRequest, endpoint: Endpoint): void {
    const prepared = request.state.read(PRECISE_KEYS);
    const precise = this.#handle.precise;
    if (prepared !== undefined && 'keys' in prepared && precise !== undefined) {
      if (prepared.keys.length > 0) precise.blocks.speculate(endpoint.key, prepared.keys);
      const m = request.state.read(this.#match);
      if (m?.mode === 'precise') precise.picked(Math.floor(m.matched.get(endpoint) ?? 0), m.totalBlocks);
      return;
    }
    this.#estimate.preRequest(request, endpoint);
  }

  /** Only an estimate-mode judgement learns from answers; precise mode learns from the engine's events. */
  responseComplete(request: SchedulingRequest, endpoint: Endpoint, response: CompletedResponse): void {
    if (request.state.read(this.#match)?.mode === 'estimate') this.#estimate.responseComplete(request, endpoint, response);
  }

  logFields(request: SchedulingRequest, endpoint: Endpoint): Readonly<Record<string, string>> | undefined {
    const m = request.state.read(this.#match);
    if (m === undefined) return undefined;
    const fields: Record<string, string> = { prefixBlocks: `${m.matched.get(endpoint) ?? 0}/${m.totalBlocks}`, prefixMode: m.mode };
    // Why a request of a precise pool was judged in estimate mode (a fixed set of reasons).
    const prepared = request.state.read(PRECISE_KEYS);
    if (m.mode === 'estimate' && prepared !== undefined && 'fallback' in prepared) fields['prefixFallback'] = prepared.fallback;
    if (m.home !== undefined) fields['prefixHome'] = m.home === endpoint ? 'yes' : 'no';
    return fields;
  }

  /** The request's block keys, or why it has none. Never rejects on a client's input. */
  async #tokenize(request: SchedulingRequest): Promise<PreciseKeys> {
    const which = this.#tokenizerOf(request);
    if (which === undefined) return { fallback: 'no_tokenizer' };
    const body = request.body;
    if (body === undefined) return { fallback: 'no_prompt' };
    const prompt = body['prompt'];
    let ids: ArrayLike<number>;
    // vLLM accepts a completions prompt as token ids: those are the ids, no tokenizer needed.
    if (Array.isArray(prompt) && prompt.length > 0 && prompt.every((t) => Number.isInteger(t) && (t as number) >= 0)) {
      ids = prompt as number[];
    } else {
      const tokenizers = this.#handle.precise?.tokenizers;
      const tokenizer = tokenizers?.get(which.path);
      if (tokenizer === undefined) return { fallback: tokenizers?.failed(which.path) === true ? 'tokenizer_failed' : 'tokenizer_loading' };
      const work = encode(tokenizer, body);
      if (work === undefined) return { fallback: 'unmatchable' };
      const result = await withTimeout(work, this.#p.tokenizeTimeoutMs);
      if (result === undefined) return { fallback: 'tokenize_timeout' };
      ids = result;
    }
    return { keys: blockKeys(ids, this.#p.blockSize, which.lora, { maxBlocks: MAX_BLOCKS_TO_MATCH }) };
  }

  /**
   * The tokenizer of the request's target model and the LoRA adapter its blocks belong to: a
   * tokenizer named for the target is the base model's (no adapter); otherwise the target is an
   * adapter of the pool's base model (the pool's only tokenizer, or the requested name's).
   */
  #tokenizerOf(request: SchedulingRequest): { path: string; lora: string | null } | undefined {
    const own = this.#byModel.get(request.targetModel);
    if (own !== undefined) return { path: own, lora: null };
    const base = this.#byModel.size === 1 ? this.#byModel.values().next().value : this.#byModel.get(request.model);
    return base === undefined ? undefined : { path: base, lora: request.targetModel };
  }
}

/**
 * Most chat messages a request may have to be matched precisely. The template renders on the
 * tokenizer's worker, but the main thread still checks each message, posts them and splits the
 * rendered text at every turn's special tokens: measured, 2,000 messages held the event loop up to
 * 9 ms and 10,000 up to 34 ms; 1,024 keeps it near 5 ms. Longer chats are judged in estimate mode.
 */
const MAX_MESSAGES_TO_MATCH = 1024;

/** The tokens a request's body asks the engine to compute; undefined for a body precise mode cannot match (several prompts, images, the Responses API, a chat past MAX_MESSAGES_TO_MATCH). */
function encode(tokenizer: RequestTokenizer, body: Readonly<Record<string, unknown>>): Promise<Uint32Array> | undefined {
  const messages = body['messages'];
  if (Array.isArray(messages) && messages.length > MAX_MESSAGES_TO_MATCH) return undefined;
  if (Array.isArray(messages)) return tokenizer.encodeChat(messages, body['tools'] === undefined ? undefined : { tools: body['tools'] });
  const prompt = body['prompt'];
  if (typeof prompt === 'string') return tokenizer.encodePrompt(prompt);
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') return tokenizer.encodePrompt(prompt[0]);
  return undefined;
}

/** `work`'s value, or undefined when it takes longer than `ms` (the work itself goes on and is dropped). */
function withTimeout<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, ms, undefined);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export function createPrecisePrefixScorer(name: string, parameters: Readonly<Record<string, unknown>>, handle: PluginHandle): PrecisePrefixScorer {
  return new PrecisePrefixScorer(name, handle, Parameters.parse(parameters));
}
