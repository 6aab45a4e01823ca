/**
 * SGLang prefill/decode disaggregation, simulated (SGLang docs/advanced_features/pd_disaggregation.md, python/sglang/srt/disaggregation; llm-d's P/D connector; docs/simulator.md "PD").
 *
 * The router posts the same body, with `bootstrap_host` / `bootstrap_port` / `bootstrap_room`,
 * to a prefill server and a decode server at once. Here:
 *
 * - The **prefill** server runs a bootstrap HTTP listener on its own host at `bootstrapPort`
 *   (SGLang `--disaggregation-bootstrap-port`, default 8998). It computes the prompt (engine
 *   `prefillOnly`, its blocks held), waits for the decode server holding the same room, "transfers"
 *   the KV over its link (kv-link.ts: prompt tokens × KV bytes per token over the link speed, after
 *   the transfers queued before it) and answers its client with one token and
 *   `finish_reason: "length"`.
 * - The **decode** server connects to `bootstrap_host:bootstrap_port` and waits for the transfer,
 *   then runs the request with `remotePrefill` and streams the real answer.
 *
 * The handshake is the simulator's own (SGLang's real one is mooncake/nixl RDMA plumbing):
 *
 *     POST /infergate-sim/v1/rooms/<room>   body {"decode":"<pod>","model":"<m>","prompt_tokens":N}
 *
 * is a long poll the decode server sends to the prefill server's bootstrap listener. Either leg may
 * arrive first. It is answered
 *   200 {"room":R,"prefill":"<pod>","prompt_tokens":N,"transfer_ms":T}  once the KV is "transferred";
 *   409 {"error":…}  room already has a decode leg, or model / prompt length disagree;
 *   500 {"error":…}  the prefill leg failed or was aborted;
 *   504 {"error":…}  no prefill request for the room arrived within the bootstrap timeout.
 * If the decode leg's connection closes before the transfer ends, the prefill leg fails.
 * Timeouts are modelled time on each server's own clock, so prefill and decode may run in
 * different processes with different time scales.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { refuseConnect } from '../core/refuse-connect.js';
import { METHOD_NOT_ALLOWED_BODY } from './runtimes.js';
import type { SimClock, SimTimer } from './engine/index.js';
import { closeServer, listenOn, parseObject, pathOf, postAndWait, readBody, sendJson, type PollOutcome } from './http.js';
import type { KvLink } from './kv-link.js';

/** SGLang's `--disaggregation-bootstrap-port` default. */
export const DEFAULT_BOOTSTRAP_PORT = 8998;
/** `SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT` / `…_WAITING_TIMEOUT` default, 300 s. */
export const DEFAULT_BOOTSTRAP_TIMEOUT_MS = 300_000;
/** Path prefix of the handshake on the bootstrap listener. */
export const BOOTSTRAP_PATH = '/infergate-sim/v1/rooms/';

/** The bootstrap fields of one request (n = 1). */
export interface BootstrapFields {
  readonly host: string;
  /** null = the default bootstrap port (mini_lb sends null when it does not know it). */
  readonly port: number | null;
  /** In [0, 2^53 − 1]: larger JSON integers lose precision in JavaScript. */
  readonly room: number;
}

export type BootstrapParse = { readonly kind: 'absent' } | { readonly kind: 'invalid'; readonly message: string } | { readonly kind: 'ok'; readonly fields: BootstrapFields };

/** One value, or a list of exactly one (SGLang's batch form for n = 1). */
function single(name: string, v: unknown): { value: unknown } | { error: string } {
  if (!Array.isArray(v)) return { value: v };
  if (v.length === 1) return { value: v[0] };
  return { error: `${name} is a list of ${v.length}; the simulator serves one prompt per request (a list of one is accepted).` };
}

/** Reads `bootstrap_host`, `bootstrap_port`, `bootstrap_room` (int or a list of one, §g). */
export function parseBootstrap(body: Readonly<Record<string, unknown>>): BootstrapParse {
  const present = ['bootstrap_host', 'bootstrap_port', 'bootstrap_room'].filter((k) => body[k] !== undefined);
  if (present.length === 0 || (present.length === 1 && present[0] === 'bootstrap_port' && body['bootstrap_port'] === null)) return { kind: 'absent' };
  const host = single('bootstrap_host', body['bootstrap_host']);
  const port = single('bootstrap_port', body['bootstrap_port'] ?? null);
  const room = single('bootstrap_room', body['bootstrap_room']);
  for (const r of [host, port, room]) if ('error' in r) return { kind: 'invalid', message: r.error };
  const h = (host as { value: unknown }).value;
  const p = (port as { value: unknown }).value ?? null;
  const rm = (room as { value: unknown }).value;
  if (typeof h !== 'string' || h === '') return { kind: 'invalid', message: 'bootstrap_host must be a non-empty string (the prefill server host).' };
  if (p !== null && (!Number.isInteger(p) || (p as number) < 1 || (p as number) > 65535)) {
    return { kind: 'invalid', message: 'bootstrap_port must be an integer port or null.' };
  }
  if (typeof rm !== 'number' || !Number.isSafeInteger(rm) || rm < 0) {
    return { kind: 'invalid', message: 'bootstrap_room must be an integer in [0, 2^53-1].' };
  }
  return { kind: 'ok', fields: { host: h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h, port: p as number | null, room: rm } };
}

/** What the decode leg reported about itself. */
interface DecodeLeg {
  readonly res: ServerResponse;
  readonly model: string;
  readonly promptTokens: number;
  /** Cleanup timer while no prefill leg exists. */
  orphanTimer: SimTimer | null;
}

/** Callbacks of a prefill leg. */
export interface PrefillCallbacks {
  /** The KV reached the decode server (`transferMs` modelled). */
  transferred(transferMs: number): void;
  /** The handshake failed: timeout, decode gone, or conflict. */
  failed(message: string): void;
}

interface PrefillLeg {
  readonly model: string;
  readonly promptTokens: number;
  readonly callbacks: PrefillCallbacks;
  computed: boolean;
  timer: SimTimer | null;
}

interface Room {
  readonly id: number;
  prefill: PrefillLeg | null;
  decode: DecodeLeg | null;
  transferring: boolean;
}

/** Handle of a registered prefill leg. */
export interface PrefillHandle {
  /** The prompt is computed: transfer as soon as the decode leg is there. */
  computed(): void;
  /** The client went away: drop the room and fail a waiting decode leg. */
  cancel(): void;
}

/** The prefill server's side: rooms and the bootstrap listener. */
export class BootstrapServer {
  readonly #clock: SimClock;
  readonly #name: string;
  readonly #timeoutMs: number;
  readonly #link: KvLink;
  readonly #rooms = new Map<number, Room>();
  readonly #server: Server;
  #port = 0;

  constructor(options: { clock: SimClock; name: string; timeoutMs: number; link: KvLink }) {
    this.#clock = options.clock;
    this.#name = options.name;
    this.#timeoutMs = options.timeoutMs;
    this.#link = options.link;
    this.#server = createServer((req, res) => {
      void this.#handle(req, res).catch((err: unknown) => sendJson(res, 500, JSON.stringify({ error: String(err) })));
    });
    refuseConnect(this.#server, { allow: 'GET, POST', body: () => METHOD_NOT_ALLOWED_BODY });
  }

  get port(): number {
    return this.#port;
  }

  /** Rooms with a leg waiting (for tests and diagnostics). */
  get openRooms(): number {
    return this.#rooms.size;
  }

  /** A decode leg has registered for `room` (for tests: the handshake has begun). */
  decodeRegistered(room: number): boolean {
    return (this.#rooms.get(room)?.decode ?? null) !== null;
  }

  async listen(host: string, port: number): Promise<number> {
    this.#port = await listenOn(this.#server, host, port);
    return this.#port;
  }

  async close(): Promise<void> {
    for (const room of [...this.#rooms.values()]) this.#fail(room, 'the prefill server is shutting down', 503);
    await closeServer(this.#server);
  }

  /** Registers the prefill leg of `room`; a string is the reason it cannot. */
  openPrefill(roomId: number, model: string, promptTokens: number, callbacks: PrefillCallbacks): PrefillHandle | string {
    const room = this.#room(roomId);
    if (room.prefill !== null) return `bootstrap_room ${roomId} is already in use on this prefill server.`;
    const leg: PrefillLeg = { model, promptTokens, callbacks, computed: false, timer: null };
    const decode = room.decode;
    if (decode !== null) {
      decode.orphanTimer?.cancel();
      decode.orphanTimer = null;
      const mismatch = this.#mismatch(roomId, leg, decode);
      if (mismatch !== undefined) {
        this.#answerDecode(room, 409, { error: mismatch });
        this.#rooms.delete(roomId);
        return mismatch;
      }
    }
    room.prefill = leg;
    if (room.decode === null) {
      leg.timer = this.#clock.setTimeout(() => {
        leg.timer = null;
        this.#fail(room, `KV transfer for bootstrap_room ${roomId} failed: no decode server connected within ${this.#timeoutMs} ms (bootstrap timeout).`, 500);
      }, this.#timeoutMs);
    }
    return {
      computed: () => {
        leg.computed = true;
        this.#maybeTransfer(room);
      },
      cancel: () => {
        if (room.prefill !== leg) return;
        leg.timer?.cancel();
        room.prefill = null;
        if (room.decode !== null) this.#answerDecode(room, 500, { error: `the prefill request for bootstrap_room ${roomId} was aborted` });
        this.#rooms.delete(roomId);
      },
    };
  }

  #room(id: number): Room {
    let room = this.#rooms.get(id);
    if (room === undefined) {
      room = { id, prefill: null, decode: null, transferring: false };
      this.#rooms.set(id, room);
    }
    return room;
  }

  #mismatch(roomId: number, leg: PrefillLeg, decode: DecodeLeg): string | undefined {
    if (leg.model !== decode.model || leg.promptTokens !== decode.promptTokens) {
      return (
        `bootstrap_room ${roomId} disagrees: prefill has model ${leg.model} with ${leg.promptTokens} prompt tokens, ` +
        `decode has model ${decode.model} with ${decode.promptTokens}.`
      );
    }
    return undefined;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = pathOf(req);
    if (req.method === 'GET' && path === '/health') return sendJson(res, 200, '{}');
    if (req.method !== 'POST' || !path.startsWith(BOOTSTRAP_PATH)) return sendJson(res, 404, '{"detail":"Not Found"}');
    const roomText = path.slice(BOOTSTRAP_PATH.length);
    const roomId = Number(roomText);
    if (!/^\d+$/.test(roomText) || !Number.isSafeInteger(roomId)) return sendJson(res, 400, JSON.stringify({ error: `bad room "${roomText}"` }));
    const body = parseObject((await readBody(req, 64 * 1024)) ?? '');
    const model = body?.['model'];
    const promptTokens = body?.['prompt_tokens'];
    if (typeof model !== 'string' || !Number.isInteger(promptTokens)) {
      return sendJson(res, 400, JSON.stringify({ error: 'body must be {"decode":string,"model":string,"prompt_tokens":int}' }));
    }
    const room = this.#room(roomId);
    if (room.decode !== null) return sendJson(res, 409, JSON.stringify({ error: `bootstrap_room ${roomId} already has a decode server` }));
    const decode: DecodeLeg = { res, model, promptTokens: promptTokens as number, orphanTimer: null };
    if (room.prefill !== null) {
      const mismatch = this.#mismatch(roomId, room.prefill, decode);
      if (mismatch !== undefined) {
        sendJson(res, 409, JSON.stringify({ error: mismatch }));
        this.#fail(room, mismatch, 409);
        return;
      }
      room.prefill.timer?.cancel();
      room.prefill.timer = null;
    } else {
      decode.orphanTimer = this.#clock.setTimeout(() => {
        decode.orphanTimer = null;
        if (room.decode === decode) {
          this.#answerDecode(room, 504, { error: `no prefill request for bootstrap_room ${roomId} arrived within ${this.#timeoutMs} ms` });
          if (room.prefill === null) this.#rooms.delete(roomId);
        }
      }, this.#timeoutMs);
    }
    room.decode = decode;
    res.on('close', () => {
      if (room.decode !== decode) return; // already answered
      decode.orphanTimer?.cancel();
      room.decode = null;
      if (room.prefill !== null) this.#fail(room, `KV transfer for bootstrap_room ${roomId} failed: the decode server went away.`, 500);
      else this.#rooms.delete(roomId);
    });
    this.#maybeTransfer(room);
  }

  #maybeTransfer(room: Room): void {
    const leg = room.prefill;
    if (leg === null || !leg.computed || room.decode === null || room.transferring) return;
    room.transferring = true;
    this.#link.send(leg.promptTokens, (transferMs) => {
      if (room.prefill !== leg || room.decode === null) return; // failed meanwhile
      this.#answerDecode(room, 200, { room: room.id, prefill: this.#name, prompt_tokens: leg.promptTokens, transfer_ms: transferMs });
      room.prefill = null;
      this.#rooms.delete(room.id);
      leg.callbacks.transferred(transferMs);
    });
  }

  /** Fails both legs of `room` and forgets it. */
  #fail(room: Room, message: string, decodeStatus: number): void {
    const leg = room.prefill;
    room.prefill = null;
    leg?.timer?.cancel();
    if (room.decode !== null) this.#answerDecode(room, decodeStatus, { error: message });
    this.#rooms.delete(room.id);
    leg?.callbacks.failed(message);
  }

  #answerDecode(room: Room, status: number, body: unknown): void {
    const decode = room.decode;
    if (decode === null) return;
    room.decode = null;
    decode.orphanTimer?.cancel();
    sendJson(decode.res, status, JSON.stringify(body));
  }
}

/** Outcome of the decode side's wait. */
export type TransferOutcome = { readonly ok: true; readonly transferMs: number; readonly prefill: string } | { readonly ok: false; readonly message: string };

/**
 * A decode side's long poll for its KV (SGLang's bootstrap room, vLLM's NIXL read), as an outcome:
 * the peer's 200 with `transfer_ms`, or `failed(reason)` — the peer's `error`, else `why`'s words.
 */
export function transferOutcome(
  o: PollOutcome,
  failed: (why: string) => TransferOutcome,
  why: { readonly timeout: string; unreachable(code: string): string; status(status: number): string },
): TransferOutcome {
  switch (o.kind) {
    case 'timeout':
      return failed(why.timeout);
    case 'unreachable':
      return failed(why.unreachable(o.code));
    case 'cancelled':
      return { ok: false, message: 'cancelled' };
    case 'answer': {
      const transferMs = o.body?.['transfer_ms'];
      if (o.status === 200 && typeof transferMs === 'number') return { ok: true, transferMs, prefill: String(o.body?.['prefill'] ?? '') };
      const error = o.body?.['error'];
      return failed(typeof error === 'string' ? error : why.status(o.status));
    }
  }
}

/**
 * The decode server's side: asks the prefill server's bootstrap listener for the KV of `room` and
 * waits (at most `timeoutMs` of modelled time on `clock`). `cancel()` drops the wait (client gone).
 */
export function awaitTransfer(options: {
  clock: SimClock;
  fields: BootstrapFields;
  decodeName: string;
  model: string;
  promptTokens: number;
  timeoutMs: number;
}): { promise: Promise<TransferOutcome>; cancel: () => void } {
  const { fields } = options;
  const port = fields.port ?? DEFAULT_BOOTSTRAP_PORT;
  const where = `${fields.host}:${port}`;
  const failed = (why: string): TransferOutcome => ({ ok: false, message: why.startsWith('KV transfer') ? why : `KV transfer for bootstrap_room ${fields.room} failed: ${why}` });
  const poll = postAndWait({
    clock: options.clock,
    host: fields.host,
    port,
    path: `${BOOTSTRAP_PATH}${fields.room}`,
    body: { decode: options.decodeName, model: options.model, prompt_tokens: options.promptTokens },
    timeoutMs: options.timeoutMs,
  });
  const promise = poll.promise.then((o) =>
    transferOutcome(o, failed, {
      timeout: `no KV from the prefill server ${where} within ${options.timeoutMs} ms (waiting timeout).`,
      unreachable: (code) => `cannot reach the bootstrap server ${where} (${code}).`,
      status: (status) => `bootstrap server ${where} answered ${status}`,
    }),
  );
  return { promise, cancel: poll.cancel };
}
