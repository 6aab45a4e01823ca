/**
 * What `infergate envoy-standin` reports on its stats port (`GET /decisions`) and the benchmark
 * reads: the endpoint picker's decision latencies as the Envoy stand-in measured them, in ms. A
 * contract between two processes, so both sides read it from here.
 */
export interface DecisionStats {
  readonly count: number;
  /** Requests timed past the sample bound (counted, not kept). */
  readonly dropped: number;
  /** From the request_headers message to the picker's first answer; undefined percentiles when no request was timed. */
  readonly fromHeadersMs: { readonly p50?: number; readonly p99?: number; readonly max?: number };
  /** From the body's end_of_stream to the picker's first answer. */
  readonly fromBodyEndMs: { readonly p50?: number; readonly p99?: number; readonly max?: number };
  /** The stand-in's own event-loop delay since the last reset (inside every time above). */
  readonly loopDelayMs: { readonly p50: number; readonly p99: number };
}
