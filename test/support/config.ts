import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Gateway `gw` with a listener per port: `http` on the first, `http-1`, `http-2`, … on the others. */
export function gatewayYaml(port: number | readonly number[], extra = ''): string {
  const ports = typeof port === 'number' ? [port] : port;
  return `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: infergate
  listeners:
${ports.map((p, i) => `  - {name: http${i === 0 ? '' : `-${i}`}, protocol: HTTP, port: ${p}}`).join('\n')}
${extra}`;
}

export function poolYaml(name: string, release: string, port: number): string {
  return `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: ${name}}
spec:
  selector: {app: sim, release: ${release}}
  targetPortNumber: ${port}
`;
}

export function podYaml(name: string, release: string, ip: string): string {
  return `---
apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  labels: {app: sim, release: ${release}}
status: {phase: Running, podIP: ${ip}}
`;
}

/** An HTTPRoute on listener `http`; `header` adds an exact header match (`name: value`). */
export function routeYaml(name: string, backends: ReadonlyArray<{ pool: string; weight: number }>, pathPrefix = '/v1', header?: { name: string; value: string }): string {
  const headers = header === undefined ? '' : `, headers: [{name: ${header.name}, value: ${header.value}}]`;
  return `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: ${pathPrefix}}${headers}}]
    backendRefs:
${backends.map((b) => `    - {group: inference.networking.x-k8s.io, kind: InferencePool, name: ${b.pool}, weight: ${b.weight}}`).join('\n')}
`;
}

export function modelYaml(name: string, modelName: string, pool: string, targets: ReadonlyArray<{ name: string; weight: number }>, criticality = 'Critical'): string {
  return `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: ${name}}
spec:
  modelName: ${modelName}
  criticality: ${criticality}
  poolRef: {name: ${pool}}
  targetModels:
${targets.map((t) => `  - {name: ${t.name}, weight: ${t.weight}}`).join('\n')}
`;
}

/** A temporary config folder with one file; `write` replaces it (as an editor would). */
export async function configDir(initial: string): Promise<{ dir: string; file: string; write: (yaml: string) => Promise<void>; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-test-'));
  const file = join(dir, 'config.yaml');
  await writeFile(file, initial);
  return {
    dir,
    file,
    write: (yaml) => writeFile(file, yaml),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A rule sending `/v1` (optionally only requests with header `name: value`) to an InferencePool. */
export function poolRule(pool: string, header?: { readonly name: string; readonly value: string }, group = 'inference.networking.k8s.io'): string {
  const headers = header === undefined ? '' : `, headers: [{name: ${header.name}, value: ${header.value}}]`;
  return `  - matches: [{path: {type: PathPrefix, value: /v1}${headers}}]
    backendRefs: [{group: ${group}, kind: InferencePool, name: ${pool}}]`;
}

/**
 * A Gateway `gw` with one HTTP listener on `port`, and an HTTPRoute `r` attached to it with
 * `rules` (YAML list items indented two spaces, e.g. from `poolRule`), ending with `---`.
 */
export function gatewayAndRoute(port: number, rules: readonly string[]): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec: {gatewayClassName: infergate, listeners: [{name: http, protocol: HTTP, port: ${port}}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
${rules.join('\n')}
---
`;
}
