/**
 * Request fields that steer a model server's own network traffic or its KV hand-over: a server
 * that reads them connects where they say (vLLM's NIXL connector to `kv_transfer_params.remote_host`
 * and `remote_port`, an SGLang decode server to `bootstrap_host:bootstrap_port`). Only the gateway
 * may set them, for the pair it chose; a client's would be server-side request forgery, or a way
 * to make a healthy server fail. The gateway removes a client's from every body it forwards to a
 * pool (disaggregated or not, both P/D legs and the decode-alone fallback alike: a plain pool of
 * vLLM servers with a KV connector honours them too) and adds its own where P/D needs them.
 *
 * Removed rather than refused: like the gateway's own `X-Gateway-*` headers, which it replaces
 * whatever a client sent, these are the gateway's to write; a client written for a direct server
 * connection keeps working, and gets the gateway's pairing instead of its own.
 *
 * Sources: vLLM `kv_transfer_params` (protocol.py, completions and chat); SGLang
 * `GenerateReqInput` / OpenAI protocol `bootstrap_host`, `bootstrap_port`, `bootstrap_room`,
 * `bootstrap_pair_key`, `decode_tp_size`, and `disagg_prefill_dp_rank` (set by SGLang's model
 * gateway on the P/D hand-over); TensorRT-LLM's `disaggregated_params` (trtllm-serve).
 */
export const GATEWAY_OWNED_FIELDS: ReadonlySet<string> = new Set([
  'kv_transfer_params',
  'bootstrap_host',
  'bootstrap_port',
  'bootstrap_room',
  'bootstrap_pair_key',
  'decode_tp_size',
  'disagg_prefill_dp_rank',
  'disaggregated_params',
]);
