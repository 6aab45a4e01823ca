import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { EXT_PROC_SERVICE } from './proto.js';

/** gRPC health service names upstream's EPP serves (GIE pkg/epp/server): Kubernetes probes ask for the first two, Envoy's cluster health check for the third. */
export const HEALTH_SERVICES = { liveness: 'liveness', readiness: 'readiness', extProc: EXT_PROC_SERVICE } as const;

/** How often readiness is re-read; Watch streams hear a change within this. */
export const READINESS_POLL_MS = 1000;

/**
 * grpc.health.v1.Health (Check and Watch) for the services `""` and `liveness` (SERVING while
 * the process runs) and `readiness` and `envoy.service.ext_proc.v3.ExternalProcessor` (following
 * `ready()`, NOT_SERVING once draining). Unknown names: NOT_FOUND on Check, SERVICE_UNKNOWN on
 * Watch (grpc-health-check, grpc-node's implementation of the public health proto).
 */
export class PickerHealth {
  readonly implementation: HealthImplementation;
  #draining = false;
  #last: ServingStatus | undefined;
  readonly #poll: NodeJS.Timeout;

  constructor(private readonly ready: () => boolean) {
    this.implementation = new HealthImplementation({ '': 'SERVING', [HEALTH_SERVICES.liveness]: 'SERVING' });
    this.refresh();
    this.#poll = setInterval(() => this.refresh(), READINESS_POLL_MS);
    this.#poll.unref();
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
    this.implementation.setStatus(HEALTH_SERVICES.readiness, next);
    this.implementation.setStatus(HEALTH_SERVICES.extProc, next);
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
    this.implementation.setStatus(HEALTH_SERVICES.liveness, 'NOT_SERVING');
    this.implementation.setStatus('', 'NOT_SERVING');
  }
}
