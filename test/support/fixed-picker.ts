import { GatewayError } from '../../src/core/errors.js';
import type { HeaderEdit } from '../../src/core/headers.js';
import type { FilterMetadata, HeaderRecord, RequestProcessor, RequestProcessorFactory, RequestVerdict } from '../../src/extproc/processor.js';
import { refusalOf } from '../../src/extproc/refusal.js';

/** What a FixedPicker saw, across all its streams. */
export interface PickerLog {
  readonly requests: { headers: HeaderRecord; metadata: FilterMetadata }[];
  readonly responses: { headers: HeaderRecord; metadata: FilterMetadata }[];
  /** Body bytes seen per chunk call, all streams. */
  readonly chunks: number[];
  completed: number;
  cancelled: number;
}

export interface FixedPickerOptions {
  /** `ip:port` (or a `,`-list) every request goes to. */
  readonly endpoint: string;
  /** Request body limit; default 1 MiB. */
  readonly maxBodyBytes?: number;
  /** Rewrites the body before it goes upstream (undefined: unchanged). */
  readonly rewrite?: (body: Buffer) => Buffer;
}

/**
 * A trivial RequestProcessor for wire tests: sends every request to one fixed endpoint, names it
 * in the header and in `envoy.lb` dynamic metadata, sets `content-length`, marks responses with
 * `x-picked-by: fixed`, and counts completed/cancelled streams.
 */
export function fixedPicker(options: FixedPickerOptions): { factory: RequestProcessorFactory; log: PickerLog } {
  const log: PickerLog = { requests: [], responses: [], chunks: [], completed: 0, cancelled: 0 };
  const limit = options.maxBodyBytes ?? 1024 * 1024;
  const forward = (body: Buffer | undefined): RequestVerdict => {
    const out = body === undefined || options.rewrite === undefined ? body : options.rewrite(body);
    const edits: HeaderEdit[] = [
      { op: 'set', name: 'x-gateway-destination-endpoint', value: options.endpoint },
      { op: 'remove', name: 'x-gateway-inference-objective' },
    ];
    if (out !== undefined) edits.push({ op: 'set', name: 'content-length', value: String(out.length) });
    return { kind: 'forward', headerEdits: edits, ...(out === undefined || options.rewrite === undefined ? {} : { body: out }), metadata: { 'envoy.lb': { 'x-gateway-destination-endpoint': options.endpoint } } };
  };
  const factory = (): RequestProcessor => {
    const parts: Buffer[] = [];
    return {
      async headers(headers, endOfStream, metadata) {
        log.requests.push({ headers, metadata });
        return endOfStream ? forward(undefined) : { kind: 'await-body', maxBodyBytes: limit };
      },
      async bodyChunk(chunk, endOfStream) {
        log.chunks.push(chunk.length);
        parts.push(chunk);
        return endOfStream ? forward(Buffer.concat(parts)) : undefined;
      },
      bodyTooLarge(maxBodyBytes) {
        return refusalOf(new GatewayError('body_too_large', `request body larger than ${maxBodyBytes} bytes`));
      },
      async responseHeaders(headers, _eos, metadata) {
        log.responses.push({ headers, metadata });
        return [{ op: 'set', name: 'x-picked-by', value: 'fixed' }];
      },
      async responseBody(chunk) {
        return chunk;
      },
      async responseTrailers() {},
      completed() {
        log.completed++;
      },
      cancelled() {
        log.cancelled++;
      },
    };
  };
  return { factory, log };
}

/** Polls `check` until it is true or `timeoutMs` passes (generous: busy machines). */
export async function until(check: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
