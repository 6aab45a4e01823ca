import type { GatewayError } from '../../src/core/errors.js';
import { seededRandom } from '../../src/core/weighted.js';
import { PdRun, type Decision, type PdNext, type PdPair } from '../../src/gateway/index.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { gatewayAndRoute } from './config.js';
import { memoryLogger, MemorySource, type LogRecord } from './memory-source.js';

/* A prefill/decode pool in the gateway's core (no data plane): one prefill pod, one decode pod, one pod without a role. */

export function pdConfig(runtime: 'sglang' | 'vllm', extra = ''): string {
  return `${gatewayAndRoute(8080, ['  - backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: pd}]'])}apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: pd}
spec: {targetPortNumber: 8000, selector: {app: pd}}
---
apiVersion: inferenceextension.alibabacloud.com/v1alpha1
kind: InferenceTrafficPolicy
metadata: {name: pd-policy}
spec:
  poolRef: {name: pd}
  modelServerRuntime: ${runtime}
  profile:
    pd:
      pdRoleLabelName: role
      kvTransfer: {bootstrapPort: 34000}
      trafficPolicy: {prefixCache: {mode: estimate}}
      prefillPolicyRef: prefixCache
${extra}---
apiVersion: v1
kind: Pod
metadata: {name: prefill-0, labels: {app: pd, role: prefill}}
status: {podIP: 127.0.5.1}
---
apiVersion: v1
kind: Pod
metadata: {name: decode-0, labels: {app: pd, role: decode}}
status: {podIP: 127.0.5.2}
---
apiVersion: v1
kind: Pod
metadata: {name: nobody-0, labels: {app: pd}}
status: {podIP: 127.0.5.3}
`;
}

export async function pdGateway(runtime: 'sglang' | 'vllm'): Promise<{ gateway: Gateway; lines: LogRecord[] }> {
  const { logger, lines } = memoryLogger();
  const gateway = await Gateway.start({ sources: [new MemorySource(pdConfig(runtime))], logger, scrapeIntervalMs: 0, random: seededRandom(1) });
  return { gateway, lines };
}

const route = { method: 'POST', path: '/v1/chat/completions', query: '', host: 'gw', headers: {} };
export const chat = (content: string): Buffer => Buffer.from(JSON.stringify({ model: 'qwen', stream: true, messages: [{ role: 'system', content: 'Answer carefully. '.repeat(60) }, { role: 'user', content }] }));

export type Handle = ReturnType<Gateway['begin']>;

/** A chat request through the gateway's core up to its decision: the handle and the decision. */
export async function decideChat(gateway: Gateway, body: Buffer): Promise<{ h: Handle; d: Awaited<ReturnType<Handle['decide']>> }> {
  const h = gateway.begin({ method: 'POST', path: '/v1/chat/completions', headers: {} });
  h.route(8080, route);
  return { h, d: await h.decide(body, new AbortController().signal) };
}

/** A PD machine over a decided request, its controls recorded instead of aborting sockets. */
export interface MachineRun {
  readonly run: PdRun;
  readonly pair: PdPair;
  /** Errors the machine stopped the whole pair with (both legs), in order. */
  readonly pairStops: GatewayError[];
  /** Errors the machine stopped the prefill leg alone with, in order. */
  readonly prefillStops: GatewayError[];
  /** The next pair or outcome, recording its controls in the same lists. */
  readonly next: () => PdNext;
}

/** Starts the PD machine on `d` (which must be disaggregated); `stopped` is the request's stop, if any. */
export function machine(h: Handle, d: Decision, stopped: () => GatewayError | undefined = () => undefined): MachineRun {
  const pairStops: GatewayError[] = [];
  const prefillStops: GatewayError[] = [];
  const run = new PdRun(h, d, { requestStopped: stopped });
  const next = (): PdNext => run.next({ stopPair: (e) => pairStops.push(e), stopPrefill: (e) => prefillStops.push(e) });
  const first = next();
  if (first.kind !== 'pair') throw new Error(`not disaggregated: ${first.kind}`);
  return { run, pair: first.pair, pairStops, prefillStops, next };
}
