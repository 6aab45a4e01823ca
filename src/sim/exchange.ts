/**
 * One accepted generation request on a simulated server, from validation to the last byte (or
 * the client leaving): the engine submission, the PD legs, the test hooks that cut an answer, and
 * the HTTP-level counting behind `RunningSimServer.stats()`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { estimateTokens, type Engine, type EngineRequest, type RequestHandle, type RequestResult, type SimClock } from './engine/index.js';
import { truncateEnd } from './faults.js';
import type { RequestObserver } from './metrics/index.js';
import type { AnswerSink } from './openai.js';
import { readRemoteKv, type NixlSideChannel } from './nixl.js';
import { awaitTransfer, type BootstrapFields, type BootstrapServer, type TransferOutcome } from './pd.js';
import type { PdLeg, PdRole } from './pd-leg.js';
import type { ErrorAnswer, Face } from './runtimes.js';

/** HTTP-level counts of generation requests. */
export interface SimStats {
  /** Bodies read in full by a generation route (chat, completions, responses, embeddings), valid or not. */
  received: number;
  /** Answered to the end. */
  served: number;
  /** Accepted (valid, or held by a fault) and not finished yet. */
  inFlight: number;
  /** The client went away before the answer was complete. */
  aborted: number;
}

/** What an exchange needs from its server. */
export interface ExchangeHost {
  readonly name: string;
  readonly face: Face;
  readonly clock: SimClock;
  readonly engine: Engine;
  readonly metrics: RequestObserver;
  readonly counters: SimStats;
  readonly pdRole: PdRole | undefined;
  /** SGLang prefill: the bootstrap listener. */
  readonly bootstrap: BootstrapServer | undefined;
  readonly bootstrapTimeoutMs: number;
  /** vLLM prefill: the NIXL side channel. */
  readonly nixl: NixlSideChannel | undefined;
  /** vLLM: how long a prefill keeps unread KV, and how long a decode waits for a read (modelled ms). */
  readonly kvAbortTimeoutMs: number;
  sendError(res: ServerResponse, e: ErrorAnswer): void;
}

/**
 * The life of one accepted request at the HTTP level: in flight from construction, then exactly
 * one of served, aborted (the client left first) or neither (refused late, or cut by the server).
 */
export class RequestLife {
  readonly #counters: SimStats;
  readonly #res: ServerResponse;
  #done = false;
  /** The server destroys the connection itself (test hook, shutdown): not a client abort. */
  #selfReset = false;

  /** `onClientGone` runs when the client leaves before the end (to cancel engine work). */
  constructor(counters: SimStats, res: ServerResponse, onClientGone: () => void = () => {}) {
    this.#counters = counters;
    this.#res = res;
    counters.inFlight++;
    res.on('close', () => {
      if (this.#done) return;
      // Counted first: cancelling engine work below reports back through callbacks that check `done`.
      this.end(this.#selfReset ? 'none' : 'aborted');
      onClientGone();
    });
  }

  get done(): boolean {
    return this.#done;
  }

  end(kind: 'served' | 'aborted' | 'none'): void {
    if (this.#done) return;
    this.#done = true;
    this.#counters.inFlight--;
    if (kind === 'served') this.#counters.served++;
    else if (kind === 'aborted') this.#counters.aborted++;
  }

  /** Marks the coming close as the server's own doing (not counted as a client abort). */
  markSelfReset(): void {
    this.#selfReset = true;
  }

  /** Destroys the connection without an answer (counted in neither served nor aborted). */
  destroy(): void {
    this.#selfReset = true;
    this.#res.destroy();
    this.end('none');
  }
}

/** Where a test hook or fault cuts the answer: after `at` tokens, by a reset or a stall. */
export interface AnswerCut {
  readonly at: number;
  readonly mode: 'reset' | 'stall';
}

/** Modelled timings of a finished request as response headers (non-streaming answers only). */
export function timingHeaders(r: RequestResult, transferMs?: number): Record<string, string> {
  const ms = (x: number | null): string => (x === null ? '' : String(Math.round(x * 1000) / 1000)); // to the µs
  const h: Record<string, string> = {
    'x-sim-ttft-ms': ms(r.ttftMs),
    'x-sim-queue-ms': ms(r.queueMs),
    'x-sim-e2e-ms': ms(r.e2eMs),
    'x-sim-cached-tokens': String(r.cachedTokens),
    'x-sim-preemptions': String(r.preemptions),
  };
  if (transferMs !== undefined) h['x-sim-kv-transfer-ms'] = ms(transferMs);
  return h;
}

/** One accepted generation request (chat, completions or responses). */
export class Exchange {
  readonly #srv: ExchangeHost;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #engineReq: EngineRequest;
  readonly #leg: PdLeg | undefined;
  readonly #cut: AnswerCut | undefined;
  readonly #writer: AnswerSink;
  readonly #life: RequestLife;
  /** A stall fault fired: nothing more is written and the request stays open until the client leaves. */
  #stalled = false;
  #cancelWait: (() => void) | null = null;
  #handle: RequestHandle | null = null;

  constructor(srv: ExchangeHost, req: IncomingMessage, res: ServerResponse, writer: AnswerSink, engineReq: EngineRequest, leg: PdLeg | undefined, cut: AnswerCut | undefined) {
    this.#srv = srv;
    this.#req = req;
    this.#res = res;
    this.#engineReq = engineReq;
    this.#leg = leg;
    this.#cut = cut;
    this.#writer = writer;
    this.#life = new RequestLife(srv.counters, res, () => {
      this.#cancelWait?.();
      this.#cancelWait = null;
      this.#handle?.abort();
      this.#handle?.releaseKv(); // a prefill leg's KV nobody will pull now
    });
  }

  async run(): Promise<void> {
    const delay = Number(this.#req.headers['x-sim-first-token-delay-ms'] ?? 0);
    if (Number.isFinite(delay) && delay > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.#cancelWait = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#cancelWait = null;
      if (this.#life.done) return;
    }
    const srv = this.#srv;
    const leg = this.#leg;
    if (leg?.kind === 'bootstrap-decode' || leg?.kind === 'nixl-consume') {
      // A decode leg: the engine allocates the prompt's blocks, the KV comes from the prefill
      // server into them, then the engine decodes.
      const common = { clock: srv.clock, decodeName: srv.name, model: this.#engineReq.model, promptTokens: this.#promptLength() };
      return this.#submit({
        fetchKv: () =>
          leg.kind === 'bootstrap-decode'
            ? awaitTransfer({ ...common, fields: leg.fields, timeoutMs: srv.bootstrapTimeoutMs })
            : readRemoteKv({ ...common, remote: leg.remote, timeoutMs: srv.kvAbortTimeoutMs }),
      });
    }
    if (leg?.kind === 'bootstrap-prefill') return this.#submitPrefill(leg.fields);
    if (leg?.kind === 'nixl-produce') return this.#submit({ extraFields: (result) => this.#offerKv(result) });
    this.#submit({});
  }

  /**
   * A decode leg's blocks are allocated: fetch its KV (SGLang's bootstrap room, vLLM's NIXL
   * read). Once it is there the engine may run the request; if it cannot come, the client gets
   * the face's 500 and the engine request (and its blocks) goes.
   */
  #fetchKv(fetch: () => { promise: Promise<TransferOutcome>; cancel: () => void }, arrived: (transferMs: number) => void): void {
    const wait = fetch();
    this.#cancelWait = wait.cancel;
    void wait.promise.then((outcome) => {
      this.#cancelWait = null;
      if (this.#life.done) return;
      if (!outcome.ok) {
        this.#fail(outcome.message); // first: the abort below must not reset the connection
        this.#handle?.abort();
        return;
      }
      arrived(outcome.transferMs);
      this.#handle?.kvArrived();
    });
  }

  /**
   * vLLM prefill (kv producer): the finished request's held blocks go on offer at the side
   * channel, and the answer carries where to read them (`kv_transfer_params`).
   */
  #offerKv(result: RequestResult): string | undefined {
    const handle = this.#handle;
    const blocks = handle?.heldKvBlocks ?? null;
    if (handle === null || blocks === null) return undefined;
    const params = (this.#srv.nixl as NixlSideChannel).offer({ blockIds: blocks, model: result.model, promptTokens: result.promptTokens, release: () => handle.releaseKv() });
    return `"kv_transfer_params":${JSON.stringify(params)}`;
  }

  #fail(message: string): void {
    this.#srv.sendError(this.#res, this.#srv.face.error(500, message, 'InternalServerError'));
    this.#life.end('none');
  }

  /** Ends a finished answer, unless a stall fault holds it. */
  #complete(result: RequestResult, headers: Record<string, string>, extraFields?: string): void {
    if (this.#cut?.mode === 'stall' && !this.#writer.stream) {
      // A JSON answer stalls after half of its bytes; the request stays until the client leaves.
      truncateEnd(this.#res);
      this.#writer.finish(result, headers, extraFields);
      return;
    }
    this.#writer.finish(result, headers, extraFields);
    this.#life.end('served');
  }

  /** The cut of a streamed answer, right after token `index`. */
  #cutStream(index: number): void {
    if (!this.#writer.stream || this.#cut === undefined || this.#cut.at !== index + 1) return;
    this.#writer.flush();
    if (this.#cut.mode === 'stall') {
      this.#stalled = true;
      return;
    }
    // Test hook: send what was generated so far, then close the connection mid-answer.
    this.#life.markSelfReset();
    this.#life.end('none');
    this.#req.socket.destroySoon();
    this.#handle?.abort();
  }

  /**
   * Runs the request in the engine and writes its answer. `fetchKv`: a decode leg's KV fetch,
   * started once the engine has allocated its blocks (the engine request is `awaitKv`).
   * `extraFields`: top-level members added to a JSON answer.
   */
  #submit(options: {
    readonly fetchKv?: () => { promise: Promise<TransferOutcome>; cancel: () => void };
    readonly extraFields?: (result: RequestResult) => string | undefined;
  }): void {
    const srv = this.#srv;
    const observer = srv.metrics;
    const clock = srv.clock;
    const writer = this.#writer;
    const { fetchKv, extraFields } = options;
    let transferMs: number | undefined;
    let submitMs = 0;
    let lastMs = 0;
    try {
      // A decode leg's answer starts with its first token: until its KV is there it may still fail with an error status.
      if (fetchKv === undefined) writer.start();
      submitMs = clock.now();
      lastMs = submitMs;
      this.#handle = srv.engine.submit(this.#engineReq, {
        onToken: (text, index) => {
          const now = clock.now();
          observer.token(index, now - submitMs, now - lastMs);
          lastMs = now;
          if (this.#stalled || this.#life.done) return;
          writer.token(text, index);
          this.#cutStream(index);
        },
        onFinish: (result) => {
          observer.finished(result);
          if (this.#stalled) return;
          if (result.finishReason === 'abort') {
            if (!this.#life.done) this.#life.destroy();
            return;
          }
          if (!this.#life.done) this.#complete(result, timingHeaders(result, transferMs), extraFields?.(result));
        },
        ...(fetchKv === undefined ? {} : { onKvAllocated: () => this.#fetchKv(fetchKv, (ms) => (transferMs = ms)) }),
      });
      observer.submitted();
    } catch (err) {
      if (this.#res.headersSent) this.#life.destroy();
      else this.#fail(`the engine refused the request: ${String(err)}`);
    }
  }

  /** The prompt's tokens: its ids, as the face submits a tokenised prompt, or a counted prompt's estimate (profile `tokenizePrompts: false`). */
  #promptLength(): number {
    return this.#engineReq.promptTokens?.length ?? estimateTokens(this.#engineReq.prompt ?? '');
  }

  /** SGLang prefill leg: compute the prompt, wait for the decode leg, transfer, answer one token. */
  #submitPrefill(fields: BootstrapFields): void {
    const srv = this.#srv;
    const bootstrap = srv.bootstrap as BootstrapServer;
    const observer = srv.metrics;
    const clock = srv.clock;
    let firstText = '';
    let result: RequestResult | null = null;
    const leg = bootstrap.openPrefill(fields.room, this.#engineReq.model, this.#promptLength(), {
      transferred: (transferMs) => {
        this.#cancelWait = null;
        this.#handle?.releaseKv(); // the decode engine has the KV now
        if (this.#life.done || result === null) return;
        this.#writer.start();
        this.#writer.token(firstText, 0);
        this.#complete(result, timingHeaders(result, transferMs));
      },
      failed: (message) => {
        this.#cancelWait = null;
        this.#handle?.releaseKv();
        if (this.#life.done) return;
        this.#fail(message); // first: the abort below must not reset the connection
        this.#handle?.abort();
      },
    });
    if (typeof leg === 'string') {
      srv.sendError(this.#res, srv.face.error(400, leg, 'BadRequestError'));
      this.#life.end('none');
      return;
    }
    this.#cancelWait = leg.cancel;
    const submitMs = clock.now();
    try {
      this.#handle = srv.engine.submit(this.#engineReq, {
        onToken: (text, index) => {
          observer.token(index, clock.now() - submitMs, 0);
          if (index === 0) firstText = text;
        },
        onFinish: (r) => {
          observer.finished(r);
          if (r.finishReason === 'abort') {
            leg.cancel();
            if (!this.#life.done) this.#life.destroy();
            return;
          }
          result = r;
          leg.computed();
        },
      });
      observer.submitted();
    } catch (err) {
      leg.cancel();
      this.#fail(`the engine refused the request: ${String(err)}`);
    }
  }
}
