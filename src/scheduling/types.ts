import type { Criticality } from '../api/types.js';
import type { Endpoint } from '../core/endpoint.js';
import type { Random } from '../core/weighted.js';
import type { PrefixIndex } from '../prefix/index.js';
import type { PreciseServices } from './precise-services.js';
import { stateKey, type CycleState } from './cycle-state.js';

/** Every plugin names its type (kebab-case constant) and its instance name. */
export interface TypedName {
  readonly type: string;
  readonly name: string;
}

export interface Plugin {
  readonly typedName: TypedName;
}

/** What scheduling knows about a request. */
export interface SchedulingRequest {
  readonly requestId: string;
  /** The model the client asked for. */
  readonly model: string;
  /** The model the endpoint will be asked for (after the canary draw): base model or LoRA adapter. */
  readonly targetModel: string;
  readonly criticality: Criticality;
  /** Estimated prompt tokens (≈ characters / 4). */
  readonly promptTokens: number;
  /**
   * The text the prompt is judged by (as the Gateway API Inference Extension's approximate prefix cache judges it, pkg/epp/framework/plugins/requestcontrol/dataproducer/approximateprefix: the prompt, the rendered messages, the
   * Responses API input), computed once on first use; undefined for a body without a prompt.
   */
  promptText(): string | undefined;
  /** The parsed client body (before any rewrite); undefined for bodyless requests. */
  readonly body: Readonly<Record<string, unknown>> | undefined;
  /** Per-request data plugins produce for each other and for the request's later hooks. */
  readonly state: CycleState;
}

/** Shared services a plugin may use, handed to its factory. */
export interface PluginHandle {
  /** Which prompt blocks each endpoint probably caches (shared: a KV cache belongs to its endpoint). */
  readonly prefixIndex: PrefixIndex;
  /** Metrics older than this are not trusted (stale endpoints count as saturated). */
  readonly stalenessMs: number;
  readonly now: () => number;
  /** The engines' KV blocks and the models' tokenizers, for precise prefix scoring; absent, precise pools score in estimate mode. */
  readonly precise?: PreciseServices;
}

// ---------------------------------------------------------------- scheduling plugins

/** Drops endpoints unfit for the request. Returning an empty list ends the cycle with 503. */
export interface Filter extends Plugin {
  filter(request: SchedulingRequest, endpoints: readonly Endpoint[]): readonly Endpoint[];
}

/**
 * Scores candidates into `out[i]` for `endpoints[i]`, each in [0, 1] (the profile clamps anyway).
 * A scorer that cannot tell candidates apart gives them all the same score.
 */
export interface Scorer extends Plugin {
  /** Distribution scorers spread load; affinity scorers pull requests towards warm endpoints. */
  readonly category: 'distribution' | 'affinity';
  score(request: SchedulingRequest, endpoints: readonly Endpoint[], out: Float64Array): void;
}

/** Orders candidates by total score: the first is the pick, the rest are fallbacks, best first. */
export interface Picker extends Plugin {
  pick(endpoints: readonly Endpoint[], scores: Float64Array, random: Random): Endpoint[];
}

export interface WeightedScorer {
  readonly scorer: Scorer;
  readonly weight: number;
}

/**
 * Endpoints a request may be tried on: the pick and one fallback, so at most one retry (a retry
 * is for a request that never reached a server; more attempts would only add latency). Pickers
 * return this many by default and the gateway never tries more.
 */
export const MAX_ATTEMPTS = 2;

/** What one scheduling profile chose. */
export interface ProfileResult {
  /** Primary first, then fallbacks; never empty. */
  readonly endpoints: readonly Endpoint[];
  /** Total weighted score of each returned endpoint, aligned with `endpoints`. */
  readonly scores: readonly number[];
  /** The primary's score from each scorer (by instance name), before weighting. */
  readonly breakdown: Readonly<Record<string, number>>;
}

/** What the scheduler returns: every profile's result and which one is primary (upstream's shape). */
export interface SchedulingResult {
  readonly profiles: ReadonlyMap<string, ProfileResult>;
  readonly primaryProfile: string;
  /** The primary profile's result. */
  readonly primary: ProfileResult;
}

/** The part of a profile a profile handler needs: its name and a way to run it. */
export interface RunnableProfile {
  readonly name: string;
  run(request: SchedulingRequest, candidates: readonly Endpoint[], random: Random): ProfileResult;
  /** The candidates the profile's filters keep (possibly none); nothing is scored. */
  eligible(request: SchedulingRequest, candidates: readonly Endpoint[]): readonly Endpoint[];
}

/**
 * Chooses which scheduling profiles run for a request, in rounds, and which result is primary
 * (upstream's `ProfileHandler`): `pick` is called with the results so far and returns the profiles
 * to run next (none: done); `processResults` names the primary. A single-profile pool runs its one
 * profile once; a prefill/decode pool runs a prefill and a decode profile.
 */
export interface ProfileHandler extends Plugin {
  pick(request: SchedulingRequest, profiles: ReadonlyMap<string, RunnableProfile>, results: ReadonlyMap<string, ProfileResult>, candidates: readonly Endpoint[]): readonly RunnableProfile[];
  processResults(request: SchedulingRequest, results: ReadonlyMap<string, ProfileResult>): string;
}

// ---------------------------------------------------------------- request-control plugins

/** A response as the request's last hook sees it. */
export interface CompletedResponse {
  /** Upstream status; undefined when none arrived. */
  readonly status: number | undefined;
  /** True when the whole response reached the client. */
  readonly complete: boolean;
  /** The answer text, when some plugin declared `needsResponseText`. */
  readonly text: string | undefined;
}

/**
 * Lifecycle hooks a plugin may implement, after upstream's request control (Gateway API Inference Extension, pkg/epp/requestcontrol):
 * the gateway calls them as the request moves, whatever data plane carries it. Every hook is
 * optional; a pool whose plugins implement none pays nothing.
 */
export interface RequestControl extends Plugin {
  /** The request was sent to `endpoint` (once per attempt), chosen by `profile`. */
  preRequest?(request: SchedulingRequest, endpoint: Endpoint, profile: string): void;
  /** The endpoint's response headers arrived. */
  responseHeaders?(request: SchedulingRequest, endpoint: Endpoint, status: number): void;
  /** The request ended at `endpoint` (successfully or not). */
  responseComplete?(request: SchedulingRequest, endpoint: Endpoint, response: CompletedResponse): void;
  /** Fields for the request's `Request Handled` log line. */
  logFields?(request: SchedulingRequest, endpoint: Endpoint): Readonly<Record<string, string | number>> | undefined;
  /** Ask the gateway to collect the answer text for `responseComplete` (costs a parse per event). */
  readonly needsResponseText?: boolean;
}

/**
 * A plugin that prepares per-request data before the scheduling cycle, which may take time off the
 * event loop (upstream's PrepareData plugins): the precise prefix scorer tokenises the prompt
 * here. Runs once per request (retries reuse it), while the request waits for admission. Never
 * rejects: a producer that cannot produce leaves its scorer to judge without the data.
 */
export interface DataProducer extends Plugin {
  prepareRequestData(request: SchedulingRequest): Promise<void> | undefined;
}

export function isDataProducer(p: Plugin): p is DataProducer {
  return typeof (p as Partial<DataProducer>).prepareRequestData === 'function';
}

export function isRequestControl(p: Plugin): p is RequestControl {
  const c = p as Partial<RequestControl>;
  return c.preRequest !== undefined || c.responseHeaders !== undefined || c.responseComplete !== undefined || c.logFields !== undefined;
}

/**
 * Prompt tokens the chosen endpoint is expected to hold in its KV cache, per candidate, written by
 * a prefix-aware scorer. The gateway reads it to account the prefill work a dispatch adds
 * (`Endpoint.pendingPrefillTokens`); absent means nothing is expected cached.
 */
export const EXPECTED_CACHED_TOKENS = stateKey<ReadonlyMap<Endpoint, number>>('expected-cached-tokens');
