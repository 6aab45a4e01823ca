import type { Logger } from '../observability/logger.js';
import { AnswerQueue, type AnswerSink } from './answer-queue.js';
import { decodeRequest, encodeResponse } from './codec.js';
import type { GrpcServerCall } from './grpc-h2/call.js';
import { healthMethods } from './grpc-h2/health-service.js';
import { GrpcH2Server, type MethodHandler } from './grpc-h2/server.js';
import { GrpcCode } from './grpc-h2/status.js';
import { PickerHealth } from './health.js';
import type { ProcessingRequest, ProcessingResponse } from './messages.js';
import { PROCESS_METHOD_PATH } from './proto.js';
import type { RequestProcessorFactory } from './processor.js';
import { ExtProcStream, StreamError, type StreamOptions } from './stream.js';
import { serverCertificate } from './tls.js';

/** Upstream's defaults (GIE pkg/epp/server/options.go): ext_proc on 9002, gRPC health on 9003. */
export const DEFAULT_GRPC_PORT = 9002;
export const DEFAULT_GRPC_HEALTH_PORT = 9003;

/**
 * Largest gRPC message accepted or sent, bytes. BUFFERED mode sends a whole request body in one
 * message, so this bounds the bodies that mode can carry: the pool's default body limit (16 MiB)
 * plus 1 MiB, so a buffered body just over the limit still arrives and gets the pool's 413 (a body
 * past this ends the stream, which Envoy answers itself); four times gRPC's 4 MiB default.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 17 * 1024 * 1024;

/** HTTP/2 streams one Envoy connection may hold open at once (one per HTTP request in flight; Envoy multiplexes them on few connections). */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 4096;

/** Time streams get to finish on close() before they are cut (upstream's Helm chart gives the pod 130 s; the caller passes its own). */
export const DEFAULT_DRAIN_MS = 30_000;

/** Messages queued on one stream before reading from it pauses (gRPC flow control then holds Envoy back). */
const QUEUE_HIGH_WATER = 32;

export interface ExtProcServerOptions {
  /** Address both ports bind; default 0.0.0.0. */
  readonly address?: string;
  /** ext_proc port (0 = any free port); default 9002. */
  readonly grpcPort?: number;
  /** gRPC health port, plaintext for kubelet probes (0 = any free port); default 9003. */
  readonly healthPort?: number;
  /** false: plaintext (`--insecure`). Otherwise TLS with `tls.crt`/`tls.key` from `certPath`, or self-signed when absent. */
  readonly tls: false | { readonly certPath?: string };
  /** Makes the processor of each stream. The integration phase passes one backed by the core. */
  readonly processor: RequestProcessorFactory;
  /** Readiness (config loaded, endpoints known): drives the `readiness` and ext_proc health services. */
  readonly ready: () => boolean;
  readonly stream?: StreamOptions;
  readonly maxMessageBytes?: number;
  readonly maxConcurrentStreams?: number;
  readonly logger: Logger;
}

/** A running endpoint picker gRPC server. */
export interface ExtProcServer {
  readonly grpcPort: number;
  readonly healthPort: number;
  /** True when serving TLS with a certificate generated at start. */
  readonly selfSigned: boolean;
  readonly tls: boolean;
  /** Streams open now. */
  activeStreams(): number;
  /**
   * Drains: readiness goes NOT_SERVING, no new streams are accepted, open streams get up to
   * `drainMs` (default 30 s) to finish and are then cut (their processors hear cancelled()).
   */
  close(drainMs?: number): Promise<void>;
}

/**
 * Starts `envoy.service.ext_proc.v3.ExternalProcessor` (plus grpc.health.v1 on the same port, for
 * Envoy's cluster health check) on the gRPC port and grpc.health.v1 alone on the health port.
 * Rejects with the bind error (address in use, …) or a certificate read error.
 */
export async function startExtProcServer(options: ExtProcServerOptions): Promise<ExtProcServer> {
  const address = options.address ?? '0.0.0.0';
  const maxMessage = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const log = options.logger;
  // The certificate first: a read error leaves nothing started behind.
  const cert = options.tls === false ? undefined : await serverCertificate(options.tls.certPath);
  const health = new PickerHealth(options.ready);
  const open = new Set<ExtProcStream>();
  // A body-mode mismatch repeats on every request: said once per process, then counted.
  let mismatches = 0;
  const onModeMismatch = (hint: string): void => {
    if (mismatches++ === 0) log.warn({ hint }, 'ext_proc body mode mismatch');
  };
  const streamOptions: StreamOptions = { ...options.stream, onInternalError: (err) => log.error({ err }, 'request processor failed'), onModeMismatch };
  const methods = new Map<string, MethodHandler>(healthMethods(health));
  methods.set(PROCESS_METHOD_PATH, (call) => serveStream(call, new ExtProcStream(options.processor, streamOptions), open, log));
  const grpc = new GrpcH2Server({
    ...(cert === undefined ? {} : { tls: { cert: cert.cert, key: cert.key } }),
    methods,
    limits: { maxReceiveBytes: maxMessage, maxSendBytes: maxMessage },
    maxConcurrentStreams: options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
    // Pings find a dead Envoy connection (its streams' processors then hear cancelled()). Envoy's
    // own connection_keepalive pings (every few seconds) are answered by node:http2, never refused.
    keepalive: { timeMs: 60_000, timeoutMs: 20_000 },
  });
  // Kubelet probes: a few bytes each, a handful at once.
  const healthServer = new GrpcH2Server({ methods: healthMethods(health), limits: { maxReceiveBytes: 4096, maxSendBytes: 4096 }, maxConcurrentStreams: 100 });
  let grpcPort: number;
  let healthPort: number;
  try {
    grpcPort = await grpc.listen(address, options.grpcPort ?? DEFAULT_GRPC_PORT);
    healthPort = await healthServer.listen(address, options.healthPort ?? DEFAULT_GRPC_HEALTH_PORT);
  } catch (err) {
    health.close();
    grpc.destroy();
    healthServer.destroy();
    throw err;
  }
  log.info({ grpcPort, healthPort, tls: cert !== undefined, selfSigned: cert?.selfSigned ?? false }, 'endpoint picker listening');

  let closing: Promise<void> | undefined;
  return {
    grpcPort,
    healthPort,
    selfSigned: cert?.selfSigned ?? false,
    tls: cert !== undefined,
    activeStreams: () => open.size,
    close(drainMs = DEFAULT_DRAIN_MS) {
      closing ??= (async () => {
        health.drain();
        await grpc.close(drainMs, () => log.warn({ streams: open.size }, 'drain deadline passed: cutting open streams'));
        for (const s of open) s.end();
        health.close();
        healthServer.destroy();
      })();
      return closing;
    },
  };
}

/** The answer queue's sink: each answer encoded by the picker's codec and framed onto the call. */
function answerSink(call: GrpcServerCall): AnswerSink {
  const stream = call.stream;
  return {
    write(msg) {
      let bytes: Buffer;
      try {
        bytes = encodeResponse(msg);
      } catch {
        call.end({ code: GrpcCode.INTERNAL, details: 'Error serializing response' });
        return true;
      }
      return call.write(bytes);
    },
    once: (event, listener) => stream.once(event, listener),
    off: (event, listener) => stream.off(event, listener),
  };
}

/**
 * Carries one gRPC stream: Envoy's messages go through the state machine one at a time, in order
 * (reading pauses while a backlog waits; a message the state machine answers at once, such as a
 * streamed response chunk, costs no promise), answers are written in order with backpressure
 * (streamed response-body pieces ready together merged: answer-queue.ts), a StreamError ends the
 * stream with its status, and however the stream ends the state machine hears end() once.
 */
function serveStream(call: GrpcServerCall, stream: ExtProcStream, open: Set<ExtProcStream>, log: Logger): void {
  open.add(stream);
  let over = false;
  /** Envoy half-closed: once the inbox is handled, our side closes too. */
  let halfClosed = false;
  /** A message (or a full sink) is being waited for; the inbox waits behind it. */
  let waiting = false;
  /** pump() is running (a message that arrives meanwhile is left to its loop, keeping the order). */
  let pumping = false;
  /** Reading is paused behind a backlog. */
  let paused = false;
  const inbox: ProcessingRequest[] = [];
  const answers = new AnswerQueue(answerSink(call));
  const finish = (): void => {
    if (over) return;
    over = true;
    inbox.length = 0;
    answers.close();
    open.delete(stream);
    stream.end();
  };
  const fail = (err: unknown): void => {
    if (over) return;
    const e = err instanceof StreamError ? err : undefined;
    if (e === undefined) log.error({ err }, 'ext_proc stream failed');
    else log.warn({ code: e.code, reason: e.message }, 'ext_proc stream ended: protocol error');
    finish();
    call.end({ code: e?.code ?? GrpcCode.INTERNAL, details: e?.message ?? 'internal error' });
  };
  const resumeAfter = (wait: Promise<unknown>): void => {
    waiting = true;
    wait.then(
      () => {
        waiting = false;
        pump();
      },
      (err: unknown) => {
        waiting = false;
        fail(err);
      },
    );
  };
  const pump = (): void => {
    if (pumping) return;
    pumping = true;
    try {
      drain();
    } finally {
      pumping = false;
    }
  };
  const drain = (): void => {
    while (!over && !waiting) {
      const msg = inbox.shift();
      if (msg === undefined) break;
      let out: ProcessingResponse[] | Promise<ProcessingResponse[]>;
      try {
        out = stream.receiveNow(msg);
      } catch (err) {
        fail(err);
        return;
      }
      if (!Array.isArray(out)) {
        resumeAfter(out.then((a) => (over ? undefined : answers.send(a))));
        break;
      }
      const full = answers.send(out);
      if (full !== undefined) resumeAfter(full);
    }
    if (over || waiting) return;
    if (paused) {
      paused = false;
      call.resume();
    }
    if (halfClosed) {
      answers.flush();
      finish();
      call.end();
    }
  };
  call.start({
    onMessage(bytes) {
      if (over) return;
      let msg: ProcessingRequest;
      try {
        msg = decodeRequest(bytes);
      } catch {
        // grpc-js's status for a message its deserializer refused.
        finish();
        call.end({ code: GrpcCode.INTERNAL, details: 'Error deserializing request' });
        return;
      }
      inbox.push(msg);
      if (inbox.length >= QUEUE_HIGH_WATER && !paused) {
        paused = true;
        call.pause();
      }
      if (!waiting) pump();
    },
    onHalfClose() {
      // Envoy half-closed: answer what is queued, then close our side.
      halfClosed = true;
      if (!waiting) pump();
    },
    onClose: finish,
  });
}
