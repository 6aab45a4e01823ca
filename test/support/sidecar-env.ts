import { createServer, type Server } from 'node:net';
import { Gateway } from '../../src/gateway/index.js';
import { startSimServer, type RunningSimServer } from '../../src/sim/index.js';
import { startSidecar, type RunningSidecar } from '../../src/sidecar/server.js';
import { freePortOnAll } from './ports.js';
import { memoryLogger, MemorySource, type LogRecord } from './memory-source.js';

/**
 * A PD sidecar in front of one simulated decode server, beside one simulated prefill server, as a
 * decode pod runs it: the pool's target port P is the prefill's port on its host and the
 * sidecar's on the decode host; the decode server listens on another port of the decode host
 * (`--decode-url`). An outsider server on a third host, port P, counts connections: nothing may
 * ever dial it.
 */
export interface SidecarEnv {
  readonly runtime: 'sglang' | 'vllm';
  readonly hosts: { readonly prefill: string; readonly decode: string; readonly outsider: string };
  /** The pool's target port: the prefill server's and the sidecar's. */
  readonly port: number;
  readonly prefill: RunningSimServer;
  readonly decode: RunningSimServer;
  readonly gateway: Gateway;
  readonly sidecar: RunningSidecar;
  /** `http://<decode host>:<port>`: the sidecar, where Envoy sends the decode pod's requests. */
  readonly url: string;
  readonly lines: LogRecord[];
  /** Connections the outsider accepted. */
  outsiderConnections(): number;
  close(): Promise<void>;
}

const ROLE = 'llm-d.ai/role';

export function sidecarPoolYaml(runtime: 'sglang' | 'vllm', port: number, hosts: { prefill: string; decode: string }, bootstrapPort?: number): string {
  return `apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pd}
spec: {selector: {matchLabels: {app: pd}}, targetPorts: [{number: ${port}}]}
---
apiVersion: inferenceextension.alibabacloud.com/v1alpha1
kind: InferenceTrafficPolicy
metadata: {name: pd-policy}
spec:
  poolRef: {name: pd}
  modelServerRuntime: ${runtime}
  profile:
    pd:
      pdRoleLabelName: ${ROLE}
${bootstrapPort === undefined ? '' : `      kvTransfer: {bootstrapPort: ${bootstrapPort}}\n`}---
apiVersion: v1
kind: Pod
metadata: {name: prefill-0, labels: {app: pd, ${ROLE}: prefill}}
status: {podIP: ${hosts.prefill}}
---
apiVersion: v1
kind: Pod
metadata: {name: decode-0, labels: {app: pd, ${ROLE}: decode}}
status: {podIP: ${hosts.decode}}
`;
}

/** Starts the pair of simulators, the sidecar's core on the pool, the sidecar and the outsider. */
export async function startSidecarEnv(runtime: 'sglang' | 'vllm', hosts: { prefill: string; decode: string; outsider: string }, options: { poolBodyLimitBytes?: number; timeScale?: number } = {}): Promise<SidecarEnv> {
  const port = await freePortOnAll([hosts.prefill, hosts.decode, hosts.outsider]);
  const decodePort = await freePortOnAll([hosts.decode]);
  const bootstrapPort = runtime === 'sglang' ? await freePortOnAll([hosts.prefill]) : undefined;
  const sideChannel = runtime === 'vllm' ? await freePortOnAll([hosts.prefill, hosts.decode]) : undefined;
  const common = { runtime, profile: 'tiny' as const, timeScale: options.timeScale ?? 20, model: ['mymodel'], ...(sideChannel === undefined ? {} : { sideChannelPort: sideChannel }) };
  const prefill = await startSimServer({ ...common, host: hosts.prefill, port, name: 'prefill-0', pdRole: 'prefill', ...(bootstrapPort === undefined ? {} : { bootstrapPort }) });
  const decode = await startSimServer({ ...common, host: hosts.decode, port: decodePort, name: 'decode-0', pdRole: 'decode' });
  const { logger, lines } = memoryLogger();
  const gateway = await Gateway.start({ sources: [new MemorySource(sidecarPoolYaml(runtime, port, hosts, bootstrapPort))], logger, scrapeIntervalMs: 0, ...(options.poolBodyLimitBytes === undefined ? {} : { poolBodyLimitBytes: options.poolBodyLimitBytes }) });
  const sidecar = await startSidecar({ gateway, poolKey: 'default/pd', decodeUrl: new URL(`http://${hosts.decode}:${decodePort}`), decodeName: 'decode-0', address: hosts.decode, port, logger });
  let connections = 0;
  const outsider: Server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => outsider.listen(port, hosts.outsider, resolve));
  return {
    runtime,
    hosts,
    port,
    prefill,
    decode,
    gateway,
    sidecar,
    url: `http://${hosts.decode}:${port}`,
    lines,
    outsiderConnections: () => connections,
    close: async () => {
      await sidecar.close(1000);
      await gateway.close();
      await new Promise<void>((resolve) => outsider.close(() => resolve()));
      await Promise.all([prefill.close(), decode.close()]);
    },
  };
}

/** The `Request Handled` line of `requestId`, once logged. */
export function handledLine(lines: readonly LogRecord[], requestId: string): LogRecord | undefined {
  return lines.find((l) => l['msg'] === 'Request Handled' && l['requestId'] === requestId);
}
