import { status as GrpcStatus } from '@grpc/grpc-js';
import { asGatewayError, GatewayError, isGatewayError } from '../core/errors.js';
import { DEFAULT_HEADER_LIMITS, filterMetadata, headerMutation, headerRecord, HeaderLimitError, pbStruct, type FilterMetadata, type HeaderLimits, type JsonValue } from './headers.js';
import type { BodySendMode, PbHttpBody, PbStruct, ProcessingRequest, ProcessingResponse } from './messages.js';
import type { AwaitBody, RequestProcessor, RequestProcessorFactory, RequestVerdict } from './processor.js';
import { constantAnswer, streamedAnswer } from './codec.js';
import { refusalOf, type Refusal } from './refusal.js';

/**
 * Largest body piece in one StreamedBodyResponse: GIE pkg/common/envoy/chunking.go `BodyByteLimit`
 * ("Certain envoy implementations set a max limit of 64Kb per streamed chunk").
 */
export const STREAMED_CHUNK_BYTES = 62_000;

/** The body modes the picker serves; the others cannot carry a decision made on the whole body. */
export type BodyMode = 'FULL_DUPLEX_STREAMED' | 'BUFFERED';

export interface StreamOptions {
  /** Body mode when Envoy does not say (protocol_config is sent by Envoy ≥ 1.32); default FULL_DUPLEX_STREAMED, what upstream requires. */
  readonly defaultBodyMode?: BodyMode;
  /** Bounds on each header map (request, response, trailers). */
  readonly headerLimits?: HeaderLimits;
  /** Most messages one stream may carry; past it the stream ends RESOURCE_EXHAUSTED. Default 1,000,000 (a long SSE answer is a few tens of thousands). */
  readonly maxMessages?: number;
  /** Told of a processor failure that is not a GatewayError (it becomes a 500 to the client). */
  readonly onInternalError?: (err: unknown) => void;
  /**
   * Told when a stream without protocol_config looks like Envoy uses another body mode than the
   * default (`hint` says which flag fixes it). Called at most once per stream; the server logs it.
   */
  readonly onModeMismatch?: (hint: string) => void;
}

/** The stream must end with this gRPC status (Envoy then applies its failure mode). */
export class StreamError extends Error {
  override readonly name = 'StreamError';
  constructor(
    readonly code: GrpcStatus,
    message: string,
  ) {
    super(message);
  }
}

type State =
  /** Nothing yet; request headers expected. */
  | 'idle'
  /** FULL_DUPLEX_STREAMED: headers answer deferred, body being collected. */
  | 'collect'
  /** BUFFERED: headers answered CONTINUE, the one body message expected. */
  | 'buffered-body'
  /** Decided from the headers alone while a body follows: body passed through unchanged. */
  | 'pass-body'
  /** Request sent on; response headers (or request trailers) expected. */
  | 'forwarded'
  /** Response headers answered; body and/or trailers expected. */
  | 'response'
  /** Response complete or request refused; anything more is ignored. */
  | 'done';

const SUPPORTED: ReadonlySet<BodySendMode> = new Set<BodySendMode>(['FULL_DUPLEX_STREAMED', 'BUFFERED']);

/** Answers that never change (CONTINUE without mutations), encoded once (codec.ts). */
const CONTINUE_HEADERS = constantAnswer({ request_headers: { response: {} } });
const CONTINUE_BODY = constantAnswer({ request_body: { response: {} } });
const CONTINUE_RESPONSE_HEADERS = constantAnswer({ response_headers: { response: {} } });
const CONTINUE_RESPONSE_BODY = constantAnswer({ response_body: { response: {} } });
const REQUEST_TRAILERS_DONE = constantAnswer({ request_trailers: {} });
const RESPONSE_TRAILERS_DONE = constantAnswer({ response_trailers: {} });

/**
 * One ext_proc stream (one HTTP request through Envoy) as a state machine: Envoy's messages in,
 * the answers to send out, calls on a RequestProcessor in between. `receive` must not be called
 * again before its promise settles. Protocol violations (a body before the headers, a second
 * request_headers, an unsupported body mode, too many messages or header bytes) throw StreamError:
 * the server ends the stream with its gRPC status. `end()` when the gRPC stream is over, for
 * whatever reason: the processor hears `cancelled()` unless the request completed.
 */
export class ExtProcStream {
  #state: State = 'idle';
  #processor: RequestProcessor | undefined;
  #finished = false;
  #messages = 0;
  #requestMode: BodyMode;
  #responseMode: BodyMode | 'NONE';
  #modeFromEnvoy = false;
  #limit = 0;
  #received = 0;
  /** Request body messages seen (a guessed FULL_DUPLEX_STREAMED that never gets one was BUFFERED). */
  #bodyMessages = 0;
  /** The request's declared content-length, when it had a valid one. */
  #declared: number | undefined;
  #chunks: Buffer[] = [];
  readonly #options: Required<Omit<StreamOptions, 'onInternalError' | 'onModeMismatch'>> & Pick<StreamOptions, 'onInternalError' | 'onModeMismatch'>;

  constructor(
    private readonly newProcessor: RequestProcessorFactory,
    options: StreamOptions = {},
  ) {
    this.#options = { defaultBodyMode: options.defaultBodyMode ?? 'FULL_DUPLEX_STREAMED', headerLimits: options.headerLimits ?? DEFAULT_HEADER_LIMITS, maxMessages: options.maxMessages ?? 1_000_000, onInternalError: options.onInternalError, onModeMismatch: options.onModeMismatch };
    this.#requestMode = this.#options.defaultBodyMode;
    this.#responseMode = this.#options.defaultBodyMode;
  }

  /** The body modes in force (Envoy's protocol_config, else the default). */
  get modes(): { request: BodyMode; response: BodyMode | 'NONE' } {
    return { request: this.#requestMode, response: this.#responseMode };
  }

  /** True once the request completed or was refused. */
  get finished(): boolean {
    return this.#finished;
  }

  /** Handles one message from Envoy; resolves to the messages to send back, in order. */
  async receive(msg: ProcessingRequest): Promise<ProcessingResponse[]> {
    return this.receiveNow(msg);
  }

  /**
   * receive() without the promise where none is needed: a response body chunk whose processor
   * answers synchronously (the core does) is answered at once, so a long streamed answer costs no
   * promise chain per chunk. Returns the answers, or a promise of them; throws StreamError (or
   * rejects with it) where receive() rejects.
   */
  receiveNow(msg: ProcessingRequest): ProcessingResponse[] | Promise<ProcessingResponse[]> {
    if (++this.#messages > this.#options.maxMessages) throw new StreamError(GrpcStatus.RESOURCE_EXHAUSTED, `more than ${this.#options.maxMessages} messages on one stream`);
    if (msg.protocol_config !== undefined) this.#applyProtocol(msg);
    if (this.#state === 'done') return [];
    try {
      const out = this.#dispatch(msg);
      return Array.isArray(out) ? out : out.catch((err: unknown) => this.#failed(err));
    } catch (err) {
      return this.#failed(err);
    }
  }

  #dispatch(msg: ProcessingRequest): ProcessingResponse[] | Promise<ProcessingResponse[]> {
    switch (msg.request) {
      case 'request_headers':
        return this.#requestHeaders(msg);
      case 'request_body':
        return this.#requestBody(msg.request_body ?? {});
      case 'request_trailers':
        return this.#requestTrailers();
      case 'response_headers':
        return this.#responseHeaders(msg);
      case 'response_body':
        return this.#responseBody(msg.response_body ?? {});
      case 'response_trailers':
        return this.#responseTrailers(msg);
      default:
        // A oneof member this subset does not know (a newer Envoy): nothing to answer.
        return [];
    }
  }

  /** What a failure in handling a message becomes: a refusal to send, or a StreamError thrown. */
  #failed(err: unknown): ProcessingResponse[] {
    if (err instanceof StreamError) throw err;
    // A client's headers past the bounds are its own mistake (431, RFC 6585 §5); a server's
    // response headers past them end the stream (Envoy resets the client's).
    if (err instanceof HeaderLimitError) {
      if (this.#state === 'idle') return this.#refuse(refusalOf(new GatewayError('request_headers_too_large', `the request has ${err.message}`)));
      throw new StreamError(GrpcStatus.RESOURCE_EXHAUSTED, err.message);
    }
    if (!isGatewayError(err)) this.#options.onInternalError?.(err);
    // Once the answer's headers went to the client an immediate_response cannot replace it:
    // the stream ends with an error, and Envoy resets the client's stream.
    if (this.#state === 'response') throw new StreamError(GrpcStatus.ABORTED, `the answer failed after it started: ${asGatewayError(err).message}`);
    return this.#refuse(refusalOf(err));
  }

  /** The gRPC stream is over (Envoy half-closed, cancelled, or it broke the protocol). Idempotent. */
  end(): void {
    if (this.#finished) return;
    // Without protocol_config (Envoy < 1.32, older than FULL_DUPLEX_STREAMED itself) a BUFFERED or
    // STREAMED filter waits for the headers answer before it sends any body, while a picker that
    // guessed FULL_DUPLEX_STREAMED waits for the body: Envoy's message timeout ends the stream.
    // Nothing in the headers tells the modes apart, so say what would have fixed it.
    if (!this.#modeFromEnvoy && this.#state === 'collect' && this.#bodyMessages === 0) {
      this.#options.onModeMismatch?.('Envoy sent no protocol_config and no request body after the request headers (it waits for the headers answer): if its ext_proc filter uses request_body_mode BUFFERED, start the picker with --body-mode BUFFERED');
    }
    this.#finished = true;
    this.#state = 'done';
    this.#chunks = [];
    this.#processor?.cancelled();
  }

  #applyProtocol(msg: ProcessingRequest): void {
    const p = msg.protocol_config ?? {};
    const req = p.request_body_mode ?? 'NONE';
    const res = p.response_body_mode ?? 'NONE';
    if (this.#modeFromEnvoy) {
      if (req !== this.#requestMode || res !== this.#responseMode) throw new StreamError(GrpcStatus.INVALID_ARGUMENT, 'protocol_config changed in the middle of a stream');
      return;
    }
    if (!SUPPORTED.has(req)) throw new StreamError(GrpcStatus.FAILED_PRECONDITION, `request_body_mode ${req} is not served: the endpoint picker decides on the whole body; configure FULL_DUPLEX_STREAMED (or BUFFERED)`);
    if (res !== 'NONE' && !SUPPORTED.has(res)) throw new StreamError(GrpcStatus.FAILED_PRECONDITION, `response_body_mode ${res} is not served; configure FULL_DUPLEX_STREAMED, BUFFERED or NONE`);
    this.#requestMode = req as BodyMode;
    this.#responseMode = res as BodyMode | 'NONE';
    this.#modeFromEnvoy = true;
  }

  async #requestHeaders(msg: ProcessingRequest): Promise<ProcessingResponse[]> {
    if (this.#state !== 'idle') throw new StreamError(GrpcStatus.INVALID_ARGUMENT, 'a second request_headers on one stream');
    const h = msg.request_headers ?? {};
    const headers = headerRecord(h.headers, this.#options.headerLimits);
    const eos = h.end_of_stream === true;
    const declared = Number(headers['content-length']);
    this.#declared = headers['content-length'] !== undefined && Number.isSafeInteger(declared) && declared >= 0 ? declared : undefined;
    const processor = this.newProcessor();
    this.#processor = processor;
    let answer = await processor.headers(headers, eos, filterMetadata(msg.metadata_context));
    if (answer.kind === 'await-body' && eos && !this.#finished) answer = (await processor.bodyChunk(Buffer.alloc(0), true)) ?? internalNoVerdict();
    // The stream may have ended while the processor decided (end() already told it cancelled()).
    if (this.#finished) return [];
    if (answer.kind === 'refuse') return this.#refuse(answer);
    if (answer.kind === 'forward') {
      // Decided without the body: a body that follows passes through unchanged.
      this.#state = eos ? 'forwarded' : 'pass-body';
      return [{ request_headers: { response: forwardCommon(answer) }, ...dynamicMetadata(answer.metadata) }];
    }
    this.#awaitBody(answer);
    if (this.#requestMode === 'BUFFERED') {
      this.#state = 'buffered-body';
      return [CONTINUE_HEADERS];
    }
    this.#state = 'collect';
    return [];
  }

  #awaitBody(a: AwaitBody): void {
    this.#limit = a.maxBodyBytes;
    this.#received = 0;
  }

  async #requestBody(body: PbHttpBody): Promise<ProcessingResponse[]> {
    const chunk = asBuffer(body.body);
    const processor = this.#processor;
    switch (this.#state) {
      case 'collect':
      case 'buffered-body': {
        if (processor === undefined) break;
        this.#bodyMessages++;
        // A guessed BUFFERED (no protocol_config) whose one body message is short of the declared
        // length and not the end: Envoy streams the body. Deciding on a piece of it would route
        // (or refuse) the wrong request; the headers already went on unrouted, so end the stream.
        if (this.#state === 'buffered-body' && !this.#modeFromEnvoy && body.end_of_stream !== true && this.#declared !== undefined && chunk.length < this.#declared) {
          const hint = 'the request body arrives in pieces although the picker assumed BUFFERED (Envoy sent no protocol_config): start the picker with --body-mode matching the ext_proc filter\'s request_body_mode';
          this.#options.onModeMismatch?.(hint);
          throw new StreamError(GrpcStatus.FAILED_PRECONDITION, hint);
        }
        // BUFFERED sends the whole body in one message, so that message ends the body whatever its flag says.
        const eos = body.end_of_stream === true || this.#state === 'buffered-body';
        this.#received += chunk.length;
        if (this.#received > this.#limit) return this.#refuse(processor.bodyTooLarge(this.#limit));
        this.#chunks.push(chunk);
        const verdict = await processor.bodyChunk(chunk, eos);
        if (this.#finished) return [];
        if (verdict?.kind === 'refuse') return this.#refuse(verdict);
        if (!eos) return [];
        return this.#bodyDecided(verdict ?? internalNoVerdict());
      }
      case 'pass-body': {
        const eos = body.end_of_stream === true;
        if (eos) this.#state = 'forwarded';
        if (this.#requestMode === 'BUFFERED') return [CONTINUE_BODY];
        return streamedChunks('request_body', chunk, eos, eos);
      }
      default:
        break;
    }
    throw new StreamError(GrpcStatus.INVALID_ARGUMENT, this.#state === 'idle' ? 'request_body before request_headers' : 'request_body after the request body ended');
  }

  #bodyDecided(verdict: RequestVerdict): ProcessingResponse[] {
    if (verdict.kind === 'refuse') return this.#refuse(verdict);
    const body = verdict.body ?? Buffer.concat(this.#chunks);
    this.#chunks = [];
    const wasBuffered = this.#state === 'buffered-body';
    this.#state = 'forwarded';
    const common = forwardCommon(verdict);
    if (wasBuffered) {
      return [{ request_body: { response: { ...common, ...(verdict.body === undefined ? {} : { status: 'CONTINUE_AND_REPLACE' as const, body_mutation: { body } }) } }, ...dynamicMetadata(verdict.metadata) }];
    }
    // FULL_DUPLEX_STREAMED: the deferred headers answer first, then the body in pieces.
    return [{ request_headers: { response: common }, ...dynamicMetadata(verdict.metadata) }, ...streamedChunks('request_body', body, true, true)];
  }

  async #requestTrailers(): Promise<ProcessingResponse[]> {
    const out: ProcessingResponse[] = [];
    if (this.#state === 'collect') {
      // Trailers end a body whose last chunk said end_of_stream false.
      const verdict = await this.#processor?.bodyChunk(Buffer.alloc(0), true);
      if (this.#finished) return [];
      out.push(...this.#bodyDecided(verdict ?? internalNoVerdict()));
      if (this.#finished) return out;
    } else if (this.#state === 'pass-body') this.#state = 'forwarded';
    else if (this.#state !== 'forwarded') throw new StreamError(GrpcStatus.INVALID_ARGUMENT, `request_trailers out of order (${this.#state})`);
    out.push(REQUEST_TRAILERS_DONE);
    return out;
  }

  async #responseHeaders(msg: ProcessingRequest): Promise<ProcessingResponse[]> {
    // An upstream may answer before the request body ends (pass-body); never before the request went out.
    if ((this.#state !== 'forwarded' && this.#state !== 'pass-body') || this.#processor === undefined) throw new StreamError(GrpcStatus.INVALID_ARGUMENT, `response_headers out of order (${this.#state})`);
    const h = msg.response_headers ?? {};
    const headers = headerRecord(h.headers, this.#options.headerLimits);
    const eos = h.end_of_stream === true;
    const edits = await this.#processor.responseHeaders(headers, eos, filterMetadata(msg.metadata_context));
    if (this.#finished) return [];
    const mutation = headerMutation(edits);
    const answer: ProcessingResponse = mutation === undefined ? CONTINUE_RESPONSE_HEADERS : { response_headers: { response: { header_mutation: mutation } } };
    this.#state = 'response';
    if (eos || this.#responseMode === 'NONE') this.#complete();
    return [answer];
  }

  #responseBody(body: PbHttpBody): ProcessingResponse[] | Promise<ProcessingResponse[]> {
    const processor = this.#processor;
    if (this.#state !== 'response' || processor === undefined) throw new StreamError(GrpcStatus.INVALID_ARGUMENT, `response_body out of order (${this.#state})`);
    const chunk = asBuffer(body.body);
    const buffered = this.#responseMode === 'BUFFERED';
    const eos = body.end_of_stream === true || buffered;
    const out = processor.responseBody(chunk, eos);
    return out instanceof Promise ? out.then((o) => this.#responseBodyAnswer(chunk, o, body, eos, buffered)) : this.#responseBodyAnswer(chunk, out, body, eos, buffered);
  }

  #responseBodyAnswer(chunk: Buffer, out: Buffer, body: PbHttpBody, eos: boolean, buffered: boolean): ProcessingResponse[] {
    if (this.#finished) return [];
    if (eos) this.#complete();
    if (buffered) return [out === chunk || out.equals(chunk) ? CONTINUE_RESPONSE_BODY : { response_body: { response: { body_mutation: { body: out } } } }];
    return streamedChunks('response_body', out, body.end_of_stream === true, false);
  }

  async #responseTrailers(msg: ProcessingRequest): Promise<ProcessingResponse[]> {
    if (this.#state !== 'response' || this.#processor === undefined) throw new StreamError(GrpcStatus.INVALID_ARGUMENT, `response_trailers out of order (${this.#state})`);
    await this.#processor.responseTrailers(headerRecord(msg.response_trailers?.trailers, this.#options.headerLimits));
    this.#complete();
    return [RESPONSE_TRAILERS_DONE];
  }

  #refuse(r: Refusal): ProcessingResponse[] {
    this.#chunks = [];
    const headers = headerMutation(r.headers);
    const answer: ProcessingResponse = {
      immediate_response: {
        status: { code: r.status },
        ...(headers === undefined ? {} : { headers }),
        body: typeof r.body === 'string' ? Buffer.from(r.body) : r.body,
        ...(r.details === undefined ? {} : { details: r.details }),
      },
    };
    this.#complete();
    return [answer];
  }

  #complete(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#state = 'done';
    this.#processor?.completed();
  }
}

function internalNoVerdict(): never {
  throw new Error('the request processor gave no verdict at the end of the body');
}

function asBuffer(b: Buffer | Uint8Array | undefined): Buffer {
  if (b === undefined) return Buffer.alloc(0);
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function forwardCommon(v: { readonly headerEdits: Parameters<typeof headerMutation>[0] }): NonNullable<NonNullable<ProcessingResponse['request_headers']>['response']> {
  const mutation = headerMutation(v.headerEdits);
  // clear_route_cache: the destination header may change the route Envoy picked before the picker ran.
  return { ...(mutation === undefined ? {} : { header_mutation: mutation }), clear_route_cache: true };
}

function dynamicMetadata(m: FilterMetadata | undefined): { dynamic_metadata?: PbStruct } {
  if (m === undefined || Object.keys(m).length === 0) return {};
  return { dynamic_metadata: pbStruct(m as { readonly [k: string]: JsonValue }) };
}

/**
 * `body` as StreamedBodyResponse messages of at most STREAMED_CHUNK_BYTES, `end_of_stream` on the
 * last when `eos`. An empty body still sends one message when it carries the end of the stream
 * (`always`) or is the end; an empty non-final piece sends nothing.
 */
function streamedChunks(kind: 'request_body' | 'response_body', body: Buffer, eos: boolean, always: boolean): ProcessingResponse[] {
  if (body.length === 0 && !eos && !always) return [];
  const out: ProcessingResponse[] = [];
  let offset = 0;
  do {
    const piece = body.subarray(offset, offset + STREAMED_CHUNK_BYTES);
    offset += piece.length;
    const last = offset >= body.length;
    out.push(streamedAnswer(kind, piece, last && eos));
  } while (offset < body.length);
  return out;
}
