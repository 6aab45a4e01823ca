import type { HealthStatuses, ServingStatus } from './grpc-h2/health-service.js';
import { EXT_PROC_SERVICE } from './proto.js';

/** gRPC health service names upstream's EPP serves (GIE pkg/epp/server): Kubernetes probes ask for the first two, Envoy's cluster health check for the third. */
export const HEALTH_SERVICES = { liveness: 'liveness', readiness: 'readiness', extProc: EXT_PROC_SERVICE } as const;

/** How often readiness is re-read; Watch streams hear a change within this. */
export const READINESS_POLL_MS = 1000;

/**
 * The statuses grpc.health.v1.Health (Check, Watch and List: grpc-h2/health-service.ts) reports
 * for the services `""` and `liveness` (SERVING while the process runs) and `readiness` and
 * `envoy.service.ext_proc.v3.ExternalProcessor` (following `ready()`, NOT_SERVING once draining).
 * Unknown names: NOT_FOUND on Check, SERVICE_UNKNOWN on Watch.
 */
export class PickerHealth implements HealthStatuses {
  readonly #statuses = new Map<string, ServingStatus>([
    ['', 'SERVING'],
    [HEALTH_SERVICES.liveness, 'SERVING'],
  ]);
  readonly #watchers = new Map<string, Set<(status: ServingStatus) => void>>();
  #draining = false;
  #last: ServingStatus | undefined;
  readonly #poll: NodeJS.Timeout;

  constructor(private readonly ready: () => boolean) {
    this.refresh();
    this.#poll = setInterval(() => this.refresh(), READINESS_POLL_MS);
    this.#poll.unref();
  }

  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  entries(): Iterable<readonly [string, ServingStatus]> {
    return this.#statuses.entries();
  }

  watch(service: string, listener: (status: ServingStatus) => void): () => void {
    let set = this.#watchers.get(service);
    if (set === undefined) this.#watchers.set(service, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Re-reads readiness now (also called on a timer). */
  refresh(): void {
    let next: ServingStatus;
    try {
      next = !this.#draining && this.ready() ? 'SERVING' : 'NOT_SERVING';
    } catch {
      next = 'NOT_SERVING';
    }
    if (next === this.#last) return;
    this.#last = next;
    this.#set(HEALTH_SERVICES.readiness, next);
    this.#set(HEALTH_SERVICES.extProc, next);
  }

  /** Shutting down: not ready from now on, so Envoy and Kubernetes stop sending new streams. */
  drain(): void {
    this.#draining = true;
    this.refresh();
  }

  /** Stops the readiness poll; liveness goes NOT_SERVING for Watch streams still open. */
  close(): void {
    clearInterval(this.#poll);
    this.drain();
    this.#set(HEALTH_SERVICES.liveness, 'NOT_SERVING');
    this.#set('', 'NOT_SERVING');
  }

  #set(service: string, status: ServingStatus): void {
    this.#statuses.set(service, status);
    for (const w of this.#watchers.get(service) ?? []) w(status);
  }
}
