import { GatewayError } from '../core/errors.js';
import { ErrorBodyNormalizer } from './error-body.js';
import { LogprobMerger } from './logprob-merge.js';
import { ModelRenamer } from './model-rename.js';
import type { Prepared } from './pipeline.js';
import { ResponseObserver, type Usage } from './response-observer.js';
import { endsWithDone, SseFramer } from './sse-frames.js';

/** Chunk gaps kept per stream for the ITL histogram (a 4k-token answer; later gaps are not observed). */
const MAX_GAPS = 4096;

const EMPTY = Buffer.alloc(0);

/**
 * What one answer's body goes through on its way to the client, decided when its headers arrive:
 * an error answer from a pool's model server becomes OpenAI-shaped (held until the end); a success
 * is read for usage and, when some plugin wants it, the answer text (the usage event the gateway
 * asked for is removed), then gets the client's model name back when the model was rewritten and the answer is to carry it.
 * It also times the chunks of a stream (the inter-token latency the client sees). An SSE answer
 * goes on in complete events only (sse-frames.ts): a stream cut mid-event never hands the client
 * half an event, and the data plane's error event follows whole ones.
 */
export class ResponseBody {
  /** True when the bytes the client gets differ in length from what arrived (sent chunked). */
  readonly changesLength: boolean;
  readonly #framer: SseFramer | undefined;
  readonly #observer: ResponseObserver | undefined;
  readonly #errorBody: ErrorBodyNormalizer | undefined;
  readonly #renamer: ModelRenamer | undefined;
  readonly #logprobs: LogprobMerger | undefined;
  readonly #countTokens: boolean;
  readonly #promptTokens: number;
  #lastChunkAt = 0;
  readonly #gaps: number[] | undefined;
  #usage: Usage | undefined;
  #done = false;

  /** `inputLogprobs`: a disaggregated request's prefill input-token logprobs, to put in front of the decode answer's. */
  constructor(prepared: Prepared, status: number, sse: boolean, inputLogprobs?: readonly unknown[]) {
    const ok = status >= 200 && status < 300;
    this.#countTokens = sse && prepared.countTokens;
    this.#promptTokens = prepared.request.promptTokens;
    // A stream cut mid-event ends with fewer bytes and an error event: never a declared length.
    if (sse) this.#framer = new SseFramer();
    if (!ok) {
      // Services are plain proxying; model servers' own error shapes become OpenAI's.
      this.#errorBody = prepared.backend.kind === 'pool' && !sse ? new ErrorBodyNormalizer(status) : undefined;
      this.changesLength = this.#errorBody !== undefined || sse;
      return;
    }
    const stripUsage = sse && prepared.stripUsage;
    this.#observer = new ResponseObserver({ sse, stripUsage, collectText: prepared.backend.controls.needsText, countChunks: this.#countTokens });
    // The server names the target it ran; the answer carries `answerModel` (model-target.ts).
    const { targetModel, answerModel } = prepared;
    const renamed = targetModel !== undefined && answerModel !== undefined && answerModel !== targetModel;
    if (renamed) this.#renamer = new ModelRenamer(targetModel, answerModel);
    if (sse) this.#gaps = [];
    if (inputLogprobs !== undefined) this.#logprobs = new LogprobMerger(inputLogprobs, sse);
    this.changesLength = sse || renamed || this.#logprobs !== undefined;
  }

  /** True when the answer is an error being rewritten into the OpenAI shape. */
  get normalizesError(): boolean {
    return this.#errorBody !== undefined;
  }

  /** The first byte arrived at `at` (`performance.now()`): chunk gaps count from there. */
  started(at: number): void {
    this.#lastChunkAt = at;
  }

  /** One chunk from upstream; returns the bytes for the client (maybe none yet). */
  push(chunk: Buffer, first: boolean): Buffer {
    if (!first && this.#gaps !== undefined && chunk.length > 0 && this.#gaps.length < MAX_GAPS) {
      const now = performance.now();
      this.#gaps.push((now - this.#lastChunkAt) / 1000);
      this.#lastChunkAt = now;
    }
    if (this.#framer === undefined) return this.#through(chunk);
    const framed = this.#framer.push(chunk);
    if (framed.length === 0) return EMPTY;
    if (endsWithDone(framed)) this.#done = true;
    return this.#through(framed);
  }

  /** True once the SSE stream's `data: [DONE]` event has passed (OpenAI streams end with it). */
  get done(): boolean {
    return this.#done;
  }

  /** Complete events (or any bytes of a body that is not SSE) on their way to the client. */
  #through(chunk: Buffer): Buffer {
    if (this.#errorBody !== undefined) return this.#errorBody.push(chunk);
    let out = this.#observer === undefined ? chunk : this.#observer.push(chunk);
    if (this.#logprobs !== undefined && out.length > 0) out = this.#logprobs.push(out);
    // SSE arrives here in complete events (the framer): the renamer holds nothing across them.
    return this.#renamer === undefined || out.length === 0 ? out : this.#renamer.push(out, this.#framer !== undefined);
  }

  /**
   * The body ended; returns the bytes held back until now (none: undefined). Throws
   * `upstream_reset` when an SSE stream ended in the middle of an event (its partial event is
   * dropped; the data plane ends the stream with an error event), after reading what usage came.
   */
  end(): Buffer | undefined {
    const framed = this.#framer?.end();
    const rest = this.#end(framed?.rest);
    if (framed?.dropped === true) throw new GatewayError('upstream_reset', 'the model server ended its stream in the middle of an event');
    return rest;
  }

  /** `framed`: the framer's last bytes (a completed `[DONE]`), not yet seen by the observer. */
  #end(framed: Buffer | undefined): Buffer | undefined {
    if (this.#errorBody !== undefined) return this.#errorBody.end();
    const observer = this.#observer;
    const last = framed === undefined || observer === undefined ? framed : observer.push(framed);
    let rest = observer?.end();
    if (last !== undefined && last.length > 0) rest = rest === undefined ? last : Buffer.concat([last, rest]);
    if (this.#logprobs !== undefined) rest = Buffer.concat([rest === undefined ? EMPTY : this.#logprobs.push(rest), this.#logprobs.end()]);
    this.#usage = observer?.usage;
    if (observer !== undefined && this.#usage === undefined && this.#countTokens) {
      // No usage event (the runtime cannot be asked for one): the gateway's own count.
      this.#usage = { promptTokens: this.#promptTokens, completionTokens: observer.chunks, cachedTokens: undefined, estimated: true };
    }
    if (this.#renamer === undefined) return rest === undefined || rest.length === 0 ? undefined : rest;
    const out = Buffer.concat([rest === undefined ? EMPTY : this.#renamer.push(rest), this.#renamer.end()]);
    return out.length === 0 ? undefined : out;
  }

  /** Token counts, once the body ended. */
  get usage(): Usage | undefined {
    return this.#usage;
  }

  /** The answer text (when collected), once the body ended. */
  get text(): string | undefined {
    return this.#observer?.text;
  }

  /** Gaps between a stream's chunks, in seconds; undefined for other answers. */
  get gaps(): readonly number[] | undefined {
    return this.#gaps;
  }
}
