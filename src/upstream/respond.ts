import type { OutgoingHttpHeaders } from 'node:http';
import { constants as h2 } from 'node:http2';
import type { GatewayError } from '../core/errors.js';
import { errorResponse, sseErrorEvent } from '../gateway/index.js';
import type { ClientResponse } from './client-response.js';

export interface ErrorResponseOptions {
  readonly requestId: string;
  /** The response is an SSE stream: once started, an error becomes an SSE error event. */
  readonly sse: boolean;
  /** Ask the client to close the connection (HTTP/1.1 only: `Connection: close`). */
  readonly close?: boolean;
}

/** Headers of a JSON answer the gateway writes itself. */
export function jsonHeaders(body: string, requestId: string, close: boolean | undefined): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-request-id': requestId };
  if (close === true) headers['connection'] = 'close';
  return headers;
}

/**
 * Sends a gateway error as the OpenAI-style JSON body with its status (and `Retry-After` when the
 * error carries one). If the response has already started, an SSE stream gets an error event and
 * `[DONE]` (what vLLM does); any other body can only be cut.
 */
export function sendError(res: ClientResponse, err: GatewayError, opts: ErrorResponseOptions): void {
  if (res.writableEnded || res.destroyed) return;
  if (res.headersSent) {
    if (opts.sse) res.end(sseErrorEvent(err));
    else resetResponse(res, 'broken');
    return;
  }
  const { body, headers } = errorAnswer(err, opts.requestId, opts.close);
  res.writeHead(err.status, headers);
  res.end(body);
}

/** The core's answer to `err` (errorResponse), with `Connection: close` when asked (HTTP/1.1 framing). */
export function errorAnswer(err: GatewayError, requestId: string, close: boolean | undefined): { body: Buffer; headers: OutgoingHttpHeaders } {
  const { body, headers } = errorResponse(err, requestId);
  return { body, headers: close === true ? { ...headers, connection: 'close' } : headers };
}

/**
 * Ends a response that cannot be completed without ending it well-formed, so the client cannot
 * take what it got for the whole answer: HTTP/1.1 closes the connection (the body is short of its
 * length or chunked terminator); HTTP/2 resets the stream, with INTERNAL_ERROR for an answer that
 * broke and CANCEL for one the gateway gave up on (a client that stopped reading) — a reset with
 * NO_ERROR would not say the body is incomplete.
 */
export function resetResponse(res: ClientResponse, why: 'broken' | 'abandoned'): void {
  if ('stream' in res) res.stream.close(why === 'broken' ? h2.NGHTTP2_INTERNAL_ERROR : h2.NGHTTP2_CANCEL);
  res.destroy();
}

/**
 * Sends `value` as a JSON answer (`head`: the headers only, as a HEAD request gets them); returns
 * the bytes of body sent (for the request log).
 */
export function sendJson(res: ClientResponse, status: number, value: unknown, requestId: string, close?: boolean, head = false): number {
  const body = JSON.stringify(value);
  const headers = jsonHeaders(body, requestId, close);
  res.writeHead(status, headers);
  if (head) {
    res.end();
    return 0;
  }
  res.end(body);
  return Number(headers['content-length']);
}
