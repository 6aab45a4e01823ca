/**
 * How the Triton OpenAI frontend's answer to `stream_options` changed across Triton releases
 * (docs/simulator.md "Triton versions"). Server versions are `2.N`; the NGC containers are
 * numbered by month: 25.08 ships 2.60, 25.11 ships 2.63.
 *
 * - before 2.60: the request schemas forbid unknown fields (pydantic `extra="forbid"`,
 *   triton-inference-server/server issue #8444) and have no `stream_options`, so any request
 *   carrying the field is refused by FastAPI with 422 and its validation-error list;
 * - 2.60 to 2.62: `stream_options` is in the schema and usage is reported for the vLLM backend
 *   (PRs #8264, #8313); a TensorRT-LLM model refuses `include_usage` with 400 (`{"detail": …}`);
 * - from 2.63 (25.11): usage for TensorRT-LLM too (PRs #8326, #8510): accepted.
 */
import type { ErrorAnswer } from './runtimes.js';

/** The newest behaviour, used when no version is given. */
export const TRITON_LATEST_MINOR = 63;

/** The minor number of a `2.N` server version; undefined for anything else. */
export function parseTritonVersion(text: string): number | undefined {
  const m = /^2\.(\d{1,3})(?:\.\d+)?$/.exec(text.trim());
  return m === null ? undefined : Number(m[1]);
}

/**
 * The refusal of a chat or completions body that carries `stream_options`, by a Triton server of
 * version `2.<minor>` with a TensorRT-LLM model; undefined when it is served.
 */
export function tritonStreamOptionsRefusal(minor: number, body: Readonly<Record<string, unknown>>): ErrorAnswer | undefined {
  if (!Object.hasOwn(body, 'stream_options')) return undefined;
  const options = body['stream_options'];
  if (minor < 60) {
    // FastAPI's RequestValidationError body: one entry per pydantic error, without pydantic's `url`.
    const detail = [{ type: 'extra_forbidden', loc: ['body', 'stream_options'], msg: 'Extra inputs are not permitted', input: options }];
    return { status: 422, body: JSON.stringify({ detail }) };
  }
  const includeUsage = options !== null && typeof options === 'object' && (options as { include_usage?: unknown }).include_usage === true;
  if (minor < 63 && includeUsage) {
    // The wording is ours: our sources give the status, not the message.
    return { status: 400, body: JSON.stringify({ detail: '`stream_options.include_usage` is currently supported only for the vLLM backend' }) };
  }
  return undefined;
}
