import { getRandomValues } from 'node:crypto';
import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';

/** SGLang's `--disaggregation-bootstrap-port` default (PROTOCOLS.md §g). */
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
 * that length with a fresh room per item (PROTOCOLS.md §g): `n` parallel samples (`sampling_params.n`
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
 * n for several sequences. The fields go right after the opening brace, the rest byte for byte.
 */
export function sglangPdBody(raw: Buffer, json: Readonly<Record<string, unknown>>, prefill: Endpoint, configuredPort: number | undefined): { body: Buffer; rooms: number[] } {
  const count = sequenceCount(json);
  if (count > MAX_SEQUENCES) throw new GatewayError('invalid_body', `the request fans into ${count} sequences; a disaggregated pool accepts at most ${MAX_SEQUENCES}`);
  const host = hostOf(prefill);
  const port = configuredPort ?? prefill.bootstrapPort ?? DEFAULT_BOOTSTRAP_PORT;
  const rooms = Array.from({ length: count }, () => bootstrapRoom());
  const many = count > 1;
  const fields = many
    ? `"bootstrap_host":${JSON.stringify(rooms.map(() => host))},"bootstrap_port":${JSON.stringify(rooms.map(() => port))},"bootstrap_room":${JSON.stringify(rooms)}`
    : `"bootstrap_host":${JSON.stringify(host)},"bootstrap_port":${port},"bootstrap_room":${rooms[0]}`;
  // The client's own bootstrap fields (if any) would be duplicated keys: re-serialise then.
  if (['bootstrap_host', 'bootstrap_port', 'bootstrap_room'].some((k) => k in json)) {
    const parsed = JSON.parse(`{${fields}}`) as Record<string, unknown>;
    return { body: Buffer.from(JSON.stringify({ ...json, ...parsed }), 'utf8'), rooms };
  }
  const brace = raw.indexOf(0x7b /* { */);
  const empty = /^\s*\}/.test(raw.subarray(brace + 1, brace + 64).toString('latin1'));
  return { body: Buffer.concat([raw.subarray(0, brace + 1), Buffer.from(`${fields}${empty ? '' : ','}`, 'utf8'), raw.subarray(brace + 1)]), rooms };
}

/**
 * The prefill leg of vLLM's NIXL-style P/D (llm-d's connector, PROTOCOLS.md §g): the client's body
 * with `kv_transfer_params` asking for a remote decode, one token, not streamed.
 */
export function vllmPrefillBody(forwarded: Buffer): Buffer {
  const json = JSON.parse(forwarded.toString('utf8')) as Record<string, unknown>;
  const { stream_options: _so, ...rest } = json;
  const body: Record<string, unknown> = {
    ...rest,
    stream: false,
    max_tokens: 1,
    kv_transfer_params: { do_remote_decode: true, do_remote_prefill: false, remote_engine_id: null, remote_block_ids: null, remote_host: null, remote_port: null },
  };
  if ('max_completion_tokens' in json) body['max_completion_tokens'] = 1;
  return Buffer.from(JSON.stringify(body), 'utf8');
}

/**
 * The decode leg of vLLM P/D: the client's body (as forwarded) plus the `kv_transfer_params` the
 * prefill returned. Undefined when the prefill's answer carries none (then the decode pod runs
 * the whole request, as llm-d does on a prefill that cannot hand over).
 */
export function vllmDecodeBody(forwarded: Buffer, prefillAnswer: Buffer): Buffer | undefined {
  let params: unknown;
  try {
    params = (JSON.parse(prefillAnswer.toString('utf8')) as { kv_transfer_params?: unknown }).kv_transfer_params;
  } catch {
    return undefined;
  }
  if (params === null || typeof params !== 'object') return undefined;
  const forwardedJson = JSON.parse(forwarded.toString('utf8')) as Record<string, unknown>;
  return Buffer.from(JSON.stringify({ ...forwardedJson, kv_transfer_params: params }), 'utf8');
}
