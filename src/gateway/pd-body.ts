import { getRandomValues } from 'node:crypto';
import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import { editTopLevel, scanJsonObject } from './json-scan.js';
import { GATEWAY_OWNED_FIELDS } from './owned-fields.js';

/** SGLang's `--disaggregation-bootstrap-port` default (SGLang docs/advanced_features/pd_disaggregation.md, python/sglang/srt/disaggregation; llm-d's P/D connector). */
export const DEFAULT_BOOTSTRAP_PORT = 8998;

/**
 * A fresh bootstrap room: unique per request item, in [0, 2^53 − 1] (JSON integers beyond that
 * lose precision in JavaScript; SGLang accepts any int), from 53 random bits.
 */
export function bootstrapRoom(): number {
  const w = getRandomValues(new Uint32Array(2));
  return ((w[0] as number) & 0x1fffff) * 2 ** 32 + (w[1] as number);
}

/**
 * How many sequences SGLang will create for the request: a bootstrap field must be an array of
 * that length with a fresh room per item (SGLang docs/advanced_features/pd_disaggregation.md, python/sglang/srt/disaggregation; llm-d's P/D connector): `n` parallel samples (`sampling_params.n`
 * on `/generate`), times the number of prompts (a list of token ids is one prompt).
 */
export function sequenceCount(json: Readonly<Record<string, unknown>>): number {
  const sampling = json['sampling_params'];
  const nField = typeof sampling === 'object' && sampling !== null && !Array.isArray(sampling) ? (sampling as Record<string, unknown>)['n'] : json['n'];
  const n = typeof nField === 'number' && Number.isInteger(nField) && nField > 1 ? nField : 1;
  return n * promptCount(json);
}

/**
 * Prompts in one request: a completions `prompt` list of strings or of token-id lists, or
 * SGLang's `/generate` batch (`text` as a list, `input_ids` as a list of lists); otherwise one.
 */
function promptCount(json: Readonly<Record<string, unknown>>): number {
  const prompt = json['prompt'];
  if (Array.isArray(prompt) && prompt.length > 0 && prompt.every((p) => typeof p === 'string' || Array.isArray(p))) return prompt.length;
  const text = json['text'];
  if (Array.isArray(text) && text.length > 0) return text.length;
  const ids = json['input_ids'];
  if (Array.isArray(ids) && ids.length > 0 && ids.every((p) => Array.isArray(p))) return ids.length;
  return 1;
}

/** `[ipv6]` or the address as is: what SGLang expects in `bootstrap_host`. */
function hostOf(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]` : e.address;
}

/** Most sequences one request may fan into (bounded input: `n` and prompt lists come from clients). */
const MAX_SEQUENCES = 1024;

/**
 * The body both SGLang legs get, serialised once: the client's body with `bootstrap_host` (the
 * prefill endpoint), `bootstrap_port` (the traffic policy's `kvTransfer.bootstrapPort`, else the
 * pod's `sglang.ai/bootstrap-port` annotation, else 8998) and `bootstrap_room`; arrays of length
 * n for several sequences. The fields go right after the opening brace, the rest byte for byte;
 * any the body already has are replaced (json-scan.ts finds them by decoded name).
 */
export function sglangPdBody(raw: Buffer, json: Readonly<Record<string, unknown>>, prefill: Endpoint, configuredPort: number | undefined): { body: Buffer; rooms: number[] } {
  const count = sequenceCount(json);
  if (count > MAX_SEQUENCES) throw new GatewayError('invalid_body', `the request fans into ${count} sequences; a disaggregated pool accepts at most ${MAX_SEQUENCES}`);
  const host = hostOf(prefill);
  const port = configuredPort ?? prefill.bootstrapPort ?? DEFAULT_BOOTSTRAP_PORT;
  const rooms = Array.from({ length: count }, () => bootstrapRoom());
  const many = count > 1;
  const set = new Map<string, string>([
    ['bootstrap_host', JSON.stringify(many ? rooms.map(() => host) : host)],
    ['bootstrap_port', JSON.stringify(many ? rooms.map(() => port) : port)],
    ['bootstrap_room', JSON.stringify(many ? rooms : rooms[0])],
  ]);
  return { body: editTopLevel(raw, scanJsonObject(raw), set, GATEWAY_OWNED_FIELDS), rooms };
}

/** The `kv_transfer_params` of a prefill leg: llm-d's NIXL connector asks for a remote decode. */
const PREFILL_KV_PARAMS = JSON.stringify({ do_remote_decode: true, do_remote_prefill: false, remote_engine_id: null, remote_block_ids: null, remote_host: null, remote_port: null });

/**
 * The prefill leg of vLLM's NIXL-style P/D (llm-d/llm-d-router: pkg/sidecar/proxy, its NIXL connector): the client's body
 * with `kv_transfer_params` asking for a remote decode, one token, not streamed, no
 * `stream_options`; every other member byte for byte.
 */
export function vllmPrefillBody(forwarded: Buffer): Buffer {
  const scanned = scanJsonObject(forwarded);
  const set = new Map<string, string>([
    ['stream', 'false'],
    ['max_tokens', '1'],
    ['kv_transfer_params', PREFILL_KV_PARAMS],
  ]);
  if (scanned.members.some((m) => m.name === 'max_completion_tokens')) set.set('max_completion_tokens', '1');
  return editTopLevel(forwarded, scanned, set, PREFILL_REMOVES);
}

const PREFILL_REMOVES: ReadonlySet<string> = new Set([...GATEWAY_OWNED_FIELDS, 'stream_options'].filter((k) => k !== 'kv_transfer_params'));

/**
 * The decode leg of vLLM P/D: the client's body (as forwarded) plus the `kv_transfer_params` the
 * prefill returned. Undefined when the prefill's answer carries none, or none the gateway can
 * forward (then the decode pod runs the whole request, as llm-d does on a prefill that cannot
 * hand over).
 */
export function vllmDecodeBody(forwarded: Buffer, prefillAnswer: Buffer): Buffer | undefined {
  let params: string | undefined;
  try {
    const value = (JSON.parse(prefillAnswer.toString('utf8')) as { kv_transfer_params?: unknown }).kv_transfer_params;
    // The server's answer is input too: an absurdly nested value fails to serialise, and is no hand-over.
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) params = JSON.stringify(value);
  } catch {
    return undefined;
  }
  if (params === undefined) return undefined;
  const scanned = scanJsonObject(forwarded);
  return editTopLevel(forwarded, scanned, new Map([['kv_transfer_params', params]]), GATEWAY_OWNED_FIELDS);
}
