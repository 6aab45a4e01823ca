/**
 * The gateway core's public face: what a data plane (the standalone HTTP proxy, an Envoy ext_proc
 * server) and the CLI use. Data planes import from here and from `core/`, nothing deeper.
 */
export { Gateway, type AfterSwap, type BeforeSwap, type GatewayOptions } from './gateway.js';
export { isServerFault, retryAfterMs } from './blame.js';
export { httpVersionProblem, requestLineAnswer, type OwnAnswer } from './request-line.js';
export { handshakeTimeout, legError, type PairBlame, type PdPlan, type PrefillOutcome } from './pd.js';
export { parsePrefillerHostPort, pinnedPair, pinnedPrefill, PREFILLER_HEADER, type HostPort } from './pd-pinned.js';
export { PdPair, PdRun, PREFILL_GRACE_MS, type LegRequest, type PairControl, type PairFailure, type PairStep, type PdLeg, type PdNext, type PdRunFacts } from './pd-run.js';
export { RequestHandle, type Decision, type Outcome, type RequestInit, type ResponsePlan } from './request.js';
export { BodyCollector, bodyTooLarge, refuseDeclaredOver, type BodyCollectorOptions } from './body-collector.js';
export type { DecideOptions } from './subset.js';
export { DEFAULT_POOL_BODY_LIMIT_BYTES, poolLimitName, type PoolBodyLimits } from './pool-entry.js';
export { errorResponse, sseErrorEvent, type ErrorResponse } from './error-answer.js';
export { CLIENT_GONE_STATUS, clientGone, clientGoneOutcome, isClientGone } from './client-gone.js';
export { RequestScope, Stopped, type Stoppable } from './request-scope.js';
export { InFlight } from './in-flight.js';
export { CONTROL_HEADERS, controlHeader, isControlHeader, type ControlSetting } from './control-headers.js';
export { MAX_REQUEST_TARGET_BYTES, normalizeRequestTarget, parseRequestTarget, type RequestTarget } from './request-path.js';
export type { UpstreamTimeouts } from './timeouts.js';
export { DEFAULT_TIMEOUTS, phaseTimeout, requestDeadline, silenceCondemns, type PhaseFacts, type PhaseLimits, type PhaseVerdict, type RequestDeadline } from './timeouts.js';
export { BodyBudget, BodyReservation, defaultBodyBudgetBytes } from './body-budget.js';
export { hostProblem } from './host-header.js';
export { decodeRequestBody, requestCodings, transferCodingProblem, undecodableBody } from './request-coding.js';
export { DEFAULT_UPLOAD_TIMEOUTS, UploadClock, uploadTimedOut, type UploadOptions, type UploadPolicy, type UploadTimeouts } from './upload.js';
export type { RouteRequest } from '../config/route-table.js';
export type { Snapshot } from '../config/snapshot.js';
export type { ApplyOutcome, ConfigSource } from '../config/source.js';
export { ConfigRejectedError } from '../config/store.js';
