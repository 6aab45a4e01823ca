import type { HeaderEdit } from '../core/headers.js';
import type { FilterMetadata, HeaderRecord } from './headers.js';
import type { Refusal } from './refusal.js';

export type { Refusal } from './refusal.js';
export type { FilterMetadata, HeaderRecord, JsonValue } from './headers.js';

/** Send the request upstream, changed as said. */
export interface Forward {
  readonly kind: 'forward';
  /**
   * Edits to the request headers: `x-gateway-destination-endpoint` (primary first, fallbacks after,
   * `,`-joined), `content-length` of a rewritten body, `x-request-id`, removal of control headers.
   */
  readonly headerEdits: readonly HeaderEdit[];
  /** The body to send upstream; undefined sends the body as received. */
  readonly body?: Buffer;
  /**
   * Dynamic metadata by namespace, e.g. `{ 'envoy.lb': { 'x-gateway-destination-endpoint': '…' } }`
   * (the same value as the header: Envoy's ORIGINAL_DST or subset LB may read either).
   */
  readonly metadata?: FilterMetadata;
}

/** Answer the client at once (bad JSON, unknown model, shed, queue full, no endpoint, …). */
export interface Refuse extends Refusal {
  readonly kind: 'refuse';
}

/** What to do with a request. */
export type RequestVerdict = Forward | Refuse;

/** The headers alone do not decide: wait for the whole body, at most `maxBodyBytes` bytes of it. */
export interface AwaitBody {
  readonly kind: 'await-body';
  /** Body bytes accepted across all chunks; one more ends the request with bodyTooLarge(). */
  readonly maxBodyBytes: number;
}

/**
 * One HTTP request as it crosses Envoy, seen by whoever decides (the core, in the integration
 * phase). ExtProcStream creates one per gRPC stream when the request headers arrive and calls it in
 * order; calls never overlap. Every method may throw a GatewayError: it becomes an
 * `immediate_response` with that status (other errors: 500 `internal_error`).
 *
 * Exactly one of `completed()` and `cancelled()` is called, once, last.
 */
export interface RequestProcessor {
  /**
   * The request headers (lower-case names; pseudo-headers `:method`, `:path`, `:authority`,
   * `:scheme`) and Envoy's metadata_context (`envoy.lb.subset_hint`, …). `endOfStream` true means a
   * bodyless request: the answer must be a verdict (AwaitBody is then taken as an empty body).
   */
  headers(headers: HeaderRecord, endOfStream: boolean, metadata: FilterMetadata): Promise<RequestVerdict | AwaitBody>;
  /**
   * A piece of the request body (any size, possibly empty), after AwaitBody. Chunks before the last
   * return undefined (or a Refuse to stop early); the last (`endOfStream`) returns the verdict.
   */
  bodyChunk(chunk: Buffer, endOfStream: boolean): Promise<RequestVerdict | undefined>;
  /** The refusal for a body past `maxBodyBytes` (413 body_too_large; the core renders it). */
  bodyTooLarge(maxBodyBytes: number): Refusal;
  /**
   * The upstream's response headers (`:status` pseudo-header included) and metadata_context (the
   * served endpoint under `envoy.lb`). Returns edits to them. `endOfStream`: the response has no body.
   */
  responseHeaders(headers: HeaderRecord, endOfStream: boolean, metadata: FilterMetadata): Promise<readonly HeaderEdit[]>;
  /**
   * A piece of the response body. Returns the bytes to send on now: `chunk` itself to pass it
   * through, an empty buffer to hold it back; whatever was held back must be returned by the
   * `endOfStream` call (e.g. a non-streamed answer rewritten once complete). May answer at once
   * (no promise): a streamed answer's chunks then cost no promise each.
   */
  responseBody(chunk: Buffer, endOfStream: boolean): Buffer | Promise<Buffer>;
  /** The response's trailers (gRPC responses, rarely HTTP): the response is complete. */
  responseTrailers(trailers: HeaderRecord): Promise<void>;
  /** The response went through to its end (or the request was refused): release per-request state. */
  completed(): void;
  /**
   * The stream ended before that: Envoy closed or cancelled it (client gone, message timeout, Envoy
   * restart) or broke the protocol. Release per-request state; the request counts as abandoned.
   */
  cancelled(): void;
}

/** Makes the processor for one stream (one HTTP request). */
export type RequestProcessorFactory = () => RequestProcessor;
