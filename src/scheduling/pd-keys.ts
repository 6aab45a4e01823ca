import { stateKey } from './cycle-state.js';

/*
 * The prefill/decode vocabulary shared by the scheduler's PD profile handler (a plugin) and the
 * gateway core that runs the legs: profile names and the per-request decision's state key. Kept
 * out of the plugin module so the core depends on the names, not on one plugin's implementation.
 */

/** The profile whose pick is a disaggregated request's prefill endpoint. */
export const PREFILL_PROFILE = 'prefill';
/** The profile whose pick is a disaggregated request's decode endpoint (the one that answers). */
export const DECODE_PROFILE = 'decode';

/** Why a request ran disaggregated or not; a label of the log line and of a metric. */
/** `pinned`: a PD sidecar ran the pair the endpoint picker chose (x-prefiller-host-port). */
export type PdReason = 'disaggregated' | 'cached-on-decode' | 'prefill-saturated' | 'pinned';

/** The per-request prefill/decode decision, for the gateway core and the log line. */
export interface PdDecision {
  readonly disaggregated: boolean;
  readonly reason: PdReason;
  /** Prompt tokens the decode endpoint is not expected to hold (the prefix index's estimate). */
  readonly uncachedOnDecode: number;
}

/** Where the PD profile handler writes its per-request decision. */
export const PD_DECISION = stateKey<PdDecision>('pd.decision');
