import type { ServerResponse } from 'node:http';
import { toOpenAIError, type GatewayError } from '../core/errors.js';

/**
 * Sends a gateway error as the OpenAI-style JSON body with its status (and `Retry-After` when the
 * error carries one). If the response has already started, an SSE stream gets an error event and
 * `[DONE]` (what vLLM does); any other body can only be cut.
 */
export function sendError(res: ServerResponse, err: GatewayError, opts: { requestId: string; sse: boolean; close?: boolean }): void {
  if (res.writableEnded || res.destroyed) return;
  const body = JSON.stringify(toOpenAIError(err));
  if (res.headersSent) {
    if (opts.sse) {
      res.end(`data: ${body}\n\ndata: [DONE]\n\n`);
    } else {
      res.destroy();
    }
    return;
  }
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'x-request-id': opts.requestId,
  };
  if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(err.retryAfterSeconds);
  if (opts.close === true) headers['connection'] = 'close';
  res.writeHead(err.status, headers);
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, requestId: string): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-request-id': requestId });
  res.end(body);
}
