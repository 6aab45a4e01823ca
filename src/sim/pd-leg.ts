/**
 * What one request is to a prefill/decode server: which leg of a disaggregated request, if any,
 * read from SGLang's bootstrap fields (pd.ts) or vLLM's `kv_transfer_params` (nixl.ts), and what
 * its engine request needs for that leg. docs/simulator.md "Prefill/decode disaggregation".
 */
import type { EngineRequest } from './engine/index.js';
import { parseKvTransferParams, type RemoteKv } from './nixl.js';
import { parseBootstrap, type BootstrapFields } from './pd.js';

export type PdRole = 'prefill' | 'decode';

/** One leg of a disaggregated request; `undefined` where a request runs whole on this server. */
export type PdLeg =
  /** SGLang prefill: compute, wait for the decode server of the room, send the KV, answer one token. */
  | { readonly kind: 'bootstrap-prefill'; readonly fields: BootstrapFields }
  /** SGLang decode: fetch the KV of the room, then decode. */
  | { readonly kind: 'bootstrap-decode'; readonly fields: BootstrapFields }
  /** vLLM prefill (`do_remote_decode`): compute, answer one token and the KV's whereabouts. */
  | { readonly kind: 'nixl-produce' }
  /** vLLM decode (`do_remote_prefill`): read the KV from the prefill's side channel, then decode. */
  | { readonly kind: 'nixl-consume'; readonly remote: RemoteKv };

/** The leg, or the message of a 400 in the face's shape. */
export type PdLegParse = { readonly ok: true; readonly leg: PdLeg | undefined } | { readonly ok: false; readonly message: string };

/**
 * The leg a request is on a `role` server of `runtime` ('sglang' or 'vllm'). SGLang PD servers
 * serve only legs (a request without the bootstrap fields is refused: what a real one does is not
 * documented, §g); a vLLM instance is a full engine, so a request without `kv_transfer_params` runs
 * whole. A vLLM prefill server is a KV producer and a decode server a consumer (NixlConnector's
 * `kv_role`): the other direction is refused, as is a streamed producer request (its parameters
 * come back in the JSON answer). `maxBlocks` bounds `remote_block_ids`.
 */
export function parsePdLeg(body: Readonly<Record<string, unknown>>, runtime: 'sglang' | 'vllm', role: PdRole, stream: boolean, maxBlocks: number): PdLegParse {
  if (runtime === 'sglang') {
    const b = parseBootstrap(body);
    if (b.kind === 'absent') {
      return {
        ok: false,
        message: `This server runs SGLang prefill/decode disaggregation (${role}); the request must carry bootstrap_host, bootstrap_port and bootstrap_room (a PD router adds them).`,
      };
    }
    if (b.kind === 'invalid') return { ok: false, message: b.message };
    return { ok: true, leg: { kind: role === 'prefill' ? 'bootstrap-prefill' : 'bootstrap-decode', fields: b.fields } };
  }
  const kv = parseKvTransferParams(body, maxBlocks);
  switch (kv.kind) {
    case 'invalid':
      return { ok: false, message: kv.message };
    case 'none':
      return { ok: true, leg: undefined };
    case 'produce':
      if (role === 'decode') return { ok: false, message: 'kv_transfer_params.do_remote_decode asks for a KV producer; this server is a decode instance (kv_role kv_consumer).' };
      if (stream) return { ok: false, message: 'kv_transfer_params.do_remote_decode needs stream: false (the KV parameters come back in the JSON answer).' };
      return { ok: true, leg: { kind: 'nixl-produce' } };
    case 'consume':
      if (role === 'prefill') return { ok: false, message: 'kv_transfer_params.do_remote_prefill asks for a KV consumer; this server is a prefill instance (kv_role kv_producer).' };
      return { ok: true, leg: { kind: 'nixl-consume', remote: kv.remote } };
  }
}

/**
 * The engine flags of a leg: a prefill leg stops after one token and keeps its KV; a decode leg's
 * KV arrives from the prefill server, into blocks allocated first.
 */
export function engineFlags(leg: PdLeg | undefined): Pick<EngineRequest, 'prefillOnly' | 'holdKv' | 'remotePrefill' | 'awaitKv'> {
  switch (leg?.kind) {
    case 'bootstrap-prefill':
    case 'nixl-produce':
      return { prefillOnly: true, holdKv: true };
    case 'bootstrap-decode':
    case 'nixl-consume':
      return { remotePrefill: true, awaitKv: true };
    default:
      return {};
  }
}
