import type { RuleConfig } from '../config/snapshot.js';
import type { Endpoint } from '../core/endpoint.js';
import type { Logger } from '../observability/logger.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { SchedulingResult } from '../scheduling/types.js';
import type { Prepared } from './pipeline.js';
import type { RequestInit } from './request.js';
import type { Usage } from './response-observer.js';

/** Everything the `Request Handled` line and the request metrics are made of. */
export interface RequestRecordInput {
  readonly requestId: string;
  readonly init: RequestInit;
  readonly rule: RuleConfig | undefined;
  readonly prepared: Prepared | undefined;
  readonly result: SchedulingResult | undefined;
  readonly endpoint: Endpoint | undefined;
  readonly attempts: number;
  readonly queueWaitMs: number | undefined;
  readonly ttftMs: number | undefined;
  readonly durationMs: number;
  readonly status: number;
  readonly code: string | undefined;
  /** The failure's message (bounded), when the request failed or was cut short. */
  readonly detail?: string | undefined;
  readonly usage: Usage | undefined;
  readonly bytesOut: number;
  readonly pd: PdLog | undefined;
  /** Gaps between streamed chunks, seconds. */
  readonly itlS?: readonly number[];
}

/** A prefill/decode pool's fields of the log line. */
export interface PdLog {
  readonly disaggregated: boolean;
  /** `disaggregated`, `cached-on-decode`, `prefill-saturated`, `pinned` (a PD sidecar ran the picker's pair), or `prefill-fallback` (vLLM ran on decode after the prefill failed). */
  readonly reason: string;
  readonly fallback?: string;
  readonly uncachedOnDecode: number;
  readonly prefillPod?: string;
  readonly prefillRole?: string;
  readonly prefillHeadersMs?: number | undefined;
  readonly decodePod?: string;
  readonly decodeRole?: string;
  readonly decodeHeadersMs?: number | undefined;
  /** Streamed, disaggregated requests: the decode's first byte after the prefill answered (ms). */
  readonly kvTransferWaitMs?: number;
  /** Pairs that failed before the one logged above (a retried request), with the leg blamed and why. */
  readonly failedPairs?: readonly FailedPair[];
}

/** A prefill/decode pair that failed before any byte reached the client. */
export interface FailedPair {
  readonly prefillPod: string;
  readonly decodePod: string;
  /** `prefill`, `decode`, `both` (a KV handshake that never completed) or `none` (a refusal). */
  readonly blame: string;
  /** The error, at most 300 characters. */
  readonly error: string;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** The one `Request Handled` line and metrics record every request ends with. */
/** Error messages are logged up to this many characters (they can quote client input). */
const MAX_LOGGED_DETAIL = 300;

/** Paths are logged up to this many characters (a URL can be 16 KiB of anything). */
const MAX_LOGGED_PATH = 512;

/** The metric label of a model name: itself when the gateway knows it, else one bucket for all others. */
export const OTHER_MODEL = 'other';

export function logRequest(deps: { readonly logger: Logger; readonly metrics: GatewayMetrics; readonly knownModel: (name: string) => boolean }, a: RequestRecordInput): void {
  const { prepared, endpoint, usage } = a;
  const primary = a.result?.primary;
  let pluginFields: Record<string, string | number> | undefined;
  if (prepared !== undefined && endpoint !== undefined) {
    for (const c of prepared.backend.controls.logFields) {
      const fields = c.logFields?.(prepared.request, endpoint);
      if (fields !== undefined) pluginFields = { ...pluginFields, ...fields };
    }
  }
  deps.logger.info(
    {
      requestId: a.requestId,
      method: a.init.method,
      path: a.init.path.length > MAX_LOGGED_PATH ? `${a.init.path.slice(0, MAX_LOGGED_PATH)}…` : a.init.path,
      port: a.init.port,
      rule: a.rule?.id,
      pool: prepared?.backendName,
      pod: endpoint?.podName,
      endpoint: endpoint?.name,
      address: endpoint?.key,
      model: prepared?.model,
      targetModel: prepared?.targetModel,
      criticality: prepared?.criticality,
      objective: prepared?.objective,
      status: a.status,
      code: a.code,
      ...(a.detail === undefined || a.code === undefined ? {} : { error: a.detail.length > MAX_LOGGED_DETAIL ? `${a.detail.slice(0, MAX_LOGGED_DETAIL)}…` : a.detail }),
      attempts: a.attempts,
      queueWaitMs: a.queueWaitMs === undefined ? undefined : round(a.queueWaitMs),
      ttftMs: a.ttftMs === undefined ? undefined : round(a.ttftMs),
      itlMeanMs: a.itlS === undefined || a.itlS.length === 0 ? undefined : round((1000 * a.itlS.reduce((s, g) => s + g, 0)) / a.itlS.length),
      durationMs: round(a.durationMs),
      promptTokens: usage?.promptTokens,
      completionTokens: usage?.completionTokens,
      cachedTokens: usage?.cachedTokens,
      usageEstimated: usage?.estimated,
      score: primary?.scores[0] === undefined ? undefined : round(primary.scores[0]),
      scores: primary?.breakdown,
      ...pluginFields,
      ...(a.pd === undefined ? {} : { pd: roundTimes(a.pd) }),
      bytesOut: a.bytesOut,
    },
    'Request Handled',
  );
  if (prepared === undefined) {
    // Refused before a backend was chosen (no route, invalid JSON, a body over the limit, an
    // unknown model): counted too, without pool or model (the request named none the gateway took).
    deps.metrics.record({ pool: '', model: '', targetModel: '', status: a.status, code: a.code ?? '', durationS: a.durationMs / 1000, ttftS: undefined, queueWaitS: undefined, promptTokens: undefined, completionTokens: undefined, cachedTokens: undefined });
    return;
  }
  deps.metrics.record({
    pool: prepared.backendName,
    model: label(deps, prepared.model),
    targetModel: label(deps, prepared.targetModel),
    status: a.status,
    code: a.code ?? '',
    durationS: a.durationMs / 1000,
    ttftS: a.ttftMs === undefined ? undefined : a.ttftMs / 1000,
    queueWaitS: a.queueWaitMs === undefined ? undefined : a.queueWaitMs / 1000,
    promptTokens: usage?.promptTokens,
    completionTokens: usage?.completionTokens,
    cachedTokens: usage?.cachedTokens,
    ...(usage?.estimated === true ? { usageEstimated: true } : {}),
    ...(a.pd === undefined ? {} : { pdReason: a.pd.reason }),
    ...(a.itlS === undefined ? {} : { itlS: a.itlS }),
  });
}

function roundTimes(pd: PdLog): PdLog {
  const r = (v: number | undefined): number | undefined => (v === undefined ? undefined : round(v));
  return { ...pd, prefillHeadersMs: r(pd.prefillHeadersMs), decodeHeadersMs: r(pd.decodeHeadersMs), ...(pd.kvTransferWaitMs === undefined ? {} : { kvTransferWaitMs: round(pd.kvTransferWaitMs) }) };
}

/**
 * Counts an InferenceModelRewrite decision. The rewrite's name and target are configured; the
 * model is too when an exact match chose the rule, but a generic rule matches any name a client
 * sends, so there it is labelled only if known (else `other`).
 */
export function recordRewrite(deps: { readonly metrics: GatewayMetrics; readonly knownModel: (name: string) => boolean }, prepared: Prepared): void {
  const { rewrite, model, targetModel } = prepared;
  if (rewrite === undefined || model === undefined || targetModel === undefined) return;
  deps.metrics.recordModelRewrite(rewrite.name, rewrite.generic ? label(deps, model) : model, targetModel);
}

/** Client-chosen names never become unbounded label sets. */
function label(deps: { readonly knownModel: (name: string) => boolean }, name: string | undefined): string {
  if (name === undefined) return '';
  return deps.knownModel(name) ? name : OTHER_MODEL;
}
