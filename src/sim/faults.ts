/**
 * Injected faults, for testing how a gateway copes with model servers that misbehave.
 *
 * Generation faults act on the generation routes (`/v1/chat/completions`, `/v1/completions`,
 * `/v1/responses`, `/v1/embeddings`) after the request body has been read; `/metrics`, the health
 * routes and `/v1/models` keep answering in every mode, because a hung engine whose metrics still
 * answer is exactly the case a gateway must detect. They are chosen per request with the header
 * `x-sim-fault: <mode>` or server-wide (`SimServerOptions.fault`, `RunningSimServer.setFaults()`,
 * `POST /sim/faults`); the header wins.
 *
 * Metric faults change the `/metrics` page (see metrics/page.ts `MetricsFault`).
 */
import type { ServerResponse } from 'node:http';
import type { MetricsFault } from './metrics/index.js';

export type { MetricsFault } from './metrics/index.js';

/**
 * A generation fault mode:
 * - `ok`: no fault;
 * - `hang`: read the body, then never answer (until the client disconnects);
 * - `hang-after-headers`: send the 200 headers (SSE headers for a stream), then nothing;
 * - `stall-mid-stream`: run the request; a stream stops after half of its tokens, a JSON body
 *   after half of its bytes; the connection stays open;
 * - `drop-after-body`: read the whole body, then destroy the connection without a response (an
 *   engine crashing on a prompt);
 * - `status:<code>`: answer HTTP `<code>` (400–599) in the runtime's own error shape.
 */
export type GenerationFaultMode = 'ok' | 'hang' | 'hang-after-headers' | 'stall-mid-stream' | 'drop-after-body' | `status:${number}`;

/** The fault modes without an argument, for help texts and validation. */
export const GENERATION_FAULT_MODES: readonly string[] = ['ok', 'hang', 'hang-after-headers', 'stall-mid-stream', 'drop-after-body', 'status:<code>'];

/** Every metrics fault, for help texts and validation. */
export const METRICS_FAULTS: readonly MetricsFault[] = ['none', 'no-stats', 'nan'];

/** The server-wide fault settings (`GET /sim/faults`). */
export interface SimFaults {
  readonly generation: GenerationFaultMode;
  readonly metrics: MetricsFault;
}

/** A parsed generation fault. */
export type GenerationFault =
  | { readonly kind: 'ok' | 'hang' | 'hang-after-headers' | 'stall-mid-stream' | 'drop-after-body' }
  | { readonly kind: 'status'; readonly status: number };

/** Parses a mode (`hang`, `status:503`, …); undefined when it is not one. */
export function parseGenerationFault(text: string): GenerationFault | undefined {
  const mode = text.trim();
  if (mode === 'ok' || mode === 'hang' || mode === 'hang-after-headers' || mode === 'stall-mid-stream' || mode === 'drop-after-body') return { kind: mode };
  const m = /^status:(\d{3})$/.exec(mode);
  if (m === null) return undefined;
  const status = Number(m[1]);
  return status >= 400 && status <= 599 ? { kind: 'status', status } : undefined;
}

/** Whether `value` names a metrics fault (`none`, `no-stats`, `nan`). */
export function isMetricsFault(value: unknown): value is MetricsFault {
  return typeof value === 'string' && (METRICS_FAULTS as readonly string[]).includes(value);
}

/** Why a mode was refused (for 400 answers and CLI usage errors). */
export function generationFaultHelp(given: string): string {
  return `unknown generation fault "${given}": expected one of ${GENERATION_FAULT_MODES.join(', ')} (status 400-599)`;
}

/**
 * The mutable server-wide settings. `update` validates everything before changing anything, so
 * a bad `POST /sim/faults` leaves the settings as they were.
 */
export class FaultSettings {
  #generation: GenerationFault = { kind: 'ok' };
  #generationText: GenerationFaultMode = 'ok';
  #metrics: MetricsFault = 'none';

  get generation(): GenerationFault {
    return this.#generation;
  }

  get metrics(): MetricsFault {
    return this.#metrics;
  }

  snapshot(): SimFaults {
    return { generation: this.#generationText, metrics: this.#metrics };
  }

  /** Applies the fields given; returns an error message (and changes nothing) on a bad value. */
  update(fields: Readonly<Record<string, unknown>>): string | undefined {
    for (const key of Object.keys(fields)) {
      if (key !== 'generation' && key !== 'metrics') return `unknown field "${key}": expected "generation" and/or "metrics"`;
    }
    const g = fields['generation'];
    const m = fields['metrics'];
    let parsed: GenerationFault | undefined;
    if (g !== undefined) {
      parsed = typeof g === 'string' ? parseGenerationFault(g) : undefined;
      if (parsed === undefined) return generationFaultHelp(String(g));
    }
    if (m !== undefined && !isMetricsFault(m)) return `unknown metrics fault "${String(m)}": expected one of ${METRICS_FAULTS.join(', ')}`;
    if (parsed !== undefined) {
      this.#generation = parsed;
      this.#generationText = (g as string).trim() as GenerationFaultMode;
    }
    if (m !== undefined) this.#metrics = m as MetricsFault;
    return undefined;
  }
}

/**
 * Makes the response's next `end(body)` send the headers and only the first half of the body,
 * then leave the connection open: a JSON answer that stops mid-body.
 */
export function truncateEnd(res: ServerResponse): void {
  const write = res.write.bind(res);
  const end = (chunk?: unknown): ServerResponse => {
    if (typeof chunk === 'string' || chunk instanceof Uint8Array) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      write(bytes.subarray(0, Math.floor(bytes.length / 2)));
    }
    return res;
  };
  res.end = end as ServerResponse['end'];
}
