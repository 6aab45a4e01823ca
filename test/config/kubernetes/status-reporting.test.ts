import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startStatusReporting, type StatusReporting, type StatusReportingOptions } from '../../../src/config/kubernetes/status-reporting.js';
import { Gateway } from '../../../src/gateway/index.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { memoryLogger, MemorySource } from '../../support/memory-source.js';
import { waitFor } from '../../support/smart.js';
import { applyYaml, memoryLog, ReplicaApi } from '../../support/status-kube.js';

/*
 * Status reporting wired to a gateway core as `serve --kubernetes` and `epp --kubernetes` wire it:
 * the gateway's applied configuration is the view, each applied change a prompt to write. The
 * fake API server holds the same objects, with another controller's entry already in place.
 */

function cluster(routes: readonly string[]): string {
  const gateways = ['gw1', 'gw2']
    .map(
      (g, i) => `---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ${g}, namespace: default}
spec:
  gatewayClassName: infergate
  listeners: [{name: http, protocol: HTTP, port: ${8081 + i}}]
`,
    )
    .join('');
  const rs = routes
    .map(
      (r) => `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${r}, namespace: default}
spec:
  parentRefs: [{name: ${r === 'r1' ? 'gw1' : 'gw2'}}]
  rules: [{backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: pool}]}]
`,
    )
    .join('');
  return `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: infergate}
spec: {controllerName: infergate.dev/gateway-controller}
${gateways}${rs}---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool, namespace: default}
spec:
  selector: {matchLabels: {app: m}}
  targetPorts: [{number: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: epp, namespace: default}
spec: {selector: {app: epp}, ports: [{port: 9002}]}
`.replace('targetPorts: [{number: 8000}]', 'targetPorts: [{number: 8000}]\n  endpointPickerRef: {name: epp, port: {number: 9002}}');
}

const THEIRS = {
  parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'envoy', namespace: 'default' },
  controllerName: 'gateway.envoyproxy.io/gatewayclass-controller',
  conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'theirs', lastTransitionTime: '2026-01-01T00:00:00Z' }],
};

interface Parent {
  controllerName?: string;
  parentRef: { name: string; kind?: string };
  conditions: Array<{ type: string; status: string; reason: string }>;
}

let server: FakeApiServer;

before(async () => {
  server = await FakeApiServer.start();
  applyYaml(server, cluster(['r1', 'r2']));
  server.setStatus('InferencePool/default/pool', { parents: [THEIRS] });
});

after(async () => {
  await server.close();
});

function parents(ref: string): Parent[] {
  return ((server.get(ref)?.['status'] as { parents?: Parent[] } | undefined)?.parents ?? []) as Parent[];
}

function summary(ref: string): string[] {
  return parents(ref).map((p) => `${p.controllerName ?? '-'} ${p.parentRef.kind ?? 'Gateway'}/${p.parentRef.name}: ${p.conditions.map((c) => `${c.type}=${c.status}`).join(',')}`);
}

async function withReporter(source: MemorySource, opts: Partial<StatusReportingOptions>, body: (api: ReplicaApi, reporting: StatusReporting) => Promise<void>): Promise<void> {
  const gateway = await Gateway.start({ sources: [source], logger: memoryLogger().logger, scrapeIntervalMs: 0 });
  const api = new ReplicaApi(server);
  const reporting = startStatusReporting(
    {
      api,
      identity: 'pod-a',
      leaseName: `lease-${opts.mode ?? 'gateway'}`,
      namespace: 'default',
      mode: 'gateway',
      log: memoryLog(),
      lease: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 200 },
      debounceMs: 20,
      ...opts,
    },
    () => gateway.configResources(),
    (cb) => gateway.afterSwap(() => cb()),
  );
  try {
    await body(api, reporting);
  } finally {
    await reporting.stop();
    await gateway.close();
    await api.close();
  }
}

test('gateway mode: a pool routed through two Gateways gets two entries next to the other controller’s; deleting a route clears that Gateway’s entry only', async () => {
  const source = new MemorySource(cluster(['r1', 'r2']));
  await withReporter(source, {}, async (api, reporting) => {
    const both = [THEIRS.controllerName + ' Gateway/envoy: Accepted=True', 'infergate.dev/gateway-controller Gateway/gw1: Accepted=True,ResolvedRefs=True', 'infergate.dev/gateway-controller Gateway/gw2: Accepted=True,ResolvedRefs=True'];
    await waitFor('pool status with both Gateways', () => JSON.stringify(summary('InferencePool/default/pool')) === JSON.stringify(both), 20_000);
    await waitFor('route status', () => summary('HTTPRoute/default/r1').length === 1 && summary('HTTPRoute/default/r2').length === 1, 20_000);
    assert.deepEqual(summary('HTTPRoute/default/r1'), ['infergate.dev/gateway-controller Gateway/gw1: Accepted=True,ResolvedRefs=True']);

    // A change that moves no status (a model added) writes nothing.
    await reporting.idle();
    const writes = api.statusPuts.length;
    await source.set(`${cluster(['r1', 'r2'])}---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: m}
spec: {modelName: m, poolRef: {name: pool}}
`);
    await reporting.idle();
    assert.equal(api.statusPuts.length, writes, 'no write for a change that moves no status');

    // r1 deleted (from the cluster and so from the gateway's view): gw1's entry goes, the rest stays.
    server.delete('HTTPRoute/default/r1');
    await source.set(cluster(['r2']));
    await waitFor('gw1 entry cleared', () => summary('InferencePool/default/pool').length === 2, 20_000);
    assert.deepEqual(summary('InferencePool/default/pool'), [both[0], both[2]]);
  });
});

test('gateway mode: the pool’s endpointPickerRef Service deleted: ResolvedRefs turns False', async () => {
  const source = new MemorySource(cluster(['r2']));
  await withReporter(source, {}, async () => {
    await waitFor('resolved', () => summary('InferencePool/default/pool').some((s) => s.includes('gw2: Accepted=True,ResolvedRefs=True')), 20_000);
    await source.set(cluster(['r2']).replace(/---\napiVersion: v1\nkind: Service[\s\S]*$/, ''));
    await waitFor('unresolved', () => summary('InferencePool/default/pool').some((s) => s.includes('gw2: Accepted=True,ResolvedRefs=False')), 20_000);
    const entry = parents('InferencePool/default/pool').find((p) => p.parentRef.name === 'gw2');
    assert.equal(entry?.conditions.find((c) => c.type === 'ResolvedRefs')?.reason, 'InvalidExtensionRef');
  });
});

test('epp mode: only the pool’s own entry under the endpoint picker’s name; route status is left to the Gateway controller', async () => {
  const routeBefore = JSON.stringify(server.get('HTTPRoute/default/r2')?.['status'] ?? null);
  // The picker's view: its pool (and what names it), as its Kubernetes source delivers it.
  const poolOnly = cluster([]).split('---').filter((d) => d.includes('kind: InferencePool')).join('---');
  await withReporter(new MemorySource(poolOnly), { mode: 'epp', poolName: 'pool', leaseName: 'pool-epp' }, async (api) => {
    await waitFor('the picker’s entry', () => summary('InferencePool/default/pool').some((s) => s.startsWith('infergate.dev/endpoint-picker Status/default: Accepted=True,ResolvedRefs=True')), 20_000);
    assert.ok(summary('InferencePool/default/pool').some((s) => s.startsWith(THEIRS.controllerName)), 'the other controller’s entry stays');
    assert.ok(api.statusPuts.every((p) => p.path.includes('/inferencepools/pool/')), 'only the pool is written');
  });
  assert.equal(JSON.stringify(server.get('HTTPRoute/default/r2')?.['status'] ?? null), routeBefore);
});
