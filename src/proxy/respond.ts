import type { OutgoingHttpHeaders } from 'node:http';
import { toOpenAIError, type GatewayError } from '../core/errors.js';
import type { ClientResponse } from './client.js';

export interface ErrorResponseOptions {
  readonly requestId: string;
  /** The response is an SSE stream: once started, an error becomes an SSE error event. */
  readonly sse: boolean;
  /** Ask the client to close the connection (HTTP/1.1 only: `Connection: close`). */
  readonly close?: boolean;
}

/** The SSE error event and terminator that end a stream which has already started (vLLM's shape). */
export function sseErrorEvent(err: GatewayError): string {
  return `data: ${JSON.stringify(toOpenAIError(err))}\n\ndata: [DONE]\n\n`;
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
    else res.destroy();
    return;
  }
  const body = JSON.stringify(toOpenAIError(err));
  const headers = jsonHeaders(body, opts.requestId, opts.close);
  if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(err.retryAfterSeconds);
  if (err.allow !== undefined) headers['allow'] = err.allow;
  res.writeHead(err.status, headers);
  res.end(body);
}

export function sendJson(res: ClientResponse, status: number, value: unknown, requestId: string, close?: boolean): void {
  const body = JSON.stringify(value);
  res.writeHead(status, jsonHeaders(body, requestId, close));
  res.end(body);
}
