import { fmix32 } from '../core/hash32.js';

/**
 * A stable 32-bit digest of a `BlockStored` event's `extra_keys` (vLLM
 * vllm/distributed/kv_events.py: one entry per block, each a tuple of the block's multimodal
 * identifiers, LoRA name, cache salt and prompt-embeds hash, or null), or null when no block
 * carries any extra key.
 *
 * The LoRA name is left out (entries equal to the event's `lora_name`): the event carries it on
 * its own and the index keys adapters by it, so a plain LoRA block is not "a block with extras".
 * Everything else is folded in a canonical, type-tagged form (FNV-1a over the form, then
 * MurmurHash3's finaliser), so the same keys give the same digest in every process, and any
 * difference (an image hash, a salt) gives another one.
 *
 * `value` is a decoded msgpack value whose nesting the wire scan already bounded.
 */
export function extraKeysDigest(value: unknown, loraName: string | null): number | null {
  if (value === null || value === undefined) return null;
  const state = { h: FNV_OFFSET, any: false };
  if (Array.isArray(value)) {
    for (const entry of value) {
      mixString(state, '|');
      if (entry === null || entry === undefined) continue;
      if (Array.isArray(entry)) {
        for (const item of entry) {
          if (loraName !== null && item === loraName) continue;
          state.any = true;
          mixValue(state, item);
        }
      } else {
        state.any = true;
        mixValue(state, entry);
      }
    }
  } else {
    state.any = true;
    mixValue(state, value);
  }
  return state.any ? fmix32(state.h) : null;
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

interface DigestState {
  h: number;
  any: boolean;
}

function mixString(state: DigestState, text: string): void {
  let h = state.h;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  state.h = h >>> 0;
}

function mixValue(state: DigestState, value: unknown): void {
  if (value === null || value === undefined) return mixString(state, 'n;');
  switch (typeof value) {
    case 'string':
      return mixString(state, `s${value.length}:${value}`);
    case 'number':
      return mixString(state, `d${value};`);
    case 'bigint':
      return mixString(state, `d${value};`);
    case 'boolean':
      return mixString(state, value ? 't;' : 'f;');
    default:
      break;
  }
  if (value instanceof Uint8Array) {
    mixString(state, `x${value.length}:`);
    let h = state.h;
    for (let i = 0; i < value.length; i++) {
      h ^= value[i] ?? 0;
      h = Math.imul(h, FNV_PRIME);
    }
    state.h = h >>> 0;
    return;
  }
  if (Array.isArray(value)) {
    mixString(state, `[${value.length}:`);
    for (const item of value) mixValue(state, item);
    return mixString(state, ']');
  }
  if (typeof value === 'object') {
    const keys = Object.keys(value).sort();
    mixString(state, `{${keys.length}:`);
    for (const key of keys) {
      mixString(state, `s${key.length}:${key}`);
      mixValue(state, (value as Record<string, unknown>)[key]);
    }
    return mixString(state, '}');
  }
  mixString(state, '?;');
}
