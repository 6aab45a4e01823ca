/**
 * The modelled network link a prefill server sends KV over, for both prefill/decode faces (SGLang's
 * bootstrap handshake in pd.ts, vLLM's NIXL side channel in nixl.ts; docs/simulator.md "KV transfer").
 *
 *     transfer_ms = tokens × kvBytesPerToken / link bytes per ms
 *
 * `kvBytesPerToken` comes from the engine profile (2 × layers × KV heads × head dim × bytes per value, from the models' Hugging Face configs: Llama-3.1-8B BF16 128 KiB,
 * Qwen3-32B BF16 256 KiB). The link defaults to one 400 Gb/s RDMA NIC per GPU of the instance
 * (`tensorParallelSize × 400 Gb/s`). Cross-check: the 8B's 128 KiB at 400 Gb/s is 2.62 µs per
 * token, where llm-d-inference-sim's 8B-over-RDMA profile uses 3 µs (§i.1), i.e. ~87 % of line
 * rate; the simulator sends at line rate.
 *
 * One link per prefill server, first come first served: a transfer starts when the previous one
 * has left, so a busy prefill server's transfers queue on its NIC. The decode side's NIC is not
 * modelled (no contention between two prefill servers sending to one decode server).
 */
import type { SimClock, SimTimer } from './engine/index.js';

/**
 * Default link speed per GPU, Gb/s: NDR InfiniBand / ConnectX-7 at 400 Gb/s, one per H100 (NVIDIA
 * DGX H100 / HGX H100 systems pair each of their 8 GPUs with its own single-port ConnectX-7 400 Gb/s
 * adapter for the compute fabric, which RDMA KV transfers use).
 */
export const RDMA_GBPS_PER_GPU = 400;

/** Modelled ms to send one token's KV: `kvBytesPerToken` bytes over `gbps` Gb/s (10^9 bit/s = 10^6 bit/ms). */
export function kvTransferMsPerToken(kvBytesPerToken: number, gbps: number): number {
  return (kvBytesPerToken * 8) / (gbps * 1e6);
}

/** What a server's KV link is configured from. */
export interface KvLinkSettings {
  /** From the engine profile. */
  readonly kvBytesPerToken: number;
  /** From the engine profile: one NIC per GPU by default. */
  readonly tensorParallelSize: number;
  /** The link's speed, Gb/s; default `tensorParallelSize × 400`. */
  readonly kvLinkGbps?: number | undefined;
  /** A fixed cost per token instead of bytes over the link (overrides both). */
  readonly kvTransferMsPerToken?: number | undefined;
}

/** The modelled ms per token of a server's transfers; throws RangeError for a bad setting. */
export function linkMsPerToken(s: KvLinkSettings): number {
  if (s.kvTransferMsPerToken !== undefined) {
    if (!(Number.isFinite(s.kvTransferMsPerToken) && s.kvTransferMsPerToken >= 0)) throw new RangeError(`kvTransferMsPerToken must be a number >= 0 (got ${s.kvTransferMsPerToken})`);
    return s.kvTransferMsPerToken;
  }
  const gbps = s.kvLinkGbps ?? s.tensorParallelSize * RDMA_GBPS_PER_GPU;
  if (!(Number.isFinite(gbps) && gbps > 0)) throw new RangeError(`kvLinkGbps must be a number > 0 (got ${gbps})`);
  return kvTransferMsPerToken(s.kvBytesPerToken, gbps);
}

/** A transfer on the link; `cancel()` keeps its callback from running (its link time stays spent). */
export interface KvSend {
  cancel(): void;
}

/** One prefill server's outgoing KV link (see the file comment). */
export class KvLink {
  readonly msPerToken: number;
  readonly #clock: SimClock;
  /** Modelled time the last queued transfer leaves the link. */
  #busyUntil = Number.NEGATIVE_INFINITY;

  constructor(clock: SimClock, msPerToken: number) {
    this.#clock = clock;
    this.msPerToken = msPerToken;
  }

  /**
   * Sends `tokens` tokens of KV after the transfers already queued; `done(ms)` runs when the last
   * byte has left, with the modelled ms since this call (queueing on the link plus the wire time).
   */
  send(tokens: number, done: (ms: number) => void): KvSend {
    const now = this.#clock.now();
    const end = Math.max(now, this.#busyUntil) + tokens * this.msPerToken;
    this.#busyUntil = end;
    const timer: SimTimer = this.#clock.at(end, () => done(end - now));
    return { cancel: () => timer.cancel() };
  }
}
