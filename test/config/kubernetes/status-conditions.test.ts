import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatProblem, parseDocuments } from '../../../src/api/index.js';
import type { Resource } from '../../../src/api/types.js';
import { desiredStatuses, EPP_CONTROLLER_NAME, GATEWAY_CONTROLLER_NAME, type DesiredStatus, type StatusScope } from '../../../src/config/kubernetes/status-conditions.js';
import { mergeParents } from '../../../src/config/kubernetes/status-merge.js';

/*
 * The conditions of each case of the GIE conformance suite (conformance/tests @H), computed from
 * the resources as a cluster would hold them.
 */

function load(yaml: string): readonly Resource[] {
  const loaded = parseDocuments(yaml, 'test.yaml');
  assert.deepEqual(loaded.problems.filter((p) => p.severity === 'error').map(formatProblem), []);
  return loaded.resources;
}

const GATEWAY_SCOPE: StatusScope = { mode: 'gateway', gatewayClass: 'infergate' };

function gateway(name: string, cls = 'infergate', listeners = '  - {name: http, protocol: HTTP, port: 8080}'): string {
  return `---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ${name}, namespace: infra}
spec:
  gatewayClassName: ${cls}
  listeners:
${listeners}
`;
}

const CLASS = `---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: infergate}
spec: {controllerName: infergate.dev/gateway-controller}
`;

function pool(name: string, epp = 'endpointPickerRef: {name: epp, port: {number: 9002}}'): string {
  return `---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: ${name}, namespace: app, generation: 3}
spec:
  selector: {matchLabels: {app: ${name}}}
  targetPorts: [{number: 8000}]
  ${epp}
`;
}

function service(name: string): string {
  return `---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: app}
spec:
  selector: {app: ${name}}
  ports: [{port: 9002}]
`;
}

function route(name: string, gateways: readonly string[], backends: readonly string[], section?: string): string {
  return `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}, namespace: app, generation: 7}
spec:
  parentRefs:
${gateways.map((g) => `  - {name: ${g}, namespace: infra${section === undefined ? '' : `, sectionName: ${section}`}}`).join('\n')}
  rules:
  - backendRefs:
${backends.map((b) => `    - {group: inference.networking.k8s.io, kind: InferencePool, name: ${b}}`).join('\n')}
`;
}

function statusOf(all: DesiredStatus[], kind: 'InferencePool' | 'HTTPRoute', name: string): DesiredStatus {
  const s = all.find((d) => d.target.kind === kind && d.target.name === name);
  assert.ok(s, `${kind} ${name} has a status`);
  return s;
}

/** `gateway: Type=Status/Reason, …` per parent, for compact assertions. */
function summary(s: DesiredStatus): string[] {
  return s.parents.map((p) => `${p.parentRef.namespace ?? '-'}/${p.parentRef.name}: ${p.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`).join(', ')}`);
}

test('an accepted pool: Accepted and ResolvedRefs True for the Gateway that routes to it, with our controller name and the generation', () => {
  const all = desiredStatuses({ resources: load(CLASS + gateway('primary') + pool('p') + service('epp') + route('r', ['primary'], ['p'])) }, GATEWAY_SCOPE);
  const p = statusOf(all, 'InferencePool', 'p');
  assert.deepEqual(summary(p), ['infra/primary: Accepted=True/Accepted, ResolvedRefs=True/ResolvedRefs']);
  assert.equal(p.controllerName, GATEWAY_CONTROLLER_NAME);
  assert.equal(p.target.generation, 3);
  assert.deepEqual(p.parents[0]?.parentRef, { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'primary', namespace: 'infra' });
  const r = statusOf(all, 'HTTPRoute', 'r');
  assert.deepEqual(summary(r), ['infra/primary: Accepted=True/Accepted, ResolvedRefs=True/ResolvedRefs']);
  assert.equal(r.target.generation, 7);
});

test('two Gateways routing to one pool give two parents; a Gateway of another class gives none', () => {
  const yaml = CLASS + gateway('primary') + gateway('secondary') + gateway('theirs', 'other') + pool('p') + service('epp') + route('r1', ['primary'], ['p']) + route('r2', ['secondary'], ['p']) + route('r3', ['theirs'], ['p']);
  const all = desiredStatuses({ resources: load(yaml) }, GATEWAY_SCOPE);
  assert.deepEqual(summary(statusOf(all, 'InferencePool', 'p')), [
    'infra/primary: Accepted=True/Accepted, ResolvedRefs=True/ResolvedRefs',
    'infra/secondary: Accepted=True/Accepted, ResolvedRefs=True/ResolvedRefs',
  ]);
  assert.deepEqual(statusOf(all, 'HTTPRoute', 'r3').parents, [], 'no entry of ours for a Gateway we do not own');
});

test('a route deleted: the pool keeps the other Gateway entry; the last route deleted leaves no entry of ours', () => {
  const base = CLASS + gateway('primary') + gateway('secondary') + pool('p') + service('epp');
  const one = desiredStatuses({ resources: load(base + route('r2', ['secondary'], ['p'])) }, GATEWAY_SCOPE);
  assert.deepEqual(summary(statusOf(one, 'InferencePool', 'p')), ['infra/secondary: Accepted=True/Accepted, ResolvedRefs=True/ResolvedRefs']);
  const none = desiredStatuses({ resources: load(base) }, GATEWAY_SCOPE);
  assert.deepEqual(statusOf(none, 'InferencePool', 'p').parents, []);
});

test('an endpointPickerRef to a Service that does not exist: ResolvedRefs False InvalidExtensionRef, the route still Accepted', () => {
  const yaml = CLASS + gateway('primary') + pool('p', 'endpointPickerRef: {name: missing-epp, port: {number: 9002}}') + service('epp') + route('r', ['primary'], ['p']);
  const all = desiredStatuses({ resources: load(yaml) }, GATEWAY_SCOPE);
  assert.deepEqual(summary(statusOf(all, 'InferencePool', 'p')), ['infra/primary: Accepted=True/Accepted, ResolvedRefs=False/InvalidExtensionRef']);
  assert.match(statusOf(all, 'InferencePool', 'p').parents[0]?.conditions[1]?.message ?? '', /Service app\/missing-epp not found/);
  assert.deepEqual(summary(statusOf(all, 'HTTPRoute', 'r')), ['infra/primary: Accepted=True/Accepted, ResolvedRefs=True/ResolvedRefs']);
});

test('an endpointPickerRef of a kind other than Service: InvalidExtensionRef', () => {
  const yaml = CLASS + gateway('primary') + pool('p', 'endpointPickerRef: {group: example.com, kind: Picker, name: x}') + route('r', ['primary'], ['p']);
  const all = desiredStatuses({ resources: load(yaml) }, GATEWAY_SCOPE);
  assert.deepEqual(summary(statusOf(all, 'InferencePool', 'p')), ['infra/primary: Accepted=True/Accepted, ResolvedRefs=False/InvalidExtensionRef']);
});

test('when Services are not known, an endpointPickerRef is judged by serviceExists (unknown is not missing)', () => {
  const yaml = CLASS + gateway('primary') + pool('p') + route('r', ['primary'], ['p']);
  const unknown = desiredStatuses({ resources: load(yaml) }, GATEWAY_SCOPE);
  assert.deepEqual(summary(statusOf(unknown, 'InferencePool', 'p')), ['infra/primary: Accepted=True/Accepted, ResolvedRefs=True/ResolvedRefs']);
  const missing = desiredStatuses({ resources: load(yaml), serviceExists: () => false }, GATEWAY_SCOPE);
  assert.deepEqual(summary(statusOf(missing, 'InferencePool', 'p')), ['infra/primary: Accepted=True/Accepted, ResolvedRefs=False/InvalidExtensionRef']);
});

test('a pool without endpointPickerRef is Accepted (InferencePoolMissingEPPRef allows True): infergate picks endpoints itself', () => {
  const yaml = CLASS + gateway('primary') + pool('p', '') + route('r', ['primary'], ['p']);
  const all = desiredStatuses({ resources: load(yaml) }, GATEWAY_SCOPE);
  assert.deepEqual(summary(statusOf(all, 'InferencePool', 'p')), ['infra/primary: Accepted=True/Accepted, ResolvedRefs=True/ResolvedRefs']);
});

test('a route to a missing pool: ResolvedRefs False BackendNotFound (HTTPRouteInvalidInferencePoolRef); a wrong kind: InvalidKind', () => {
  const all = desiredStatuses({ resources: load(CLASS + gateway('primary') + route('r', ['primary'], ['nope'])) }, GATEWAY_SCOPE);
  assert.deepEqual(summary(statusOf(all, 'HTTPRoute', 'r')), ['infra/primary: Accepted=True/Accepted, ResolvedRefs=False/BackendNotFound']);
  const wrong = `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: w, namespace: app}
spec:
  parentRefs: [{name: primary, namespace: infra}]
  rules: [{backendRefs: [{group: example.com, kind: Bucket, name: b}]}]
`;
  const bad = desiredStatuses({ resources: load(CLASS + gateway('primary') + wrong) }, GATEWAY_SCOPE);
  assert.deepEqual(summary(statusOf(bad, 'HTTPRoute', 'w')), ['infra/primary: Accepted=True/Accepted, ResolvedRefs=False/InvalidKind']);
});

test('a route naming a listener the Gateway lacks: Accepted False NoMatchingParent, and its pool Accepted False HTTPRouteNotAccepted', () => {
  const all = desiredStatuses({ resources: load(CLASS + gateway('primary') + pool('p') + service('epp') + route('r', ['primary'], ['p'], 'nope')) }, GATEWAY_SCOPE);
  assert.deepEqual(summary(statusOf(all, 'HTTPRoute', 'r')), ['infra/primary: Accepted=False/NoMatchingParent, ResolvedRefs=True/ResolvedRefs']);
  assert.deepEqual(summary(statusOf(all, 'InferencePool', 'p')), ['infra/primary: Accepted=False/HTTPRouteNotAccepted, ResolvedRefs=True/ResolvedRefs']);
});

test('a route whose hostnames miss every listener hostname: Accepted False NoMatchingListenerHostname; a wildcard listener takes a matching host', () => {
  const listeners = '  - {name: http, protocol: HTTP, port: 8080, hostname: "*.example.com"}';
  const withHosts = (hosts: string): string => route('r', ['primary'], ['p']).replace('  rules:', `  hostnames: [${hosts}]\n  rules:`);
  const miss = desiredStatuses({ resources: load(CLASS + gateway('primary', 'infergate', listeners) + pool('p') + service('epp') + withHosts('other.org')) }, GATEWAY_SCOPE);
  assert.deepEqual(summary(statusOf(miss, 'HTTPRoute', 'r')), ['infra/primary: Accepted=False/NoMatchingListenerHostname, ResolvedRefs=True/ResolvedRefs']);
  const hit = desiredStatuses({ resources: load(CLASS + gateway('primary', 'infergate', listeners) + pool('p') + service('epp') + withHosts('api.example.com')) }, GATEWAY_SCOPE);
  assert.deepEqual(summary(statusOf(hit, 'HTTPRoute', 'r')), ['infra/primary: Accepted=True/Accepted, ResolvedRefs=True/ResolvedRefs']);
});

test('a GatewayClass of our name that names another controller, or none at all: not ours, no entries', () => {
  const theirs = CLASS.replace('infergate.dev/gateway-controller', 'example.com/controller');
  for (const cls of [theirs, '']) {
    const all = desiredStatuses({ resources: load(cls + gateway('primary') + pool('p') + service('epp') + route('r', ['primary'], ['p'])) }, GATEWAY_SCOPE);
    assert.deepEqual(statusOf(all, 'InferencePool', 'p').parents, []);
    assert.deepEqual(statusOf(all, 'HTTPRoute', 'r').parents, []);
  }
});

test('epp mode: only its pool, under the default parent and the endpoint picker controller name; no route status', () => {
  const yaml = CLASS + gateway('primary') + pool('p') + pool('other') + service('epp') + route('r', ['primary'], ['p']);
  const all = desiredStatuses({ resources: load(yaml) }, { mode: 'epp', poolNamespace: 'app', poolName: 'p' });
  assert.equal(all.length, 1);
  const p = statusOf(all, 'InferencePool', 'p');
  assert.equal(p.controllerName, EPP_CONTROLLER_NAME);
  assert.deepEqual(p.parents[0]?.parentRef, { group: 'gateway.networking.k8s.io', kind: 'Status', name: 'default' });
  assert.deepEqual(summary(p), ['-/default: Accepted=True/Accepted, ResolvedRefs=True/ResolvedRefs']);
});

test('v1alpha2 pools are judged the same, with their own field name in messages', () => {
  const v1a2 = `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: old, namespace: app}
spec:
  selector: {app: old}
  targetPortNumber: 8000
  extensionRef: {name: gone}
`;
  const r = route('r', ['primary'], ['old']).replace('inference.networking.k8s.io', 'inference.networking.x-k8s.io');
  const all = desiredStatuses({ resources: load(CLASS + gateway('primary') + v1a2 + service('epp') + r) }, GATEWAY_SCOPE);
  const p = statusOf(all, 'InferencePool', 'old');
  assert.deepEqual(summary(p), ['infra/primary: Accepted=True/Accepted, ResolvedRefs=False/InvalidExtensionRef']);
  assert.match(p.parents[0]?.conditions[1]?.message ?? '', /^spec\.extensionRef: /);
  assert.equal(p.target.apiVersion, 'inference.networking.x-k8s.io/v1alpha2');
});

// ---------------------------------------------------------------- merge

const CTX = { objectNamespace: 'app', now: '2026-12-07T12:00:00.000Z', generation: 3, withControllerName: true };

test('merge: another controller’s entry stays untouched and in place; ours is added', () => {
  const all = desiredStatuses({ resources: load(CLASS + gateway('primary') + pool('p') + service('epp') + route('r', ['primary'], ['p'])) }, GATEWAY_SCOPE);
  const theirs = { parentRef: { name: 'eg', namespace: 'infra' }, controllerName: 'gateway.envoyproxy.io/gatewayclass-controller', conditions: [{ type: 'Accepted', status: 'False', reason: 'X', message: 'theirs', lastTransitionTime: '2020-01-01T00:00:00Z' }] };
  const merged = mergeParents([theirs], statusOf(all, 'InferencePool', 'p'), CTX);
  assert.equal(merged.changed, true);
  assert.equal(merged.parents.length, 2);
  assert.deepEqual(merged.parents[0], theirs);
  const ours = merged.parents[1] as { controllerName: string; conditions: Array<{ observedGeneration: number; lastTransitionTime: string }> };
  assert.equal(ours.controllerName, GATEWAY_CONTROLLER_NAME);
  assert.equal(ours.conditions[0]?.observedGeneration, 3);
  assert.equal(ours.conditions[0]?.lastTransitionTime, CTX.now);
});

test('merge: unchanged status is not a change, and lastTransitionTime is kept while the status stays; a flip moves it', () => {
  const all = desiredStatuses({ resources: load(CLASS + gateway('primary') + pool('p') + service('epp') + route('r', ['primary'], ['p'])) }, GATEWAY_SCOPE);
  const desired = statusOf(all, 'InferencePool', 'p');
  const first = mergeParents(undefined, desired, CTX);
  const again = mergeParents(first.parents, desired, { ...CTX, now: '2026-12-07T13:00:00.000Z' });
  assert.equal(again.changed, false);
  assert.deepEqual(again.parents, first.parents);

  const broken = desiredStatuses({ resources: load(CLASS + gateway('primary') + pool('p', 'endpointPickerRef: {name: nope, port: {number: 9002}}') + service('epp') + route('r', ['primary'], ['p'])) }, GATEWAY_SCOPE);
  const flipped = mergeParents(first.parents, statusOf(broken, 'InferencePool', 'p'), { ...CTX, now: '2026-12-07T14:00:00.000Z' });
  assert.equal(flipped.changed, true);
  const conditions = (flipped.parents[0] as { conditions: Array<{ type: string; lastTransitionTime: string }> }).conditions;
  assert.equal(conditions.find((c) => c.type === 'Accepted')?.lastTransitionTime, CTX.now, 'Accepted stayed True: its time is kept');
  assert.equal(conditions.find((c) => c.type === 'ResolvedRefs')?.lastTransitionTime, '2026-12-07T14:00:00.000Z');
});

test('merge: our entry is removed when the route goes, the other controller’s stays', () => {
  const withRoute = desiredStatuses({ resources: load(CLASS + gateway('primary') + pool('p') + service('epp') + route('r', ['primary'], ['p'])) }, GATEWAY_SCOPE);
  const theirs = { parentRef: { name: 'eg', namespace: 'infra' }, controllerName: 'example.com/other', conditions: [] };
  const first = mergeParents([theirs], statusOf(withRoute, 'InferencePool', 'p'), CTX);
  const without = desiredStatuses({ resources: load(CLASS + gateway('primary') + pool('p') + service('epp')) }, GATEWAY_SCOPE);
  const cleared = mergeParents(first.parents, statusOf(without, 'InferencePool', 'p'), CTX);
  assert.equal(cleared.changed, true);
  assert.deepEqual(cleared.parents, [theirs]);
});

test('merge, v1alpha2 (no controllerName): entries are ours by parentRef; the default parent is removed when we accept and put back when we leave', () => {
  const yaml = (withRoute: boolean): string =>
    CLASS +
    gateway('primary') +
    `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: old, namespace: app}
spec: {selector: {app: old}, targetPortNumber: 8000}
` +
    (withRoute ? route('r', ['primary'], ['old']) : '');
  const ctx = { ...CTX, withControllerName: false };
  const pending = { parentRef: { group: 'gateway.networking.k8s.io', kind: 'Status', name: 'default' }, conditions: [{ type: 'Accepted', status: 'Unknown', reason: 'Pending', message: 'Waiting for controller' }] };
  const other = { parentRef: { name: 'eg', namespace: 'infra' }, conditions: [] };
  const accepted = mergeParents([pending, other], statusOf(desiredStatuses({ resources: load(yaml(true)) }, GATEWAY_SCOPE), 'InferencePool', 'old'), ctx);
  assert.equal(accepted.changed, true);
  assert.equal(accepted.parents.length, 2);
  assert.deepEqual(accepted.parents[0], other, 'a Gateway we do not own keeps its entry');
  assert.equal((accepted.parents[1] as { controllerName?: string }).controllerName, undefined, 'v1alpha2 has no controllerName field');
  const left = mergeParents([accepted.parents[1]], statusOf(desiredStatuses({ resources: load(yaml(false)) }, GATEWAY_SCOPE), 'InferencePool', 'old'), ctx);
  assert.equal(left.changed, true);
  assert.deepEqual((left.parents as Array<{ parentRef: unknown }>).map((p) => p.parentRef), [{ group: 'gateway.networking.k8s.io', kind: 'Status', name: 'default' }]);
});
