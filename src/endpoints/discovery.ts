import { ACTIVE_PORTS_ANNOTATION, type ModelServerRuntime, type Pod } from '../api/types.js';
import type { EndpointInit, EndpointRole, MetricsDialect } from '../core/endpoint.js';
import { resolveDialect } from './metrics/index.js';

/** Upstream's per-pod engine label (`vllm`, `sglang`, `trtllm-serve`, `triton-tensorrt-llm`); wins over the pool's runtime. */
export const ENGINE_TYPE_LABEL = 'inference.networking.k8s.io/engine-type';

/** True when every selector entry is among the labels (an empty selector matches nothing). */
export function selectorMatches(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(selector);
  if (keys.length === 0) return false;
  return keys.every((k) => labels[k] === selector[k]);
}

/**
 * A pod serves traffic when it has an IP, is Running (or reports no phase, as hand-written pods
 * do) and is not reported unready.
 */
export function podIsServing(pod: Pod): boolean {
  if (pod.status.podIP === undefined || pod.status.podIP === '') return false;
  if (pod.status.phase !== undefined && pod.status.phase !== 'Running') return false;
  return pod.status.ready !== false;
}

function activePorts(pod: Pod): ReadonlySet<number> | undefined {
  const raw = pod.metadata.annotations[ACTIVE_PORTS_ANNOTATION];
  if (raw === undefined) return undefined;
  return new Set(
    raw
      .split(',')
      .map((s) => Number.parseInt(s.trim(), 10))
      .filter((n) => Number.isInteger(n)),
  );
}

export interface PoolEndpointOptions {
  readonly runtime: ModelServerRuntime;
  /** The pool names its runtime (annotation or traffic policy) rather than defaulting to vLLM. */
  readonly runtimeConfigured?: boolean;
  /** Pod label whose value `prefill` or `decode` gives the endpoint's role (PD pools). */
  readonly roleLabel?: string;
}

function roleOf(pod: Pod, roleLabel: string | undefined): EndpointRole {
  if (roleLabel === undefined) return 'both';
  const v = pod.metadata.labels[roleLabel];
  return v === 'prefill' || v === 'decode' ? v : 'both';
}

/**
 * The endpoints of an InferencePool: every serving pod in the pool's namespace whose labels match
 * the selector, once per target port (`podIP:port`). With several target ports each is its own
 * endpoint named `<pod>-rank-<i>` (data-parallel ranks, as upstream names them); the pod
 * annotation `inference.networking.k8s.io/active-ports` limits which ports are live on a pod.
 * The metrics dialect is the pool's runtime unless the pod's engine-type label names another.
 */
export function poolEndpoints(
  pods: readonly Pod[],
  namespace: string,
  selector: Readonly<Record<string, string>>,
  targetPorts: readonly number[],
  options: PoolEndpointOptions = { runtime: 'vllm' },
): EndpointInit[] {
  const out: EndpointInit[] = [];
  for (const pod of pods) {
    if (pod.metadata.namespace !== namespace || !podIsServing(pod)) continue;
    if (!selectorMatches(selector, pod.metadata.labels)) continue;
    const active = activePorts(pod);
    const label = pod.metadata.labels[ENGINE_TYPE_LABEL];
    const fromLabel = label === undefined ? undefined : resolveDialect(label);
    const dialect: MetricsDialect = fromLabel ?? options.runtime;
    const dialectConfigured = fromLabel !== undefined || options.runtimeConfigured === true;
    const role = roleOf(pod, options.roleLabel);
    targetPorts.forEach((port, rank) => {
      if (active !== undefined && !active.has(port)) return;
      out.push({
        address: pod.status.podIP as string,
        port,
        name: targetPorts.length > 1 ? `${pod.metadata.name}-rank-${rank}` : pod.metadata.name,
        podName: pod.metadata.name,
        labels: pod.metadata.labels,
        dialect,
        dialectConfigured,
        role,
      });
    });
  }
  return out;
}

/**
 * The endpoints behind a Service port: serving pods matching the Service selector, at the
 * numeric target port or at the container port named by a string target port.
 */
export function serviceEndpoints(
  pods: readonly Pod[],
  namespace: string,
  selector: Readonly<Record<string, string>>,
  targetPort: number | string,
): EndpointInit[] {
  const out: EndpointInit[] = [];
  for (const pod of pods) {
    if (pod.metadata.namespace !== namespace || !podIsServing(pod)) continue;
    if (!selectorMatches(selector, pod.metadata.labels)) continue;
    const port =
      typeof targetPort === 'number' ? targetPort : pod.spec.containerPorts.find((p) => p.name === targetPort)?.containerPort;
    if (port === undefined) continue;
    out.push({ address: pod.status.podIP as string, port, name: pod.metadata.name, podName: pod.metadata.name, labels: pod.metadata.labels });
  }
  return out;
}
