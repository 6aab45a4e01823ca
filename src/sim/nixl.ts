/**
 * vLLM prefill/decode disaggregation through NixlConnector, as llm-d drives it, simulated
 * (llm-d's P/D connector; vllm-project/vllm: distributed/kv_transfer/kv_connector/
 * v1/nixl_connector.py; docs/simulator.md "vLLM P/D").
 *
 * - The **prefill** server (kv producer) gets the client's body with `kv_transfer_params:
 *   {do_remote_decode: true, …}`, `max_tokens: 1`, `stream: false`. It computes the prompt (engine
 *   `prefillOnly`), keeps the prompt's KV blocks (engine `holdKv`) and answers one token with
 *   `finish_reason: "length"` and a top-level `kv_transfer_params`: `{do_remote_prefill: true,
 *   do_remote_decode: false, remote_engine_id, remote_block_ids, remote_host, remote_port,
 *   tp_size}` (NixlConnector's `request_finished`). The blocks wait there until a decode server
 *   reads them or `kvAbortTimeoutMs` passes (vLLM's `VLLM_NIXL_ABORT_REQUEST_TIMEOUT`, 480 s).
 * - The **decode** server (kv consumer) gets the client's body plus those parameters. It reads the
 *   KV from `remote_host:remote_port`, the prefill server's side channel, then runs the request
 *   with `remotePrefill` (no prompt compute of its own).
 *
 * Real NIXL does a ZMQ metadata handshake on the side channel, then RDMA-reads the blocks and
 * notifies the prefill worker, which frees them. The simulator's side channel is HTTP, one long
 * poll per transfer, so the two servers may run in different processes:
 *
 *     POST /infergate-sim/v1/nixl/read
 *     {"engine_id":"<remote_engine_id>","block_ids":[…],"decode":"<pod>","model":"<m>","prompt_tokens":N}
 *
 * answered
 *   200 {"engine_id","prefill":"<pod>","prompt_tokens":N,"transfer_ms":T}  once the KV is across
 *       (the prefill server's link, kv-link.ts), and the blocks are freed;
 *   404 {"error"}  no such blocks: never offered, read already, or freed by the abort timeout;
 *   409 {"error"}  another engine id, or the model / prompt length disagree (the blocks stay);
 *   400 {"error"}  a malformed body.
 * If the reader's connection closes before the transfer ends, the blocks are freed (an aborted
 * decode request tells the prefill worker to free them in vLLM too). `GET /health` answers 200.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { refuseConnect } from '../core/refuse-connect.js';
import { METHOD_NOT_ALLOWED_BODY } from './runtimes.js';
import type { SimClock, SimTimer } from './engine/index.js';
import { closeServer, listenOn, parseObject, pathOf, postAndWait, readBody, sendJson } from './http.js';
import type { KvLink, KvSend } from './kv-link.js';
import { transferOutcome, type TransferOutcome } from './pd.js';

/** `VLLM_NIXL_SIDE_CHANNEL_PORT`'s default. */
export const DEFAULT_SIDE_CHANNEL_PORT = 5600;
/** `VLLM_NIXL_ABORT_REQUEST_TIMEOUT`'s default, 480 s: how long a prefill keeps KV nobody reads. */
export const DEFAULT_KV_ABORT_TIMEOUT_MS = 480_000;
/** The side channel's read route. */
export const NIXL_READ_PATH = '/infergate-sim/v1/nixl/read';

/** Longest `remote_engine_id` / `remote_host` accepted (vLLM's ids are UUIDs; DNS names ≤ 253). */
const MAX_ID_CHARS = 256;
/** Largest `tp_size` accepted. */
const MAX_TP_SIZE = 1024;
/** Largest side-channel request body: block ids of the longest prompt, with room to spare. */
const MAX_READ_BODY_BYTES = 1024 * 1024;

/** Where a decode server reads a prompt's KV from (the prefill's `kv_transfer_params`). */
export interface RemoteKv {
  readonly engineId: string;
  readonly blockIds: readonly number[];
  /** The side channel's host (brackets of an IPv6 literal removed). */
  readonly host: string;
  readonly port: number;
  readonly tpSize: number | null;
}

/** What a request's `kv_transfer_params` asks for. */
export type KvTransferRequest =
  /** Absent, null, or neither flag set: an ordinary request. */
  | { readonly kind: 'none' }
  /** `do_remote_decode`: compute the prompt, hand its KV over. */
  | { readonly kind: 'produce' }
  /** `do_remote_prefill`: read the prompt's KV, then decode. */
  | { readonly kind: 'consume'; readonly remote: RemoteKv }
  | { readonly kind: 'invalid'; readonly message: string };

const flag = (params: Readonly<Record<string, unknown>>, name: string): boolean | string => {
  const v = params[name] ?? false;
  return typeof v === 'boolean' ? v : `kv_transfer_params.${name} must be a boolean.`;
};

/**
 * Reads `kv_transfer_params` (the fields NixlConnector reads, bounded: at most `maxBlocks` block
 * ids). vLLM itself logs a warning and serves without a transfer when the remote fields are
 * incomplete; the simulator refuses such a request with 400, so a router's mistake shows.
 */
export function parseKvTransferParams(body: Readonly<Record<string, unknown>>, maxBlocks: number): KvTransferRequest {
  const raw = body['kv_transfer_params'];
  if (raw === undefined || raw === null) return { kind: 'none' };
  if (typeof raw !== 'object' || Array.isArray(raw)) return { kind: 'invalid', message: 'kv_transfer_params must be an object.' };
  const params = raw as Readonly<Record<string, unknown>>;
  const decode = flag(params, 'do_remote_decode');
  const prefill = flag(params, 'do_remote_prefill');
  if (typeof decode === 'string') return { kind: 'invalid', message: decode };
  if (typeof prefill === 'string') return { kind: 'invalid', message: prefill };
  if (decode && prefill) return { kind: 'invalid', message: 'kv_transfer_params: do_remote_decode and do_remote_prefill cannot both be true.' };
  if (decode) return { kind: 'produce' };
  if (!prefill) return { kind: 'none' };
  const engineId = params['remote_engine_id'];
  const blockIds = params['remote_block_ids'];
  const host = params['remote_host'];
  const port = params['remote_port'];
  const tpSize = params['tp_size'] ?? null;
  if (typeof engineId !== 'string' || engineId === '' || engineId.length > MAX_ID_CHARS) {
    return { kind: 'invalid', message: `kv_transfer_params.remote_engine_id must be a non-empty string of at most ${MAX_ID_CHARS} characters.` };
  }
  if (!Array.isArray(blockIds) || blockIds.length === 0 || blockIds.length > maxBlocks || !blockIds.every((b) => Number.isSafeInteger(b) && (b as number) >= 0)) {
    return { kind: 'invalid', message: `kv_transfer_params.remote_block_ids must be a list of 1 to ${maxBlocks} block ids (integers >= 0).` };
  }
  if (typeof host !== 'string' || host === '' || host.length > MAX_ID_CHARS) return { kind: 'invalid', message: 'kv_transfer_params.remote_host must be a non-empty host name or address.' };
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) return { kind: 'invalid', message: 'kv_transfer_params.remote_port must be an integer port.' };
  if (tpSize !== null && (!Number.isInteger(tpSize) || (tpSize as number) < 1 || (tpSize as number) > MAX_TP_SIZE)) {
    return { kind: 'invalid', message: `kv_transfer_params.tp_size must be an integer from 1 to ${MAX_TP_SIZE}.` };
  }
  return {
    kind: 'consume',
    remote: {
      engineId,
      blockIds: blockIds as number[],
      host: host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host,
      port: port as number,
      tpSize: tpSize as number | null,
    },
  };
}

/** A finished prefill's KV, offered to one decode reader. */
export interface KvOffer {
  readonly blockIds: readonly number[];
  readonly model: string;
  readonly promptTokens: number;
  /** Frees the blocks on the prefill engine (called once: read, expired, or shut down). */
  release(): void;
}

/** The `kv_transfer_params` a prefill answer carries (NixlConnector `request_finished`). */
export interface ProducedKvParams {
  readonly do_remote_prefill: true;
  readonly do_remote_decode: false;
  readonly remote_engine_id: string;
  readonly remote_block_ids: readonly number[];
  readonly remote_host: string;
  readonly remote_port: number;
  readonly tp_size: number;
}

interface Lease {
  readonly offer: KvOffer;
  readonly key: string;
  timer: SimTimer;
}

/** The prefill server's side channel: its offered KV and the read route (see the file comment). */
export class NixlSideChannel {
  /** vLLM's `engine_id` (a UUID per instance, KVTransferConfig). */
  readonly engineId = randomUUID();
  readonly #clock: SimClock;
  readonly #name: string;
  readonly #host: string;
  readonly #tpSize: number;
  readonly #link: KvLink;
  readonly #abortTimeoutMs: number;
  readonly #leases = new Map<string, Lease>();
  readonly #server: Server;
  #port = 0;

  constructor(options: { clock: SimClock; name: string; host: string; tpSize: number; link: KvLink; abortTimeoutMs: number }) {
    this.#clock = options.clock;
    this.#name = options.name;
    this.#host = options.host;
    this.#tpSize = options.tpSize;
    this.#link = options.link;
    this.#abortTimeoutMs = options.abortTimeoutMs;
    this.#server = createServer((req, res) => {
      void this.#handle(req, res).catch((err: unknown) => sendJson(res, 500, JSON.stringify({ error: String(err) })));
    });
    refuseConnect(this.#server, { allow: 'GET, POST', body: () => METHOD_NOT_ALLOWED_BODY });
  }

  get port(): number {
    return this.#port;
  }

  /** KV offers not read yet (tests, diagnostics). */
  get openOffers(): number {
    return this.#leases.size;
  }

  async listen(port: number): Promise<number> {
    this.#port = await listenOn(this.#server, this.#host, port);
    return this.#port;
  }

  async close(): Promise<void> {
    for (const lease of [...this.#leases.values()]) this.#drop(lease);
    await closeServer(this.#server);
  }

  /** Offers a finished prefill's KV for one read; returns the parameters its answer carries. */
  offer(offer: KvOffer): ProducedKvParams {
    const key = offer.blockIds.join(',');
    const lease: Lease = { offer, key, timer: this.#clock.setTimeout(() => this.#drop(lease), this.#abortTimeoutMs) };
    // Block ids are unique while held, so no live lease can have the same key.
    this.#leases.set(key, lease);
    return {
      do_remote_prefill: true,
      do_remote_decode: false,
      remote_engine_id: this.engineId,
      remote_block_ids: offer.blockIds,
      remote_host: this.#host,
      remote_port: this.#port,
      tp_size: this.#tpSize,
    };
  }

  #drop(lease: Lease): void {
    if (this.#leases.get(lease.key) !== lease) return;
    this.#leases.delete(lease.key);
    lease.timer.cancel();
    lease.offer.release();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = pathOf(req);
    if (req.method === 'GET' && path === '/health') return sendJson(res, 200, '{}');
    if (req.method !== 'POST' || path !== NIXL_READ_PATH) return sendJson(res, 404, '{"detail":"Not Found"}');
    const body = parseObject((await readBody(req, MAX_READ_BODY_BYTES)) ?? '');
    const engineId = body?.['engine_id'];
    const blockIds = body?.['block_ids'];
    const model = body?.['model'];
    const promptTokens = body?.['prompt_tokens'];
    if (typeof engineId !== 'string' || !Array.isArray(blockIds) || !blockIds.every(Number.isSafeInteger) || typeof model !== 'string' || !Number.isInteger(promptTokens)) {
      return sendJson(res, 400, JSON.stringify({ error: 'body must be {"engine_id":string,"block_ids":[int],"decode":string,"model":string,"prompt_tokens":int} (at most 1 MiB)' }));
    }
    if (engineId !== this.engineId) return sendJson(res, 409, JSON.stringify({ error: `this side channel serves engine ${this.engineId}, not ${engineId}` }));
    const lease = this.#leases.get(blockIds.join(','));
    if (lease === undefined) {
      return sendJson(res, 404, JSON.stringify({ error: `blocks [${blockIds.slice(0, 8).join(', ')}${blockIds.length > 8 ? ', …' : ''}] are not held on ${this.#name}: never offered, read already, or freed after ${this.#abortTimeoutMs} ms (VLLM_NIXL_ABORT_REQUEST_TIMEOUT)` }));
    }
    const { offer } = lease;
    if (offer.model !== model || offer.promptTokens !== promptTokens) {
      return sendJson(res, 409, JSON.stringify({ error: `the blocks hold ${offer.promptTokens} prompt tokens of model ${offer.model}; the reader has ${String(promptTokens)} of ${model}` }));
    }
    // One read per offer: the lease leaves the table now, and its blocks are freed when the
    // transfer ends or the reader goes away.
    this.#leases.delete(lease.key);
    lease.timer.cancel();
    let send: KvSend | null = null;
    res.on('close', () => {
      if (send === null) return;
      send.cancel();
      send = null;
      offer.release();
    });
    send = this.#link.send(offer.promptTokens, (transferMs) => {
      send = null;
      offer.release();
      sendJson(res, 200, JSON.stringify({ engine_id: this.engineId, prefill: this.#name, prompt_tokens: offer.promptTokens, transfer_ms: transferMs }));
    });
  }
}

/**
 * The decode server's side: reads the KV `remote` names from its prefill server's side channel,
 * waiting at most `timeoutMs` of modelled time. `cancel()` drops the read (client gone).
 */
export function readRemoteKv(options: { clock: SimClock; remote: RemoteKv; decodeName: string; model: string; promptTokens: number; timeoutMs: number }): { promise: Promise<TransferOutcome>; cancel: () => void } {
  const { remote } = options;
  const where = `${remote.host.includes(':') ? `[${remote.host}]` : remote.host}:${remote.port}`;
  const failed = (why: string): TransferOutcome => ({ ok: false, message: `KV transfer from ${where} (engine ${remote.engineId}) failed: ${why}` });
  const poll = postAndWait({
    clock: options.clock,
    host: remote.host,
    port: remote.port,
    path: NIXL_READ_PATH,
    body: { engine_id: remote.engineId, block_ids: remote.blockIds, decode: options.decodeName, model: options.model, prompt_tokens: options.promptTokens },
    timeoutMs: options.timeoutMs,
  });
  const promise = poll.promise.then((o) =>
    transferOutcome(o, failed, {
      timeout: `no KV within ${options.timeoutMs} ms.`,
      unreachable: (code) => `cannot reach the side channel (${code}).`,
      status: (status) => `the side channel answered ${status}.`,
    }),
  );
  return { promise, cancel: poll.cancel };
}
