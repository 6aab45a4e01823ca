import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FakeApiServer } from './fake-apiserver.js';

/*
 * Kubernetes objects as a cluster holds them, and a kubeconfig pointing at the fake API server:
 * what the Kubernetes-mode tests apply.
 */

/** A kubeconfig for `api` (plain HTTP, so TLS verification is off as client-node requires), in a temporary folder. */
export async function kubeconfigFor(api: FakeApiServer, namespace = 'default'): Promise<{ path: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-kube-'));
  const path = join(dir, 'kubeconfig');
  await writeFile(
    path,
    `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {server: "${api.url}", insecure-skip-tls-verify: true}
users:
- name: tester
  user: {token: test-token}
contexts:
- name: fake
  context: {cluster: fake, user: tester, namespace: ${namespace}}
current-context: fake
`,
  );
  return { path, remove: () => rm(dir, { recursive: true, force: true }) };
}

type Obj = Record<string, unknown>;

/** The GatewayClass `infergate`, ours (controllerName infergate.dev/gateway-controller). */
export function gatewayClassObj(name = 'infergate', controllerName = 'infergate.dev/gateway-controller'): Obj {
  return { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name }, spec: { controllerName } };
}

/** Gateway `gw` of class `cls` with one HTTP listener on `port`. */
export function gatewayObj(port: number, name = 'gw', cls = 'infergate'): Obj {
  return { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name, namespace: 'default' }, spec: { gatewayClassName: cls, listeners: [{ name: 'http', protocol: 'HTTP', port }] } };
}

/** HTTPRoute `name` on Gateway `gw`: `/v1` to InferencePool `pool` (v1 group). */
export function routeObj(pool: string, name = 'r', gateway = 'gw'): Obj {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: 'default' },
    spec: { parentRefs: [{ name: gateway }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/v1' } }], backendRefs: [{ group: 'inference.networking.k8s.io', kind: 'InferencePool', name: pool }] }] },
  };
}

/** InferencePool (inference.networking.k8s.io/v1) selecting `selector` on `port`. */
export function poolObj(name: string, selector: Record<string, string>, port: number): Obj {
  return {
    apiVersion: 'inference.networking.k8s.io/v1',
    kind: 'InferencePool',
    metadata: { name, namespace: 'default' },
    spec: { selector: { matchLabels: selector }, targetPorts: [{ number: port }], endpointPickerRef: { name: `${name}-epp`, port: { number: 9002 } } },
  };
}

/** InferenceModel `modelName` on `pool`, split across `targets` by weight. */
export function modelObj(name: string, modelName: string, pool: string, targets: ReadonlyArray<{ name: string; weight: number }>): Obj {
  return {
    apiVersion: 'inference.networking.x-k8s.io/v1alpha2',
    kind: 'InferenceModel',
    metadata: { name, namespace: 'default' },
    spec: { modelName, criticality: 'Critical', poolRef: { name: pool }, targetModels: targets },
  };
}

/**
 * A Pod as the kubelet reports it: `ready` sets the Ready condition, `ip` the pod IP (none until
 * scheduled), plus what a real Pod carries that nothing reads (managedFields, a big spec).
 */
export function podObj(name: string, labels: Record<string, string>, ip: string | undefined, ready = true, port = 8000): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', labels, uid: `uid-${name}`, managedFields: [{ manager: 'kubelet', operation: 'Update', fieldsV1: { 'f:status': {} } }] },
    spec: { nodeName: 'node-1', containers: [{ name: 'vllm', image: 'vllm/vllm-openai:latest', args: ['--model', 'm'], ports: [{ name: 'http', containerPort: port }], resources: { limits: { 'nvidia.com/gpu': '1' } } }] },
    status: {
      phase: ip === undefined ? 'Pending' : 'Running',
      ...(ip === undefined ? {} : { podIP: ip, podIPs: [{ ip }] }),
      conditions: [
        { type: 'PodScheduled', status: 'True' },
        { type: 'Ready', status: ready ? 'True' : 'False' },
      ],
    },
  };
}
