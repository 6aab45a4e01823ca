/**
 * What precise prefix scoring reads (scheduling/plugins/precise-prefix-scorer.ts), as interfaces so
 * that scheduling depends on the shape, not on the modules behind it: the engines' KV blocks as
 * their KV events report them (src/kvevents/block-index.ts) and the models' tokenizers
 * (src/tokens/), both owned by the gateway and shared by every pool.
 */

/** The engines' cached blocks, by the gateway's own block keys (src/kvevents/block-keys.ts). */
export interface KvBlockLookup {
  /**
   * For each of `endpoints` (`Endpoint.key`, `ip:port`), the length of its longest run of `keys`
   * from the first, each block weighted by the tier holding it (GPU 1, CPU 0.8), into `out[i]`.
   */
  match(keys: Float64Array, endpoints: readonly string[], out: Float64Array): void;
  /** The gateway just sent these blocks' prompt to `endpoint`: count them held until its events arrive or a short TTL passes. */
  speculate(endpoint: string, keys: Float64Array): void;
}

/** A model's tokenizer as vLLM applies it (src/tokens/). Both calls run off the event loop and may reject. */
export interface RequestTokenizer {
  /** A completions prompt's token ids (special tokens added, as vLLM's completions path does). */
  encodePrompt(text: string): Promise<Uint32Array>;
  /** A chat request's token ids: the model's chat template with the generation prompt, then tokenised. */
  encodeChat(messages: readonly unknown[], extras?: { readonly tools?: unknown }): Promise<Uint32Array>;
}

/** Loaded tokenizers by directory; undefined while loading or after a failed load (the scorer falls back to estimate mode). */
export interface TokenizerLookup {
  get(path: string): RequestTokenizer | undefined;
  /** The directory's last load failed (logged; retried on a later configuration change). */
  failed(path: string): boolean;
}

export interface PreciseServices {
  readonly blocks: KvBlockLookup;
  readonly tokenizers: TokenizerLookup;
  /** Counts a precise request that had to be judged in estimate mode, by bounded reason. */
  fellBack(reason: PreciseFallbackReason): void;
  /** Counts a request sent where precise mode judged it: the chosen endpoint held `matchedBlocks` of its `promptBlocks`. */
  picked(matchedBlocks: number, promptBlocks: number): void;
}

/** Why a request of a precise pool was judged in estimate mode (a fixed set: metric labels). */
export type PreciseFallbackReason = 'no_tokenizer' | 'tokenizer_loading' | 'tokenizer_failed' | 'tokenize_failed' | 'tokenize_timeout' | 'no_prompt' | 'unmatchable';

export const PRECISE_FALLBACK_REASONS: readonly PreciseFallbackReason[] = ['no_tokenizer', 'tokenizer_loading', 'tokenizer_failed', 'tokenize_failed', 'tokenize_timeout', 'no_prompt', 'unmatchable'];
