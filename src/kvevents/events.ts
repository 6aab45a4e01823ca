/**
 * KV-cache events as the gateway sees them, after decoding (src/kvevents/wire.ts) and before the
 * block index (src/kvevents/block-index.ts) applies them.
 *
 * The wire format is vLLM's (vllm/distributed/kv_events.py, vLLM ≥ 0.10; SGLang publishes the
 * same model): a ZeroMQ PUB message of three frames, `topic` (UTF-8), `seq` (8-byte big-endian,
 * increasing per publisher) and a msgpack `EventBatch` (`ts`, `events`, `data_parallel_rank`),
 * encoded as an array (older vLLM, `array_like=True`) or as a map (newer vLLM). Events are msgspec
 * tagged structs: `BlockStored`, `BlockRemoved`, `AllBlocksCleared`.
 */

/**
 * An engine's block hash, as an unsigned 64-bit integer. vLLM sends a Python int (its builtin
 * hash, which may be negative: taken modulo 2^64) or bytes (the sha256 family: the low 64 bits of
 * the big-endian integer, as vLLM's `maybe_convert_block_hash` and llm-d's `getHashAsUint64` do).
 * The gateway never interprets it beyond identity: its own block keys come from the token ids.
 */
export type EngineBlockHash = bigint;

/** Where a stored block lives. vLLM says "GPU" or "CPU" (offloaded), or nothing (GPU). */
export type KvMedium = 'GPU' | 'CPU';

/** One or more full blocks a request's prefill or decode stored, chained on `parentBlockHash`. */
export interface BlockStoredEvent {
  readonly type: 'BlockStored';
  /** One hash per block, in sequence order. */
  readonly blockHashes: readonly EngineBlockHash[];
  /** The block before the first one; null when the first block starts a sequence. */
  readonly parentBlockHash: EngineBlockHash | null;
  /** `blockHashes.length × blockSize` token ids, the blocks' contents in order. */
  readonly tokenIds: readonly number[];
  /** Tokens per block (vLLM's default 16 on CUDA). */
  readonly blockSize: number;
  /** The LoRA adapter whose blocks these are (adapters never share blocks); null for the base model. */
  readonly loraName: string | null;
  readonly medium: KvMedium;
  /**
   * A stable digest of the blocks' non-token extra keys (multimodal hashes, cache salt,
   * prompt-embeds hash), or null when none: blocks that carry extra keys never match a text-only
   * request's blocks.
   */
  readonly extraKeysDigest: number | null;
}

/** Blocks the engine evicted (from `medium`). */
export interface BlockRemovedEvent {
  readonly type: 'BlockRemoved';
  readonly blockHashes: readonly EngineBlockHash[];
  readonly medium: KvMedium;
}

/** The engine dropped its whole prefix cache (`reset_prefix_cache`, or a new process). */
export interface AllBlocksClearedEvent {
  readonly type: 'AllBlocksCleared';
}

export type KvEvent = BlockStoredEvent | BlockRemovedEvent | AllBlocksClearedEvent;

/** One decoded `EventBatch`. */
export interface KvEventBatch {
  /** The publisher's timestamp (seconds since the epoch, float). */
  readonly ts: number;
  readonly events: readonly KvEvent[];
  /** The data-parallel rank that published it; null when the engine is not data-parallel. */
  readonly dataParallelRank: number | null;
}

/** Why events or batches were skipped, counted by reason (a bounded, fixed set of metric labels). */
export type KvEventProblem =
  | 'malformed_batch' // not a msgpack EventBatch in either encoding, or over a size bound
  | 'malformed_event' // an event of a known tag with fields of the wrong type or size
  | 'unknown_event' // an event tag this gateway does not know (skipped, the rest of the batch applies)
  | 'too_many_events' // a batch over the event bound: the excess is skipped
  | 'block_size_mismatch' // blocks whose size the pool's block size does not divide
  | 'orphan_block' // a stored block whose parent the index does not know
  | 'topic_mismatch' // a message whose topic does not match the pool's topic pattern
  | 'oversized_message'; // a message over the frame, frame-count or byte bounds: its publisher is cut off (and reconnected to)

export const KV_EVENT_PROBLEMS: readonly KvEventProblem[] = [
  'malformed_batch',
  'malformed_event',
  'unknown_event',
  'too_many_events',
  'block_size_mismatch',
  'orphan_block',
  'topic_mismatch',
  'oversized_message',
];
