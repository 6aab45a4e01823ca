import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type ClientRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { credentials, Metadata, type Client, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { headerMap, headerRecord, pbStruct, type FilterMetadata, type JsonValue } from './headers.js';
import type { BodySendMode, PbHeaderMutation, PbMetadata, ProcessingRequest, ProcessingResponse } from './messages.js';
import { extProcClient } from './proto.js';
import { refuseConnect } from '../core/refuse-connect.js';

/**
 * Envoy's part in tests and in the benchmark (`infergate envoy-standin`, hidden), from its
 * documented behaviour (there is no Envoy binary here): (a) an ext_proc gRPC client that sends
 * what Envoy's ext_proc filter sends, and (b) a small HTTP server playing Envoy's data path
 * (ext_proc exchange, header mutation, ORIGINAL_DST forwarding on `x-gateway-destination-endpoint`,
 * the response fed back through ext_proc). It is not a proxy to deploy: it buffers what Envoy
 * would stream where that keeps it short, and it is in Node, so it costs more CPU than Envoy.
 */

/**
 * Body bytes per message: Envoy hands body data on as it reads it, in buffer slices of at most
 * 16 KiB (its default read size), so a 200 KB body arrives as a dozen messages or more.
 */
export const ENVOY_BODY_CHUNK_BYTES = 16 * 1024;

export type StandinBodyMode = Extract<BodySendMode, 'FULL_DUPLEX_STREAMED' | 'BUFFERED'>;

/** How the ext_proc filter is configured. */
export interface ExtProcFilterOptions {
  /** `host:port` of the picker's gRPC port. */
  readonly target: string;
  /** TLS without verification (upstream's Envoy config), or plaintext when false. Default true. */
  readonly tls?: boolean;
  /** request_body_mode and response_body_mode. Default FULL_DUPLEX_STREAMED. */
  readonly bodyMode?: StandinBodyMode;
  /** Send protocol_config on the first message (Envoy ≥ 1.32 does). Default true. */
  readonly protocolConfig?: boolean;
  /** Body bytes per request_body/response_body message. Default ENVOY_BODY_CHUNK_BYTES. */
  readonly chunkBytes?: number;
}

/** A gRPC status the stream ended with. */
export interface StreamStatus {
  readonly code: number;
  readonly details: string;
}

/** One ext_proc stream as Envoy holds it: send messages, read answers one by one. */
export class ExtProcCall {
  readonly #call: ClientDuplexStream<ProcessingRequest, ProcessingResponse>;
  readonly #queue: ProcessingResponse[] = [];
  #waiter: (() => void) | undefined;
  #ended: StreamStatus | undefined;
  #firstAnswerAt: number | undefined;
  /** Resolves with the status the stream ended with (0 = OK). */
  readonly status: Promise<StreamStatus>;

  constructor(call: ClientDuplexStream<ProcessingRequest, ProcessingResponse>) {
    this.#call = call;
    this.status = new Promise((resolve) => {
      const end = (s: StreamStatus): void => {
        if (this.#ended !== undefined) return;
        this.#ended = s;
        this.#waiter?.();
        resolve(s);
      };
      call.on('data', (m: ProcessingResponse) => {
        this.#firstAnswerAt ??= performance.now();
        this.#queue.push(m);
        this.#waiter?.();
      });
      call.on('status', (s: { code: number; details: string }) => end({ code: s.code, details: s.details }));
      call.on('error', (e: ServiceError) => end({ code: e.code, details: e.details }));
    });
  }

  send(msg: ProcessingRequest): void {
    this.#call.write(msg);
  }

  /** The next answer; rejects when the stream ended first (with its status in the message) or after `timeoutMs`. */
  async next(timeoutMs = 30_000): Promise<ProcessingResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.#queue.shift();
      if (m !== undefined) return m;
      if (this.#ended !== undefined) throw new Error(`ext_proc stream ended (${this.#ended.code}: ${this.#ended.details}) before an answer`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no ext_proc answer in time');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(t);
          this.#waiter = undefined;
          resolve();
        };
      });
    }
  }

  /** When (performance.now(), ms) the first answer arrived, before anyone read it; undefined before. */
  get firstAnswerAt(): number | undefined {
    return this.#firstAnswerAt;
  }

  /** Answers already received and not read. */
  pending(): number {
    return this.#queue.length;
  }

  /** Envoy is done sending (half-close). */
  end(): void {
    this.#call.end();
  }

  /** Envoy resets the stream (client gone, message timeout). */
  cancel(): void {
    this.#call.cancel();
  }
}

/** An ext_proc gRPC client connected like Envoy's ext_proc cluster. */
export class EnvoyExtProcClient {
  readonly #client: Client;
  readonly options: Required<ExtProcFilterOptions>;

  constructor(options: ExtProcFilterOptions) {
    this.options = { tls: true, bodyMode: 'FULL_DUPLEX_STREAMED', protocolConfig: true, chunkBytes: ENVOY_BODY_CHUNK_BYTES, ...options };
    const Ctor = extProcClient();
    const creds = this.options.tls ? credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined }) : credentials.createInsecure();
    this.#client = new Ctor(this.options.target, creds, { 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  }

  /** Opens one stream (one HTTP request). */
  open(): ExtProcCall {
    const method = (this.#client as unknown as { Process: (m: Metadata) => ClientDuplexStream<ProcessingRequest, ProcessingResponse> }).Process.bind(this.#client);
    return new ExtProcCall(method(new Metadata()));
  }

  /** protocol_config as the first message carries it (undefined when configured off). */
  protocolConfig(): ProcessingRequest['protocol_config'] {
    if (!this.options.protocolConfig) return undefined;
    return { request_body_mode: this.options.bodyMode, response_body_mode: this.options.bodyMode };
  }

  close(): void {
    this.#client.close();
  }
}

/** Metadata namespaces as Envoy's metadata_context. */
export function metadataContext(m: FilterMetadata): PbMetadata {
  return { filter_metadata: Object.fromEntries(Object.entries(m).map(([ns, v]) => [ns, pbStruct(v as { readonly [k: string]: JsonValue })])) };
}

/**
 * request_headers as Envoy's filter sends them: lower-case names, raw_value bytes, the
 * pseudo-headers `:authority`, `:path`, `:method`, `:scheme` first, `x-request-id` generated when
 * absent (Envoy's generate_request_id default), `host` folded into `:authority`.
 */
export function envoyRequestHeaders(method: string, path: string, headers: Readonly<Record<string, string | readonly string[] | undefined>>, authority = 'gateway.local'): Record<string, string | readonly string[]> {
  const out: Record<string, string | readonly string[]> = { ':authority': authority, ':path': path, ':method': method, ':scheme': 'http' };
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    const name = k.toLowerCase();
    if (name === 'host') out[':authority'] = typeof v === 'string' ? v : (v[0] ?? authority);
    else if (name !== 'connection' && name !== 'keep-alive' && name !== 'transfer-encoding') out[name] = v;
  }
  if (out['x-request-id'] === undefined) out['x-request-id'] = randomUUID();
  return out;
}

/** `body` as request_body/response_body messages of at most `chunkBytes`, end_of_stream on the last (one empty message for an empty body). */
export function bodyMessages(kind: 'request_body' | 'response_body', body: Buffer, chunkBytes: number, endOfStream = true): ProcessingRequest[] {
  const out: ProcessingRequest[] = [];
  let offset = 0;
  do {
    const piece = body.subarray(offset, offset + chunkBytes);
    offset += piece.length;
    const last = offset >= body.length;
    out.push({ [kind]: { body: piece, ...(last && endOfStream ? { end_of_stream: true } : {}) } });
  } while (offset < body.length);
  return out;
}

/** Applies a HeaderMutation to a header record as Envoy does: set_headers (overwrite or append), then remove_headers. */
export function applyMutation(headers: Record<string, string>, m: PbHeaderMutation | undefined): Record<string, string> {
  for (const o of m?.set_headers ?? []) {
    const name = (o.header?.key ?? '').toLowerCase();
    const raw = o.header?.raw_value;
    const value = raw !== undefined && raw.length > 0 ? Buffer.from(raw).toString('latin1') : (o.header?.value ?? '');
    if (value === '' && o.keep_empty_value !== true) continue;
    // The deprecated `append` BoolValue wins when set; else append_action, whose default (0) appends.
    const action = o.append !== undefined ? (o.append.value === true ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD') : (o.append_action ?? 'APPEND_IF_EXISTS_OR_ADD');
    const prior = headers[name];
    if (action === 'ADD_IF_ABSENT' && prior !== undefined) continue;
    if (action === 'OVERWRITE_IF_EXISTS' && prior === undefined) continue;
    headers[name] = action === 'APPEND_IF_EXISTS_OR_ADD' && prior !== undefined ? `${prior},${value}` : value;
  }
  for (const name of m?.remove_headers ?? []) delete headers[name.toLowerCase()];
  return headers;
}

/** Options of the data-path stand-in. */
export interface EnvoyStandinOptions extends ExtProcFilterOptions {
  /** metadata_context for the request headers message (e.g. `envoy.lb.subset_hint`). */
  readonly requestMetadata?: (req: IncomingMessage) => FilterMetadata | undefined;
  /** Report the served endpoint on the response headers (`envoy.lb` / `x-gateway-destination-endpoint-served`). Default true. */
  readonly reportServed?: boolean;
  /** Called once per request whose first ext_proc answer came (the decision, or a refusal). */
  readonly onDecision?: (timing: DecisionTiming) => void;
  /** Listen address and port. Default 127.0.0.1, port 0 (any free port). */
  readonly host?: string;
  readonly port?: number;
}

/**
 * How long the picker took to answer a request's headers, as Envoy's filter would see it, in ms
 * (performance.now() clock, so it includes this process's own event-loop delays).
 */
export interface DecisionTiming {
  /** From sending request_headers to the first answer (the body streams in between: what a client waits). */
  readonly fromHeadersMs: number;
  /** From sending the body's end_of_stream (or the headers of a bodyless request) to the first answer. */
  readonly fromBodyEndMs: number;
  /** Request body bytes sent. */
  readonly bodyBytes: number;
}

/** What the stand-in saw of the last request, for assertions. */
export interface StandinExchange {
  /** Request headers as sent upstream (after the mutation; no pseudo-headers). */
  readonly upstreamHeaders: Record<string, string>;
  /** The endpoint it forwarded to, or undefined (refused or none named). */
  readonly destination: string | undefined;
  readonly upstreamBody: Buffer;
  /** The dynamic_metadata the picker set on the request-headers (or BUFFERED body) answer. */
  readonly dynamicMetadata: ProcessingResponse['dynamic_metadata'];
  /** streamed_response messages the request body came back in. */
  readonly requestBodyMessages: number;
}

/** The running data-path stand-in. */
export interface EnvoyStandin {
  readonly url: string;
  readonly port: number;
  readonly client: EnvoyExtProcClient;
  /** Exchanges seen, oldest first. */
  readonly exchanges: StandinExchange[];
  close(): Promise<void>;
}

function pseudoless(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).filter(([k]) => !k.startsWith(':')));
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function sendImmediate(res: ServerResponse, msg: ProcessingResponse): void {
  const ir = msg.immediate_response ?? {};
  const headers = applyMutation({}, ir.headers);
  const body = Buffer.from(ir.body ?? Buffer.alloc(0));
  res.writeHead(ir.status?.code ?? 200, { ...headers, 'content-length': String(body.length) });
  res.end(body);
}

/**
 * Starts an HTTP server on 127.0.0.1 that plays Envoy's data path for each client request: runs
 * the ext_proc exchange in `bodyMode`, applies the header mutation, forwards to the first endpoint
 * of `x-gateway-destination-endpoint` (ORIGINAL_DST `use_http_header`; none ⇒ 503 as Envoy's
 * "no healthy upstream"), feeds the upstream response back through ext_proc and returns the
 * mutated response. An immediate_response goes to the client as is; a failed ext_proc stream is a
 * 500 (failure_mode_allow false, upstream's FailClose). A client that leaves cancels the stream.
 */
export async function startEnvoyStandin(options: EnvoyStandinOptions): Promise<EnvoyStandin> {
  const client = new EnvoyExtProcClient(options);
  const { bodyMode, chunkBytes } = client.options;
  const exchanges: StandinExchange[] = [];

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const call = client.open();
    let finished = false;
    // The request to the endpoint, once sent: a client that leaves resets it, as Envoy resets the
    // upstream stream when the downstream one goes away (the server stops generating).
    let upstreamRequest: ClientRequest | undefined;
    let clientGone = false;
    res.on('close', () => {
      if (finished) return;
      clientGone = true;
      call.cancel();
      upstreamRequest?.destroy();
    });
    req.on('aborted', () => call.cancel());
    const failed = (why: string): void => {
      finished = true;
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`ext_proc failed: ${why}`);
      } else res.destroy();
      call.cancel();
    };
    // The ext_proc stream failing (picker gone, restarted, protocol error) fails the request at
    // once, as Envoy's filter does, even while the client is still sending its body.
    void call.status.then((s) => {
      if (!finished && s.code !== 0) failed(`stream ended ${s.code}: ${s.details}`);
    });
    try {
      const bodyless = req.headers['content-length'] === undefined ? req.headers['transfer-encoding'] === undefined : req.headers['content-length'] === '0';
      const reqHeaders = envoyRequestHeaders(req.method ?? 'GET', req.url ?? '/', req.headers);
      const md = options.requestMetadata?.(req);
      const pc = client.protocolConfig();
      const headersAt = performance.now();
      let bodyEndAt = headersAt;
      let bodyBytesSent = 0;
      const decided = (): void => {
        const at = call.firstAnswerAt;
        if (at !== undefined) options.onDecision?.({ fromHeadersMs: at - headersAt, fromBodyEndMs: Math.max(0, at - bodyEndAt), bodyBytes: bodyBytesSent });
      };
      call.send({ request_headers: { headers: headerMap(reqHeaders), ...(bodyless ? { end_of_stream: true } : {}) }, ...(md === undefined ? {} : { metadata_context: metadataContext(md) }), ...(pc === undefined ? {} : { protocol_config: pc }) });

      let headersAnswer: ProcessingResponse | undefined;
      let upstreamBody: Buffer[] = [];
      let bodyMsgs = 0;
      if (bodyless) {
        headersAnswer = await call.next();
        decided();
      } else if (bodyMode === 'FULL_DUPLEX_STREAMED') {
        // Body chunks go out as they arrive, without waiting for the headers answer.
        for await (const c of req) {
          bodyBytesSent += (c as Buffer).length;
          for (const m of bodyMessages('request_body', c as Buffer, chunkBytes, false)) call.send(m);
        }
        call.send({ request_body: { body: Buffer.alloc(0), end_of_stream: true } });
        bodyEndAt = performance.now();
        headersAnswer = await call.next();
        decided();
        if (headersAnswer.immediate_response === undefined) {
          for (;;) {
            const m = await call.next();
            const s = m.request_body?.response?.body_mutation?.streamed_response;
            if (s === undefined) throw new Error(`expected a streamed request body, got ${m.response ?? 'nothing'}`);
            bodyMsgs++;
            upstreamBody.push(Buffer.from(s.body ?? Buffer.alloc(0)));
            if (s.end_of_stream === true) break;
          }
        }
      } else {
        // BUFFERED: the headers answer comes first, then the whole body in one message.
        const body = await readAll(req);
        headersAnswer = await call.next();
        if (headersAnswer.immediate_response !== undefined) decided();
        else {
          bodyBytesSent = body.length;
          call.send({ request_body: { body, end_of_stream: true } });
          bodyEndAt = performance.now();
          const b = await call.next();
          // BUFFERED: the decision rides on the body's answer; time it from the body message.
          const now = performance.now();
          options.onDecision?.({ fromHeadersMs: now - headersAt, fromBodyEndMs: now - bodyEndAt, bodyBytes: bodyBytesSent });
          if (b.immediate_response !== undefined) headersAnswer = b;
          else {
            const common = b.request_body?.response;
            headersAnswer = { request_headers: { response: { ...headersAnswer.request_headers?.response, header_mutation: { set_headers: [...(headersAnswer.request_headers?.response?.header_mutation?.set_headers ?? []), ...(common?.header_mutation?.set_headers ?? [])], remove_headers: [...(headersAnswer.request_headers?.response?.header_mutation?.remove_headers ?? []), ...(common?.header_mutation?.remove_headers ?? [])] } } }, ...(b.dynamic_metadata === undefined ? {} : { dynamic_metadata: b.dynamic_metadata }) };
            upstreamBody = [common?.body_mutation?.body !== undefined ? Buffer.from(common.body_mutation.body) : body];
          }
        }
      }
      if (headersAnswer.immediate_response !== undefined) {
        finished = true;
        sendImmediate(res, headersAnswer);
        call.end();
        return;
      }
      const mutated = applyMutation(headerRecord(headerMap(reqHeaders)), headersAnswer.request_headers?.response?.header_mutation);
      const destination = mutated['x-gateway-destination-endpoint']?.split(',')[0]?.trim();
      const bodyBytes = Buffer.concat(upstreamBody);
      exchanges.push({ upstreamHeaders: pseudoless(mutated), destination, upstreamBody: bodyBytes, dynamicMetadata: headersAnswer.dynamic_metadata, requestBodyMessages: bodyMsgs });
      if (destination === undefined || destination === '') {
        finished = true;
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('no healthy upstream');
        call.cancel();
        return;
      }
      const sep = destination.lastIndexOf(':');
      const upstreamHeaders = pseudoless(mutated);
      if (!bodyless) upstreamHeaders['content-length'] = mutated['content-length'] ?? String(bodyBytes.length);
      if (clientGone) return;
      const upstream = await new Promise<IncomingMessage>((resolve, reject) => {
        const r = httpRequest({ host: destination.slice(0, sep), port: Number(destination.slice(sep + 1)), method: mutated[':method'] ?? 'GET', path: mutated[':path'] ?? '/', headers: { ...upstreamHeaders, host: mutated[':authority'] ?? 'gateway.local' } }, resolve);
        upstreamRequest = r;
        r.on('error', reject);
        r.end(bodyless ? undefined : bodyBytes);
      });

      // Response headers through ext_proc, with the served endpoint when configured.
      const respHeaders: Record<string, string | readonly string[] | undefined> = { ':status': String(upstream.statusCode ?? 502), ...upstream.headers };
      delete respHeaders['connection'];
      delete respHeaders['transfer-encoding'];
      const served = options.reportServed !== false ? { metadata_context: metadataContext({ 'envoy.lb': { 'x-gateway-destination-endpoint-served': destination } }) } : {};
      const noBody = upstream.headers['content-length'] === '0' || upstream.statusCode === 204 || upstream.statusCode === 304;
      call.send({ response_headers: { headers: headerMap(respHeaders as Record<string, string | readonly string[]>), ...(noBody ? { end_of_stream: true } : {}) }, ...served });
      const rh = await call.next();
      if (rh.immediate_response !== undefined) {
        finished = true;
        sendImmediate(res, rh);
        upstream.destroy();
        return;
      }
      const out = applyMutation(headerRecord(headerMap(respHeaders as Record<string, string | readonly string[]>)), rh.response_headers?.response?.header_mutation);
      const status = Number(out[':status'] ?? upstream.statusCode ?? 502);
      const clientHeaders = pseudoless(out);
      if (noBody) {
        finished = true;
        res.writeHead(status, clientHeaders);
        res.end();
        call.end();
        return;
      }
      if (bodyMode === 'BUFFERED') {
        const body = await readAll(upstream);
        call.send({ response_body: { body, end_of_stream: true } });
        const b = await call.next();
        const final = b.response_body?.response?.body_mutation?.body !== undefined ? Buffer.from(b.response_body.response.body_mutation.body) : body;
        finished = true;
        res.writeHead(status, { ...clientHeaders, 'content-length': String(final.length) });
        res.end(final);
        call.end();
        return;
      }
      // FULL_DUPLEX_STREAMED: chunks go out as the upstream sends them; answers are written as they come.
      delete clientHeaders['content-length'];
      res.writeHead(status, clientHeaders);
      const pump = (async () => {
        for (;;) {
          const m = await call.next();
          const s = m.response_body?.response?.body_mutation?.streamed_response;
          if (s === undefined) continue;
          if (s.body !== undefined && s.body.length > 0) res.write(Buffer.from(s.body));
          if (s.end_of_stream === true) return;
        }
      })();
      // An upstream that breaks first ends the exchange below; the pump's own end is then moot.
      pump.catch(() => undefined);
      for await (const c of upstream) for (const m of bodyMessages('response_body', c as Buffer, chunkBytes, false)) call.send(m);
      call.send({ response_body: { body: Buffer.alloc(0), end_of_stream: true } });
      await pump;
      finished = true;
      res.end();
      call.end();
    } catch (err) {
      if (!finished) failed(err instanceof Error ? err.message : String(err));
    }
  }

  const server: Server = createServer((req, res) => void handle(req, res));
  // CONNECT reaches no handler in Node (its 'connect' event): the stand-in's routes are no tunnel.
  refuseConnect(server, { allow: 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH', body: () => JSON.stringify({ error: { message: 'CONNECT is not routed here', type: 'invalid_request_error', param: null, code: 'method_not_allowed' } }) });
  server.maxHeadersCount = 0; // Node keeps only the first ~1000 header fields by default; Envoy passes them all
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    client,
    exchanges,
    close: () =>
      new Promise<void>((resolve) => {
        client.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
