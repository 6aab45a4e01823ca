import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import { blockHashes, TOKENS_PER_BLOCK } from '../../prefix/block-hash.js';
import { withAnswer } from '../../prefix/prompt-text.js';
import { DECODE_PROFILE, PD_DECISION, PREFILL_PROFILE, type PdDecision } from '../pd-keys.js';
import { EXPECTED_CACHED_TOKENS, type CompletedResponse, type PluginHandle, type ProfileHandler, type ProfileResult, type RequestControl, type RunnableProfile, type SchedulingRequest, type TypedName } from '../types.js';
import { promptHashes } from './prefix-cache-scorer.js';

export const PD_PROFILE_HANDLER = 'pd-profile-handler';
// The names and the decision's key live in a neutral module the gateway core imports too.
export { DECODE_PROFILE, PD_DECISION, PREFILL_PROFILE, type PdDecision, type PdReason } from '../pd-keys.js';

const Parameters = z
  .object({
    /**
     * The decode servers can serve a request alone (vLLM: a decode instance is a full engine).
     * SGLang's decode servers wait for KV from a prefill partner, so for them it is false and every
     * request is disaggregated.
     */
    decodeCanServeAlone: z.boolean().default(false),
    /**
     * A request whose prompt part not cached on the chosen decode endpoint is at most this many
     * tokens runs there alone (when `decodeCanServeAlone`). Default 512 tokens: computing that on
     * the decode engine takes about one step's prefill slice (~20 ms at ~25k prompt tokens/s on an
     * H100), less than a disaggregated round trip costs (a second request, the KV handshake and
     * the transfer); above it the prefill's compute starts to stall the decode batch, which is
     * what disaggregation exists to avoid. llm-d's decider uses 8 tokens, disaggregating almost
     * everything. docs/routing.md has the reasoning.
     */
    uncachedThresholdTokens: z.number().int().min(0).default(512),
    /** An endpoint at or above this estimated queue has no headroom (the pool's saturation threshold). */
    queueDepth: z.number().min(0).default(5),
  })
  .strict();

export type PdParameters = z.output<typeof Parameters>;

/** True when no endpoint among `endpoints` has headroom (queue below `queueDepth`, available, fresh). */
function roleSaturated(endpoints: readonly Endpoint[], queueDepth: number, handle: PluginHandle): boolean {
  const now = handle.now();
  let judged = 0;
  for (const e of endpoints) {
    if (!e.ready(now)) continue;
    judged++;
    if (e.metrics !== undefined && e.metricsAgeMs(now) > handle.stalenessMs) continue;
    const waiting = e.metrics === undefined ? e.inFlight : e.estimatedWaiting();
    if (waiting < queueDepth) return false;
  }
  return judged > 0;
}

/**
 * Runs a prefill/decode pool's two profiles and decides, per request, whether disaggregation
 * pays (issue 12; upstream's handler runs both profiles always, llm-d's decider uses a fixed
 * 8-token threshold):
 *
 * ```
 * round 1   decode profile → the decode endpoint
 * decide    SGLang (decode cannot serve alone): disaggregate
 *           vLLM: uncached prompt on that endpoint ≤ threshold      → decode alone (cached-on-decode)
 *                 prefill role saturated while decode role is not  → decode alone (prefill-saturated)
 *                 otherwise                                        → disaggregate
 * round 2   prefill profile → the prefill endpoint (only when disaggregating)
 * primary   decode (the client gets the decode response)
 * ```
 *
 * The decision is written to the request's state (`PD_DECISION`) for the gateway and the log.
 */
export class PdProfileHandler implements ProfileHandler, RequestControl {
  readonly typedName: TypedName;
  readonly needsResponseText = true;
  readonly #p: PdParameters;
  readonly #handle: PluginHandle;

  constructor(name: string, parameters: PdParameters, handle: PluginHandle) {
    this.typedName = { type: PD_PROFILE_HANDLER, name };
    this.#p = parameters;
    this.#handle = handle;
  }

  pick(request: SchedulingRequest, profiles: ReadonlyMap<string, RunnableProfile>, results: ReadonlyMap<string, ProfileResult>, candidates: readonly Endpoint[]): readonly RunnableProfile[] {
    const decode = profiles.get(DECODE_PROFILE);
    const prefill = profiles.get(PREFILL_PROFILE);
    if (decode === undefined || prefill === undefined) throw new Error(`${PD_PROFILE_HANDLER} needs profiles named "${PREFILL_PROFILE}" and "${DECODE_PROFILE}"`);
    const decoded = results.get(DECODE_PROFILE);
    if (decoded === undefined) return [decode];
    if (results.has(PREFILL_PROFILE)) return [];
    const decision = this.#decide(request, decoded.endpoints[0] as Endpoint, prefill.eligible(request, candidates), decode.eligible(request, candidates));
    request.state.write(PD_DECISION, decision);
    return decision.disaggregated ? [prefill] : [];
  }

  processResults(): string {
    return DECODE_PROFILE;
  }

  /**
   * The decode endpoint now holds the prompt's KV (computed there, or transferred from the
   * prefill endpoint): the decider's estimate of what it caches must know, whether or not the
   * decode profile scores prefix affinity.
   */
  preRequest(request: SchedulingRequest, endpoint: Endpoint, profile: string): void {
    if (profile !== DECODE_PROFILE) return;
    this.#handle.prefixIndex.record(endpoint, promptHashes(request));
  }

  /** After a complete answer the decode endpoint also caches the generated text. */
  responseComplete(request: SchedulingRequest, endpoint: Endpoint, response: CompletedResponse): void {
    if (!response.complete || response.status !== 200 || response.text === undefined || response.text === '' || request.body === undefined) return;
    const text = withAnswer(request.body, response.text);
    if (text !== undefined) this.#handle.prefixIndex.record(endpoint, blockHashes(text, request.targetModel));
  }

  #decide(request: SchedulingRequest, decodeEndpoint: Endpoint, prefillPool: readonly Endpoint[], decodePool: readonly Endpoint[]): PdDecision {
    const hashes = promptHashes(request);
    const matched = new Int32Array(1);
    if (hashes.length > 0) this.#handle.prefixIndex.match(hashes, [decodeEndpoint], matched);
    // What the decode profile's prefix scorer expects cached there, when it scored (precise mode
    // knows it from the engine's events), else this handler's own estimate.
    const expected = request.state.read(EXPECTED_CACHED_TOKENS)?.get(decodeEndpoint) ?? 0;
    const uncachedOnDecode = Math.max(0, request.promptTokens - Math.max(expected, (matched[0] ?? 0) * TOKENS_PER_BLOCK));
    if (!this.#p.decodeCanServeAlone) return { disaggregated: true, reason: 'disaggregated', uncachedOnDecode };
    if (uncachedOnDecode <= this.#p.uncachedThresholdTokens) return { disaggregated: false, reason: 'cached-on-decode', uncachedOnDecode };
    if (roleSaturated(prefillPool, this.#p.queueDepth, this.#handle) && !roleSaturated(decodePool, this.#p.queueDepth, this.#handle)) {
      return { disaggregated: false, reason: 'prefill-saturated', uncachedOnDecode };
    }
    return { disaggregated: true, reason: 'disaggregated', uncachedOnDecode };
  }
}

export function createPdProfileHandler(name: string, parameters: Readonly<Record<string, unknown>>, handle: PluginHandle): PdProfileHandler {
  return new PdProfileHandler(name, Parameters.parse(parameters), handle);
}
