import { Endpoint, type ModelServerMetrics } from '../../src/core/endpoint.js';
import { PrefixIndex } from '../../src/prefix/index.js';
import { CycleState } from '../../src/scheduling/cycle-state.js';
import type { PluginHandle, SchedulingRequest } from '../../src/scheduling/types.js';

export interface EndpointSpec {
  readonly inFlight?: number;
  readonly metrics?: Partial<ModelServerMetrics>;
  /** Milliseconds since the scrape (relative to `NOW`). Default 0. */
  readonly ageMs?: number;
  readonly inFlightAtScrape?: number;
}

/** The clock the test handle reports. */
export const NOW = 1_000_000;

export function endpoint(i: number, spec: EndpointSpec = {}): Endpoint {
  const e = new Endpoint({ address: `127.0.0.${i + 2}`, port: 8000, name: `pod-${i}`, podName: `pod-${i}`, labels: {} });
  e.inFlight = spec.inFlight ?? 0;
  if (spec.metrics !== undefined) {
    e.metrics = { waitingRequests: 0, runningRequests: 0, kvCacheUsage: 0, ...spec.metrics };
    e.metricsAt = NOW - (spec.ageMs ?? 0);
    e.inFlightAtScrape = spec.inFlightAtScrape ?? e.inFlight;
  }
  return e;
}

export function endpoints(specs: readonly EndpointSpec[]): Endpoint[] {
  return specs.map((s, i) => endpoint(i, s));
}

/** A scheduling request; `prompt` is the text prefix-aware plugins judge it by. */
export function request(overrides: Partial<Omit<SchedulingRequest, 'promptText'>> & { prompt?: string } = {}): SchedulingRequest {
  const { prompt, ...rest } = overrides;
  return { requestId: 'r', model: 'm', targetModel: 'm', criticality: 'Standard', promptTokens: 10, body: undefined, state: new CycleState(), promptText: () => prompt, ...rest };
}

export function handle(index = new PrefixIndex()): PluginHandle {
  return { prefixIndex: index, stalenessMs: 200, now: () => NOW };
}
