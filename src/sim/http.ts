/**
 * Small HTTP helpers shared by the simulator's faces and its bootstrap (PD) server.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';

/** Largest request body the simulator reads (vLLM has no limit of its own; this only bounds memory). */
export const MAX_BODY_BYTES = 32 * 1024 * 1024;

/** The body as text, or `undefined` when it exceeds `limit` bytes (the rest is drained). */
export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) over = true;
    if (!over) chunks.push(chunk);
  }
  return over ? undefined : Buffer.concat(chunks).toString('utf8');
}

/** Writes a complete response with a Content-Length (keep-alive friendly). */
export function send(res: ServerResponse, status: number, body: string, contentType: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': contentType, 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, body: string): void {
  send(res, status, body, 'application/json');
}

/** The request path without its query string. */
export function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** A JSON object, or undefined for invalid JSON or a non-object value. */
export function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Reason phrases of the statuses the simulator answers with (SGLang puts them in `type`). */
export function statusPhrase(status: number): string {
  switch (status) {
    case 400:
      return 'Bad Request';
    case 404:
      return 'Not Found';
    case 405:
      return 'Method Not Allowed';
    case 409:
      return 'Conflict';
    case 413:
      return 'Payload Too Large';
    case 500:
      return 'Internal Server Error';
    case 503:
      return 'Service Unavailable';
    case 504:
      return 'Gateway Timeout';
    default:
      // Python's http.HTTPStatus phrases match Node's table for the other codes (429 Too Many
      // Requests, 502 Bad Gateway, …); the explicit cases above pin the ones a face prints today.
      return STATUS_CODES[status] ?? 'Error';
  }
}
