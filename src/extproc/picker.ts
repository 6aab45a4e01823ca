import type { Endpoint } from '../core/endpoint.js';
import { canDecodeRequest } from '../core/content-coding.js';
import { asGatewayError, GatewayError } from '../core/errors.js';
import type { HeaderEdit } from '../core/headers.js';
import {
  BodyCollector,
  parseRequestTarget,
  poolLimitName,
  bodyTooLarge,
  clientGone,
  clientGoneOutcome,
  decodeRequestBody,
  requestCodings,
  sseErrorEvent,
  PREFILLER_HEADER,
  refuseDeclaredOver,
  RequestScope,
  UploadClock,
  type BodyReservation,
  type Decision,
  type Gateway,
  type InFlight,
  type RequestHandle,
} from '../gateway/index.js';
import type { FilterMetadata, HeaderRecord, JsonValue } from './headers.js';
import type { AwaitBody, Refusal, Refuse, RequestProcessor, RequestProcessorFactory, RequestVerdict } from './processor.js';
import { refusalOf } from './refusal.js';

/**
 * The endpoint picker's names on the wire (Gateway API Inference Extension, endpoint picker
 * protocol, docs/proposals/004-endpoint-picker-protocol): the destination the picker chose (request
 * header and dynamic metadata, same value), the subset Envoy allows (filter metadata), and the
 * endpoint that actually served after Envoy's own retries (response metadata).
 */
export const DESTINATION_HEADER = 'x-gateway-destination-endpoint';
export const SUBSET_HEADER = 'x-gateway-destination-endpoint-subset';
export const SERVED_HEADER = 'x-gateway-destination-endpoint-served';
/** Envoy's load-balancer metadata namespace: ORIGINAL_DST and subset load balancing read it. */
export const LB_NAMESPACE = 'envoy.lb';
export const SUBSET_NAMESPACE = 'envoy.lb.subset_hint';

const EMPTY = Buffer.alloc(0);

/** At most this many subset entries are read (upstream allows one per endpoint; a pool rarely has more). */
const MAX_SUBSET_ENTRIES = 1024;
/** An `ip:port` (IPv6 in brackets) is never longer than this. */
const MAX_ENDPOINT_KEY = 64;

export interface PickerOptions {
  /** The InferencePool the picker serves, `namespace/name` (Envoy already routed to it). */
  readonly poolKey: string;
  /** Per-request scopes, for draining at shutdown. */
  readonly inFlight?: InFlight;
}

/**
 * The endpoint picker's per-request processor, backed by the gateway core: the same route →
 * decide → account calls as the standalone proxy, through the pool-keyed entry (`routePool`).
 * Envoy carries the bytes; this turns the core's Decision into Envoy's header mutation and
 * metadata, and feeds the answer back through the core (TTFT, usage, the client's model name, the
 * prefix index, the `Request Handled` line).
 *
 * A prefill/decode decision goes to the decode endpoint (its sidecar) with the chosen prefill
 * endpoint in `x-prefiller-host-port` (llm-d's routing sidecar protocol); the sidecar runs both legs.
 */
export function corePicker(gateway: Gateway, options: PickerOptions): RequestProcessorFactory {
  return () => new CorePicker(gateway, options);
}

class CorePicker implements RequestProcessor {
  readonly #gateway: Gateway;
  readonly #options: PickerOptions;
  readonly #scope = new RequestScope();
  #handle: RequestHandle | undefined;
  #collector: BodyCollector | undefined;
  #reservation: BodyReservation | undefined;
  #clock: UploadClock | undefined;
  /** The request's content codings, in the order applied (none: identity). */
  #codings: readonly string[] = [];
  #only: ReadonlySet<string> | undefined;
  #status = 0;
  #bytesOut = 0;
  #responding = false;
  /** The answer is an SSE stream (a failure after it started becomes an SSE error event). */
  #sse = false;
  #done = false;

  constructor(gateway: Gateway, options: PickerOptions) {
    this.#gateway = gateway;
    this.#options = options;
    options.inFlight?.add(this.#scope);
  }

  async headers(headers: HeaderRecord, endOfStream: boolean, metadata: FilterMetadata): Promise<RequestVerdict | AwaitBody> {
    const rawPath = headers[':path'] ?? '/';
    const q = rawPath.indexOf('?');
    // Envoy forwards `:path` as it stands (normalised when its listener says so, as Envoy Gateway's
    // do); the core judges the path it names, normalised as the proxy's (which inference endpoint
    // a spelling is: inference-paths.ts), and the log shows it so.
    const target = parseRequestTarget(rawPath);
    const handle = this.#gateway.begin({
      ...(headers['x-request-id'] === undefined ? {} : { requestId: headers['x-request-id'] }),
      method: headers[':method'] ?? 'GET',
      path: target instanceof GatewayError ? (q === -1 ? rawPath : rawPath.slice(0, q)) : target.path,
      headers: withoutPseudo(headers),
      ...(clientOf(headers) === undefined ? {} : { clientAddress: clientOf(headers) as string }),
      forwarder: 'envoy',
    });
    this.#handle = handle;
    return this.#guard(async () => {
      handle.routePool(this.#options.poolKey);
      this.#only = subsetOf(metadata);
      if (endOfStream) return this.#decide(undefined);
      const limit = this.#gateway.poolBodyLimit(this.#options.poolKey);
      const length = Number(headers['content-length']);
      const declared = Number.isSafeInteger(length) && length >= 0 ? length : undefined;
      // As the proxy does: a declared length over the limit is refused before a byte is read, and
      // the body, held until the decision, counts against the global body budget from its start.
      refuseDeclaredOver(declared, limit, poolLimitName(this.#options.poolKey));
      // A compressed body is decoded before it is read and forwarded decoded, as the proxy does
      // (the decision's edits drop Content-Encoding): a coding the gateway cannot decode is 415 now.
      this.#codings = requestCodings(headers['content-encoding'], canDecodeRequest);
      this.#reservation = this.#gateway.uploads.budget.reserve(declared ?? 0);
      this.#collector = new BodyCollector(limit, this.#reservation);
      // A client that stops sending mid-body would hold its budget share until Envoy's message
      // timeout (1000 s upstream): the upload timeouts end it, as the proxy's do (408).
      this.#clock = new UploadClock(this.#gateway.uploads.timeouts, (error) => {
        this.#scope.stop(error);
        this.#handle?.failed(error);
        this.#release();
      });
      return { kind: 'await-body', maxBodyBytes: limit };
    });
  }

  async bodyChunk(chunk: Buffer, endOfStream: boolean): Promise<RequestVerdict | undefined> {
    return this.#guard(async () => {
      // The upload already timed out: the piece that arrives late gets the 408.
      const stopped = this.#scope.stopped;
      if (stopped !== undefined) throw stopped;
      const collector = this.#collector;
      if (collector === undefined) throw new Error('body before headers');
      this.#clock?.touch();
      if (chunk.length > 0) collector.push(chunk);
      if (!endOfStream) return undefined;
      this.#clock?.stop();
      const raw = collector.finish();
      const reservation = this.#reservation;
      const body = this.#codings.length === 0 || reservation === undefined ? raw : await decodeRequestBody(raw, this.#codings, collector.limit, reservation, poolLimitName(this.#options.poolKey));
      return this.#decide(body);
    });
  }

  bodyTooLarge(maxBodyBytes: number): Refusal {
    const refusal = bodyTooLarge(maxBodyBytes, poolLimitName(this.#options.poolKey));
    this.#handle?.failed(refusal);
    this.#release();
    return refusalOf(refusal, this.#handle?.id);
  }

  async responseHeaders(headers: HeaderRecord, endOfStream: boolean, metadata: FilterMetadata): Promise<readonly HeaderEdit[]> {
    const handle = this.#handle;
    if (handle === undefined) return [];
    const served = servedOf(metadata);
    if (served !== undefined) handle.served(served);
    this.#status = Number(headers[':status'] ?? 0);
    this.#responding = true;
    const plan = handle.responseStarted(this.#status, withoutPseudo(headers));
    this.#sse = plan.sse;
    if (endOfStream) this.#finish();
    return plan.headers;
  }

  /** Synchronous: the core's answer path never waits, and each streamed chunk would otherwise pay a promise. */
  responseBody(chunk: Buffer, endOfStream: boolean): Buffer {
    const handle = this.#handle;
    if (handle === undefined) return chunk;
    // After a failure the rest of the server's answer is dropped: the client's answer has ended.
    if (this.#done) return EMPTY;
    let out: Buffer;
    try {
      out = chunk.length > 0 ? handle.responseData(chunk) : chunk;
      if (endOfStream) {
        const rest = handle.responseEnd();
        if (rest !== undefined && rest.length > 0) out = out.length === 0 ? rest : Buffer.concat([out, rest]);
      }
    } catch (err) {
      return this.#failAnswer(handle, err);
    }
    this.#bytesOut += out.length;
    if (endOfStream) this.#finish();
    return out;
  }

  async responseTrailers(): Promise<void> {
    const handle = this.#handle;
    if (handle !== undefined && !this.#done) {
      // The body is complete: settle what the core held (usage, a cut event). Nothing more can be
      // sent after trailers, so a held tail is dropped; a cut stream is logged as what it was.
      try {
        handle.responseEnd();
      } catch (err) {
        this.#failAnswer(handle, err, false);
        return;
      }
    }
    this.#finish();
  }

  completed(): void {
    this.#finish();
  }

  cancelled(): void {
    if (this.#done) return;
    this.#done = true;
    // Envoy ended the stream: its client left, its upstream reset, or its message timeout fired.
    // The picker cannot tell which; the request ends as an abandoned one (499), blaming no server.
    const gone = clientGone('(as Envoy saw it: it ended the ext_proc stream, for its client leaving, its upstream resetting or its message timeout)');
    this.#scope.stop(gone);
    if (this.#responding) this.#handle?.finished(clientGoneOutcome(this.#bytesOut));
    else this.#handle?.failed(gone);
    this.#release();
  }

  /**
   * The answer broke after it started (a stream cut mid-event, an event past its bound, an
   * undecodable body): the request fails in the core. An SSE stream ends with one error event, as
   * the standalone proxy's does (not after its `[DONE]`: the answer was whole); any other body
   * can only be cut, so the error is thrown and the stream ends with a gRPC error, which makes
   * Envoy reset the client's stream.
   */
  #failAnswer(handle: RequestHandle, err: unknown, send = true): Buffer {
    const failure = asGatewayError(err);
    this.#done = true;
    const tail = send && this.#sse && !handle.streamDone ? sseErrorEvent(failure) : EMPTY;
    handle.failed(failure, { status: this.#status, bytesOut: this.#bytesOut + tail.length, interrupted: failure.code, detail: failure.message });
    this.#release();
    if (send && !this.#sse) throw failure;
    return tail;
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    // A request refused before any answer was already ended by #guard; `finished` is then a no-op.
    this.#handle?.finished({ status: this.#status, bytesOut: this.#bytesOut });
    this.#release();
  }

  #release(): void {
    this.#clock?.stop();
    this.#reservation?.release();
    this.#reservation = undefined;
    this.#collector = undefined;
    this.#options.inFlight?.delete(this.#scope);
  }

  /**
   * A refusal ends the request in the core (its log line) and goes back as the verdict Envoy sends
   * as `immediate_response`: the core's status, OpenAI-style body and headers, with the request id.
   */
  async #guard<T>(run: () => Promise<T>): Promise<T | Refuse> {
    try {
      return await run();
    } catch (err) {
      const failure = this.#scope.stopped ?? err;
      this.#handle?.failed(failure);
      this.#release();
      return { kind: 'refuse', ...refusalOf(failure, this.#handle?.id) };
    }
  }

  async #decide(body: Buffer | undefined): Promise<RequestVerdict> {
    const handle = this.#handle as RequestHandle;
    // The signal is made only if admission has to wait (as the proxy passes it): an AbortController
    // per request is ~10 us of CPU (request-scope.ts) that most requests never use.
    const decision = await handle.decide(body, () => this.#scope.signal, this.#only === undefined ? undefined : { only: this.#only });
    return this.#forward(handle, decision);
  }

  #forward(handle: RequestHandle, decision: Decision): RequestVerdict {
    const pd = decision.pd;
    const primary = pd === undefined ? decision.endpoints : [pd.decode];
    const destination = primary.map((e) => e.key).join(',');
    // A disaggregated request goes to the decode pod's sidecar with the client's (edited) body; the
    // sidecar builds both legs' bodies itself (it never trusts steering fields it did not set).
    const body = pd === undefined ? decision.body : (handle.prepared?.body ?? decision.body);
    const rebodied = body !== decision.body;
    // One content-length, the body's that goes: the decision's states the decode leg's.
    const edits: HeaderEdit[] = rebodied ? decision.headers.filter((e) => e.name !== 'content-length') : [...decision.headers];
    if (rebodied) edits.push({ op: 'set', name: 'content-length', value: String(body?.length ?? 0) });
    edits.push({ op: 'set', name: DESTINATION_HEADER, value: destination });
    // Only the picker names a prefill endpoint: a client's value never reaches a sidecar.
    edits.push(pd === undefined ? { op: 'remove', name: PREFILLER_HEADER } : { op: 'set', name: PREFILLER_HEADER, value: pd.prefill.key });
    // Envoy tries the list in order; the core accounts the primary until Envoy says who served.
    handle.dispatched(primary[0] as Endpoint);
    if (pd !== undefined) handle.dispatched(pd.prefill, 'prefill');
    return {
      kind: 'forward',
      headerEdits: edits,
      ...(body === undefined ? {} : { body }),
      metadata: { [LB_NAMESPACE]: { [DESTINATION_HEADER]: destination } },
    };
  }
}

/**
 * The client's address for the log line: the last `X-Forwarded-For` hop, the one Envoy appended
 * (with `use_remote_address`); the entries before it are whatever the client sent. At most the
 * header's last 64 characters are read.
 */
function clientOf(headers: HeaderRecord): string | undefined {
  const xff = headers['x-forwarded-for'];
  if (xff === undefined) return undefined;
  const last = xff.slice(-MAX_ENDPOINT_KEY).split(',').at(-1)?.trim();
  return last === undefined || last === '' ? undefined : last;
}

/** Request headers without Envoy's pseudo-headers (`:method`, `:path`, …), as the core reads them. */
function withoutPseudo(headers: HeaderRecord): Record<string, string> {
  const out: Record<string, string> = {};
  // for-in, not Object.entries: no [name, value] array per header, twice per request (headerRecord's objects have no prototype).
  for (const k in headers) if (k.charCodeAt(0) !== 0x3a) out[k] = headers[k] as string;
  return out;
}

/**
 * The endpoints Envoy allows (`envoy.lb.subset_hint` → `x-gateway-destination-endpoint-subset`): a
 * list of `ip:port` strings (or one comma-joined string). Undefined when Envoy sent no hint; an
 * empty set (every entry malformed, or an empty list) leaves no endpoint eligible: 503.
 */
export function subsetOf(metadata: FilterMetadata): ReadonlySet<string> | undefined {
  const ns = metadata[SUBSET_NAMESPACE];
  if (ns === undefined) return undefined;
  const value: JsonValue | undefined = ns[SUBSET_HEADER];
  if (value === undefined) return undefined;
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : [];
  const out = new Set<string>();
  for (const item of items.slice(0, MAX_SUBSET_ENTRIES)) {
    if (typeof item !== 'string') continue;
    const key = item.trim();
    if (key.length > 0 && key.length <= MAX_ENDPOINT_KEY) out.add(key);
  }
  return out;
}

/** The endpoint Envoy reports as having served (`envoy.lb` → `x-gateway-destination-endpoint-served`). */
export function servedOf(metadata: FilterMetadata): string | undefined {
  const value = metadata[LB_NAMESPACE]?.[SERVED_HEADER];
  return typeof value === 'string' && value.length <= MAX_ENDPOINT_KEY ? value.trim() : undefined;
}
