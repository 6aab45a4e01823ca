import type { Endpoint } from '../core/endpoint.js';
import type { ErrorCode } from '../core/errors.js';
import type { HeaderEdit } from '../core/headers.js';
import type { PassiveHealth } from '../endpoints/passive-health.js';
import type { Logger } from '../observability/logger.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import type { PoolModels } from './backend-choice.js';
import type { PdPlan } from './pd.js';
import type { Pipeline } from './pipeline.js';
import type { UpstreamTimeouts } from './timeouts.js';

/*
 * The vocabulary between a data plane and the gateway core's request handle (request.ts): what a
 * data plane tells it, and what it answers.
 */

/** What a data plane knows when a request arrives. */
export interface RequestInit {
  /** The client's `x-request-id`, if it sent one. */
  readonly requestId?: string;
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly clientAddress?: string;
  /** The listener port, for the log line. */
  readonly port?: number;
  /**
   * Who carries the request to the model server: the gateway itself (the proxy, the PD sidecar;
   * the default) or Envoy (the endpoint picker). Envoy owns `X-Forwarded-For` and, told to clear
   * its route cache, matches routes again on the edited headers, so behind Envoy the route-matching
   * headers (`x-gateway-model-name`, `x-gateway-base-model-name`) stay; the other control headers go.
   */
  readonly forwarder?: 'gateway' | 'envoy';
}

/** Where and how to send a request: the endpoints to try in order, the body and headers. */
export interface Decision {
  /** Primary first, then fallbacks for a retry; at most MAX_ATTEMPTS; never empty. */
  readonly endpoints: readonly Endpoint[];
  /** The body to send (model rewritten, usage requested); undefined for a bodyless request. */
  readonly body: Buffer | undefined;
  /** Changes to the client's headers for the upstream request. */
  readonly headers: readonly HeaderEdit[];
  /** The client asked for an SSE stream. */
  readonly stream: boolean;
  /** Whole-request deadline, and the setting it comes from (for the error message). */
  readonly timeout: { readonly ms: number; readonly setting: string } | undefined;
  /** How long to wait for the model server, by phase. */
  readonly timeouts: UpstreamTimeouts;
  /**
   * Set when the request is disaggregated: its prefill and decode legs (then `endpoints` is the
   * decode endpoint alone; the PD machine, pd-run.ts, runs the legs and retries a failed pair).
   */
  readonly pd: PdPlan | undefined;
}

/** Which leg an attempt is: the one whose answer the client gets, or a disaggregated request's prefill. */
export type Leg = 'main' | 'prefill';

/** What the data plane should do with the response it is about to send. */
export interface ResponsePlan {
  /** Changes to the upstream's response headers for the client. */
  readonly headers: readonly HeaderEdit[];
  /** The response is an SSE stream (an error after it started becomes an SSE error event). */
  readonly sse: boolean;
}

/** How the request ended, as the data plane saw it. */
export interface Outcome {
  /** The status the client got (or would have got: the data plane's own view). */
  readonly status: number;
  /** Bytes sent to the client. */
  readonly bytesOut: number;
  /** Set when the response was cut short after it started (client gone, upstream reset, timeout). */
  readonly interrupted?: ErrorCode;
  /** What cut it short, in words (which timeout fired, which leg failed), for the log line. */
  readonly detail?: string;
}

/** What the gateway core needs from its owner to run requests. */
export interface RequestDeps {
  readonly pipeline: Pipeline;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  readonly passiveHealth: PassiveHealth;
  readonly timeouts: UpstreamTimeouts;
  /** The base model of a LoRA adapter, where the pods' model lists say. */
  readonly baseModelOf: (model: string) => string | undefined;
  /** Whether a model name may become a metric label (see Gateway.knownModel). */
  readonly knownModel: (model: string) => boolean;
  /** What each pool's pods serve now, for the backend choice (kept current by the Gateway). */
  readonly poolModels: () => PoolModels;
  /** The body limit of a pool served by pool key, in bytes (Gateway.poolBodyLimit). */
  readonly poolBodyLimit: (poolKey: string) => number;
}

