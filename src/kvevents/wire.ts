/**
 * vLLM's KV-event wire format, decoded and encoded (vllm-project/vllm
 * vllm/distributed/kv_events.py; examples/online_serving/kv_events_subscriber.py).
 *
 * A ZeroMQ PUB message is three frames: topic (UTF-8), seq (8-byte big-endian, from 0, +1 per
 * batch) and the payload, a msgspec-msgpack `EventBatch`:
 *
 * - `EventBatch(ts: float, events: list, data_parallel_rank: int | None = None)`, encoded as an
 *   ARRAY `[ts, events, rank?]` (vLLM ≤ 0.10 and its subscriber example, `array_like=True`; the
 *   oldest had no rank) or as a MAP `{ts, events, data_parallel_rank?}` (newer vLLM). Defaults are
 *   omitted (`omit_defaults=True`): a trailing null rank is absent.
 * - Events are msgspec tagged structs (tag = class name), each as an array whose first element is
 *   the tag, or as a map whose `"type"` is the tag. Both event forms are accepted under both batch
 *   forms: some vLLM versions paired an array-like batch with map events. Fields in order:
 *   - `BlockStored`: block_hashes, parent_block_hash, token_ids, block_size, lora_id (deprecated),
 *     medium (since 0.10), lora_name (later), then optional extra_keys, group_idx,
 *     kv_cache_spec_kind, kv_cache_spec_sliding_window. Older publishers stop after lora_id.
 *   - `BlockRemoved`: block_hashes, medium (since 0.10), then optional group_idx.
 *   Events of a hybrid model's other KV-cache groups (group_idx > 0) are skipped (see groupOf).
 *   - `AllBlocksCleared`: no fields.
 * - Hashes (`ExternalBlockHash = bytes | int`): a Python int (the builtin hash: may be negative,
 *   may exceed 2^53; taken modulo 2^64) or bytes (the sha256 family: the low 64 bits of the
 *   big-endian integer, as vLLM's `maybe_convert_block_hash` and llm-d's `getHashAsUint64`).
 *
 * SGLang (sgl-project/sglang python/sglang/srt/disaggregation/kv_events.py) publishes the same
 * msgspec model in the array form: `EventBatch [ts, events]` (its `attn_dp_rank` is not on the
 * wire), `BlockStored [tag, hashes, parent, token_ids, block_size, lora_id]` and
 * `BlockRemoved [tag, hashes]` (int hashes, no medium: GPU). Newer SGLang adds `medium` (with
 * "CPU_PINNED" for host memory, read as CPU; its "DISK"/"EXTERNAL" tiers are not modelled here)
 * and `remaining_copy_counts` on BlockRemoved (ignored). All of that decodes here.
 *
 * Everything is hostile until bounded (WIRE_LIMITS): the payload size, nesting depth, every array,
 * map and string length, before and while decoding. A batch that is not an EventBatch is
 * `{ ok: false }`; an event with wrong types is skipped and counted (`malformed_event`), an
 * unknown tag is skipped and counted (`unknown_event`), events past the per-batch bound are
 * skipped and counted (`too_many_events`). Never throws.
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import type {
  BlockRemovedEvent,
  BlockStoredEvent,
  EngineBlockHash,
  KvEvent,
  KvEventBatch,
  KvEventProblem,
  KvMedium,
} from './events.js';
import { extraKeysDigest } from './extra-keys.js';
import { scanMsgpack } from './msgpack-scan.js';

/** Bounds on one payload. Every field is a count or a byte length; see WIRE_LIMITS for the defaults and why. */
export interface WireLimits {
  /** Largest payload frame, bytes. */
  readonly maxPayloadBytes: number;
  /** Events applied from one batch; the rest are counted as `too_many_events`. */
  readonly maxEventsPerBatch: number;
  /** Block hashes in one event. */
  readonly maxBlocksPerEvent: number;
  /** Token ids in one BlockStored (also = hashes × block_size, checked). */
  readonly maxTokensPerEvent: number;
  /** Longest string (tag, medium, LoRA name, map key, extra key), bytes. */
  readonly maxStringBytes: number;
  /** Longest bytes value (hashes: sha256 is 32), bytes. */
  readonly maxBinBytes: number;
  /** Most entries in one map (a struct has about a dozen fields). */
  readonly maxMapEntries: number;
  /** Deepest nesting (batch → events → event → extra_keys → tuple → …). */
  readonly maxDepth: number;
}

/**
 * Default bounds, sized from vLLM's own traffic with room to spare:
 * - a step prefills at most `max_num_batched_tokens` (8,192 by default; deployments raise it to
 *   64 K or more) and a P/D decode node may store a whole 128 K-token prompt at once: 1 M token
 *   ids per event (≤ 5 bytes each on the wire) and 64 K blocks (block size 16 ⇒ 1 M tokens);
 * - eviction sends one BlockRemoved per evicted block (vllm/v1/core/block_pool.py), so a step
 *   allocating 64 K tokens of blocks may carry thousands of events: 65,536 per batch;
 * - all of it fits in 16 MiB (a 1 M-token event is ≈ 5 MiB).
 */
export const WIRE_LIMITS: WireLimits = Object.freeze({
  maxPayloadBytes: 16 * 1024 * 1024,
  maxEventsPerBatch: 65_536,
  maxBlocksPerEvent: 65_536,
  maxTokensPerEvent: 1_048_576,
  maxStringBytes: 1_024,
  maxBinBytes: 1_024,
  maxMapEntries: 64,
  maxDepth: 16,
});

/** A decoded batch and the events it skipped by reason, or why the payload is no batch at all. */
export type DecodedBatch =
  | { readonly ok: true; readonly batch: KvEventBatch; readonly problems: ReadonlyMap<KvEventProblem, number> }
  | { readonly ok: false; readonly reason: string };

/** How `encodeEventBatch` writes a batch: the batch/event form, and hashes as ints or 32-byte strings. */
export interface EncodeOptions {
  readonly encoding: 'array' | 'map';
  readonly hashes: 'int' | 'bytes';
}

/**
 * Decodes one payload frame. Never throws: a payload that is not an `EventBatch` in either form,
 * or over a bound (size, depth, a container or string length) is `{ ok: false, reason }` (the
 * caller counts it as `malformed_batch`); bad events inside a good batch are skipped and counted
 * in `problems`. `limits` is read once per distinct object (its decoder is cached): pass a new
 * object to change a bound.
 */
export function decodeEventBatch(payload: Uint8Array, limits: WireLimits = WIRE_LIMITS): DecodedBatch {
  try {
    return decodeUnchecked(payload, limits);
  } catch (err) {
    // The scan and the decoder limits should leave nothing to throw; this is the last fence.
    return { ok: false, reason: `undecodable: ${err instanceof Error ? err.name : 'error'}` };
  }
}

/**
 * Reads a seq frame: 8 bytes, big-endian, signed (the replay end marker is −1; vLLM's seq counts
 * up from 0). Anything else is undefined.
 */
export function decodeSeq(frame: Uint8Array): bigint | undefined {
  if (frame.byteLength !== 8) return undefined;
  return new DataView(frame.buffer, frame.byteOffset, 8).getBigInt64(0);
}

/** Writes a seq frame (8 bytes, big-endian, two's complement: −1 is the replay end marker). */
export function encodeSeq(seq: bigint): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigInt64BE(BigInt.asIntN(64, seq));
  return out;
}

/**
 * Encodes a batch as vLLM does (see the module comment for the two forms). Hashes go out as
 * unsigned ints (`int`), or as 32 bytes whose low 8 are the hash (`bytes`: the sha256 width; the
 * upper 24 bytes are a deterministic spread of the hash so a reader that takes the wrong end sees
 * other values). `lora_id` is a stable positive int derived from the LoRA name (vLLM sends the
 * adapter's int id); a non-null `extraKeysDigest` is written as one `[digest]` tuple per block
 * (the original extra keys are not kept, so it decodes to a different, still non-null digest).
 */
export function encodeEventBatch(batch: KvEventBatch, options: EncodeOptions): Uint8Array {
  const map = options.encoding === 'map';
  const hash = options.hashes === 'bytes' ? hashBytes : hashInt;
  const events = batch.events.map((event) => encodeEvent(event, map, hash));
  let value: unknown;
  if (map) {
    value =
      batch.dataParallelRank === null
        ? { ts: batch.ts, events }
        : { ts: batch.ts, events, data_parallel_rank: batch.dataParallelRank };
  } else {
    value = batch.dataParallelRank === null ? [batch.ts, events] : [batch.ts, events, batch.dataParallelRank];
  }
  return ENCODER.encode(value);
}

// ---------------------------------------------------------------------------------------------

const ENCODER = new Encoder({ useBigInt64: true, forceFloat32: false });

const decoders = new WeakMap<WireLimits, Decoder>();

function decoderFor(limits: WireLimits): Decoder {
  let decoder = decoders.get(limits);
  if (decoder === undefined) {
    decoder = new Decoder({
      useBigInt64: true,
      maxStrLength: limits.maxStringBytes,
      maxBinLength: limits.maxBinBytes,
      maxArrayLength: maxArrayLength(limits),
      maxMapLength: limits.maxMapEntries,
      maxExtLength: limits.maxBinBytes,
      // Non-string keys never name a field: keep them apart instead of failing the batch.
      mapKeyConverter: (key: unknown) => (typeof key === 'string' || typeof key === 'number' ? key : '\u0000'),
    });
    decoders.set(limits, decoder);
  }
  return decoder;
}

/** The largest array any field may hold; the events array may exceed maxEventsPerBatch up to this (then `too_many_events`). */
function maxArrayLength(limits: WireLimits): number {
  return Math.max(limits.maxEventsPerBatch, limits.maxBlocksPerEvent, limits.maxTokensPerEvent);
}

function decodeUnchecked(payload: Uint8Array, limits: WireLimits): DecodedBatch {
  if (!(payload instanceof Uint8Array)) return { ok: false, reason: 'not bytes' };
  if (payload.byteLength > limits.maxPayloadBytes) return { ok: false, reason: 'payload over bound' };
  if (payload.byteLength === 0) return { ok: false, reason: 'empty payload' };
  const shape = scanMsgpack(payload, {
    maxDepth: limits.maxDepth,
    maxArrayLength: maxArrayLength(limits),
    maxMapLength: limits.maxMapEntries,
    maxStrLength: limits.maxStringBytes,
    maxBinLength: limits.maxBinBytes,
  });
  if (shape !== null) return { ok: false, reason: `malformed msgpack: ${shape}` };
  const root = decoderFor(limits).decode(payload);

  let ts: unknown;
  let events: unknown;
  let rank: unknown = null;
  if (Array.isArray(root)) {
    // Fields a later version appends are ignored, as unknown map keys are.
    if (root.length < 2) return { ok: false, reason: 'EventBatch array too short' };
    [ts, events] = root;
    if (root.length >= 3) rank = root[2];
  } else if (isRecord(root)) {
    ts = field(root, 'ts');
    events = field(root, 'events');
    rank = field(root, 'data_parallel_rank') ?? null;
  } else {
    return { ok: false, reason: 'EventBatch is neither an array nor a map' };
  }
  const when = toFiniteNumber(ts);
  if (when === undefined) return { ok: false, reason: 'EventBatch ts is not a number' };
  if (!Array.isArray(events)) return { ok: false, reason: 'EventBatch events is not an array' };
  let dataParallelRank: number | null = null;
  if (rank !== null) {
    const r = toUint(rank, MAX_DP_RANK);
    if (r === undefined) return { ok: false, reason: 'EventBatch data_parallel_rank is not a rank' };
    dataParallelRank = r;
  }

  const problems = new Map<KvEventProblem, number>();
  const count = (problem: KvEventProblem, n = 1): void => {
    problems.set(problem, (problems.get(problem) ?? 0) + n);
  };
  const out: KvEvent[] = [];
  const applied = Math.min(events.length, limits.maxEventsPerBatch);
  if (events.length > applied) count('too_many_events', events.length - applied);
  for (let i = 0; i < applied; i++) {
    const decoded = decodeEvent(events[i], limits);
    if (typeof decoded === 'string') count(decoded);
    else out.push(decoded);
  }
  return { ok: true, batch: { ts: when, events: out, dataParallelRank }, problems };
}

/** vLLM offsets ports by rank, so a rank is well under 65,536. */
const MAX_DP_RANK = 65_535;

type EventProblem = 'malformed_event' | 'unknown_event';

/** Field names of each struct in array order, after the tag (vLLM kv_events.py). */
const STORED_FIELDS = ['block_hashes', 'parent_block_hash', 'token_ids', 'block_size', 'lora_id', 'medium', 'lora_name', 'extra_keys', 'group_idx'] as const;
const REMOVED_FIELDS = ['block_hashes', 'medium', 'group_idx'] as const;
/** Fields BlockStored must have: the four the first vLLM publisher sent (lora_id joined them there too). */
const STORED_REQUIRED = 4;

function decodeEvent(raw: unknown, limits: WireLimits): KvEvent | EventProblem {
  let tag: unknown;
  let get: (name: string, index: number) => unknown;
  if (Array.isArray(raw)) {
    if (raw.length === 0) return 'malformed_event';
    tag = raw[0];
    const arr = raw;
    get = (_name, index) => (index + 1 < arr.length ? arr[index + 1] : undefined);
  } else if (isRecord(raw)) {
    tag = field(raw, 'type');
    const rec = raw;
    get = (name) => field(rec, name);
  } else {
    return 'malformed_event';
  }
  if (typeof tag !== 'string') return 'malformed_event';
  switch (tag) {
    case 'BlockStored':
      return decodeStored(get, Array.isArray(raw) ? raw.length - 1 : undefined, limits);
    case 'BlockRemoved':
      return decodeRemoved(get, limits);
    case 'AllBlocksCleared':
      return ALL_BLOCKS_CLEARED;
    default:
      return 'unknown_event';
  }
}

const ALL_BLOCKS_CLEARED: KvEvent = Object.freeze({ type: 'AllBlocksCleared' });

function decodeStored(
  get: (name: string, index: number) => unknown,
  arrayFields: number | undefined,
  limits: WireLimits,
): BlockStoredEvent | EventProblem {
  if (arrayFields !== undefined && arrayFields < STORED_REQUIRED) return 'malformed_event';
  const at = (i: number): unknown => get(STORED_FIELDS[i] ?? '', i);
  const blockHashes = toHashes(at(0), limits);
  if (blockHashes === undefined || blockHashes.length === 0) return 'malformed_event';
  const parentRaw = at(1);
  let parentBlockHash: EngineBlockHash | null = null;
  if (parentRaw !== null && parentRaw !== undefined) {
    const parent = toHash(parentRaw, limits);
    if (parent === undefined) return 'malformed_event';
    parentBlockHash = parent;
  }
  const blockSize = toUint(at(3), limits.maxTokensPerEvent);
  if (blockSize === undefined || blockSize === 0) return 'malformed_event';
  const tokenIds = toTokenIds(at(2), limits);
  if (tokenIds === undefined || tokenIds.length !== blockHashes.length * blockSize) return 'malformed_event';
  const loraIdRaw = at(4);
  let loraId: number | null = null;
  if (loraIdRaw !== null && loraIdRaw !== undefined) {
    const id = toInt(loraIdRaw);
    if (id === undefined) return 'malformed_event';
    loraId = id;
  }
  const medium = toMedium(at(5));
  if (medium === undefined) return 'malformed_event';
  if (medium === 'other') return 'unknown_event';
  const loraNameRaw = at(6);
  let loraName: string | null = null;
  if (loraNameRaw !== null && loraNameRaw !== undefined) {
    if (typeof loraNameRaw !== 'string') return 'malformed_event';
    loraName = loraNameRaw;
  }
  if (loraName === null && loraId !== null) {
    // Older vLLM (and SGLang) send only the adapter's int id. The name is unknown, yet these are
    // an adapter's blocks, which never hold for the base model: a name no served model has keeps
    // them from matching base-model requests.
    loraName = `lora_id:${loraId}`;
  }
  const extraRaw = at(7);
  if (extraRaw !== null && extraRaw !== undefined && !Array.isArray(extraRaw)) return 'malformed_event';
  const group = groupOf(at(8));
  if (group !== 'applies') return group;
  return {
    type: 'BlockStored',
    blockHashes,
    parentBlockHash,
    tokenIds,
    blockSize,
    loraName,
    medium,
    extraKeysDigest: extraKeysDigest(extraRaw ?? null, loraNameRaw === null || loraNameRaw === undefined ? null : loraName),
  };
}

function decodeRemoved(get: (name: string, index: number) => unknown, limits: WireLimits): BlockRemovedEvent | EventProblem {
  const blockHashes = toHashes(get(REMOVED_FIELDS[0], 0), limits);
  if (blockHashes === undefined || blockHashes.length === 0) return 'malformed_event';
  const medium = toMedium(get(REMOVED_FIELDS[1], 1));
  if (medium === undefined) return 'malformed_event';
  if (medium === 'other') return 'unknown_event';
  const group = groupOf(get(REMOVED_FIELDS[2], 2));
  if (group !== 'applies') return group;
  return { type: 'BlockRemoved', blockHashes, medium };
}

/**
 * `group_idx`: the KV-cache group of a hybrid model (full attention, sliding window, mamba…;
 * vLLM sends one event per group, and a sliding-window group evicts blocks the full-attention
 * group still holds). The gateway models one group, the first: events of other groups are
 * skipped (`unknown_event`), so a window's eviction never removes a prefix block. Absent/null/0
 * (every non-hybrid model) applies.
 */
function groupOf(raw: unknown): 'applies' | EventProblem {
  if (raw === null || raw === undefined) return 'applies';
  const group = toUint(raw, 0xffff);
  if (group === undefined) return 'malformed_event';
  return group === 0 ? 'applies' : 'unknown_event';
}

/** null/absent ⇒ GPU (vLLM before 0.10 had no medium; its constant MEDIUM_GPU is "GPU"). */
function toMedium(raw: unknown): KvMedium | 'other' | undefined {
  if (raw === null || raw === undefined) return 'GPU';
  if (typeof raw !== 'string') return undefined;
  switch (raw.toUpperCase()) {
    case 'GPU':
      return 'GPU';
    case 'CPU':
    case 'CPU_PINNED': // SGLang's host tier
      return 'CPU';
    default:
      return 'other'; // a tier this gateway does not model (SGLang "DISK", "EXTERNAL")
  }
}

function toHash(raw: unknown, limits: WireLimits): EngineBlockHash | undefined {
  if (typeof raw === 'bigint') return BigInt.asUintN(64, raw);
  if (typeof raw === 'number') return Number.isSafeInteger(raw) ? BigInt.asUintN(64, BigInt(raw)) : undefined;
  if (raw instanceof Uint8Array) {
    if (raw.length === 0 || raw.length > Math.min(limits.maxBinBytes, 64)) return undefined;
    if (raw.length >= 8) return new DataView(raw.buffer, raw.byteOffset + raw.length - 8, 8).getBigUint64(0);
    let value = 0n;
    for (let i = 0; i < raw.length; i++) value = (value << 8n) | BigInt(raw[i] ?? 0);
    return value;
  }
  return undefined;
}

function toHashes(raw: unknown, limits: WireLimits): EngineBlockHash[] | undefined {
  if (!Array.isArray(raw) || raw.length > limits.maxBlocksPerEvent) return undefined;
  const out = new Array<EngineBlockHash>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const h = toHash(raw[i], limits);
    if (h === undefined) return undefined;
    out[i] = h;
  }
  return out;
}

/** Token ids are vocabulary indices: integers in [0, 2^32). */
function toTokenIds(raw: unknown, limits: WireLimits): number[] | undefined {
  if (!Array.isArray(raw) || raw.length > limits.maxTokensPerEvent) return undefined;
  for (let i = 0; i < raw.length; i++) {
    const t: unknown = raw[i];
    if (typeof t === 'number') {
      if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) return undefined;
    } else {
      // Another encoder may write small ints as int64/uint64 (decoded as bigint).
      const n = toUint(t, 0xffffffff);
      if (n === undefined) return undefined;
      raw[i] = n;
    }
  }
  return raw as number[];
}

function toInt(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isSafeInteger(raw) ? raw : undefined;
  if (typeof raw === 'bigint') {
    return raw >= BigInt(Number.MIN_SAFE_INTEGER) && raw <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(raw) : undefined;
  }
  return undefined;
}

function toUint(raw: unknown, max: number): number | undefined {
  const n = toInt(raw);
  return n !== undefined && n >= 0 && n <= max ? n : undefined;
}

function toFiniteNumber(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : undefined;
  if (typeof raw === 'bigint') return Number(raw);
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function field(record: Record<string, unknown>, name: string): unknown {
  return Object.prototype.hasOwnProperty.call(record, name) ? record[name] : undefined;
}

// --- encoding ----------------------------------------------------------------------------------

function encodeEvent(event: KvEvent, map: boolean, hash: (h: EngineBlockHash) => unknown): unknown {
  switch (event.type) {
    case 'AllBlocksCleared':
      return map ? { type: 'AllBlocksCleared' } : ['AllBlocksCleared'];
    case 'BlockRemoved': {
      const hashes = event.blockHashes.map(hash);
      return map
        ? { type: 'BlockRemoved', block_hashes: hashes, medium: event.medium }
        : ['BlockRemoved', hashes, event.medium];
    }
    case 'BlockStored': {
      const hashes = event.blockHashes.map(hash);
      const parent = event.parentBlockHash === null ? null : hash(event.parentBlockHash);
      const loraId = event.loraName === null ? null : loraIdFor(event.loraName);
      const extra =
        event.extraKeysDigest === null ? undefined : event.blockHashes.map(() => [event.extraKeysDigest]);
      const fields: unknown[] = [hashes, parent, event.tokenIds, event.blockSize, loraId, event.medium, event.loraName];
      if (extra !== undefined) fields.push(extra);
      if (!map) return ['BlockStored', ...fields];
      const out: Record<string, unknown> = { type: 'BlockStored' };
      fields.forEach((value, i) => {
        out[STORED_FIELDS[i] ?? ''] = value;
      });
      return out;
    }
  }
}

/** An unsigned 64-bit hash as msgpack writes ints: a number while exact, else a uint64. */
function hashInt(h: EngineBlockHash): number | bigint {
  return h <= MAX_SAFE ? Number(h) : h;
}
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** 32 bytes (sha256's width): the hash big-endian in the low 8, a spread of it above. */
function hashBytes(h: EngineBlockHash): Uint8Array {
  const out = new Uint8Array(32);
  const view = new DataView(out.buffer);
  view.setBigUint64(24, BigInt.asUintN(64, h));
  let spread = Number(h & 0xffffffffn) ^ Number(h >> 32n);
  for (let i = 0; i < 24; i += 4) {
    spread = Math.imul(spread ^ (spread >>> 15), 0x2c1b3c6d) >>> 0;
    view.setUint32(i, spread);
  }
  return out;
}

/** vLLM's lora_id is the adapter's positive int id; a stable one from the name stands in for it. */
function loraIdFor(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return ((h >>> 0) % 0x7ffffffe) + 1;
}
