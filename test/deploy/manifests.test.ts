import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parseDurationMs } from '../../src/api/duration.js';
import { HEALTH_SERVICES } from '../../src/extproc/health.js';
import { startAdminServer } from '../../src/observability/admin-server.js';
import { cli } from '../support/cli.js';

/*
 * deploy/ is what users apply to a cluster; nothing else runs it here, so these tests keep it from
 * rotting: every file parses, every inference resource passes `infergate validate` (the PD
 * sidecars' ConfigMap as the sidecar reads it, and the same as what is applied to the cluster),
 * the gateway Deployments run unprivileged with probes the servers answer and a grace period
 * that lets streams drain, and the names that tie the manifests together (Services, ports, pool,
 * Lease, ConfigMap keys, policy targets) agree. test/deploy/kustomize.test.ts renders the
 * kustomizations as kubectl does.
 */

const DEPLOY = fileURLToPath(new URL('../../../deploy/', import.meta.url));

/** Kinds `infergate validate` reads that belong to the Inference Extension (and ACK's). */
const INFERENCE_KINDS = new Set(['InferencePool', 'InferenceModel', 'InferenceTrafficPolicy', 'InferenceObjective', 'InferenceModelRewrite']);

type Doc = Record<string, unknown>;

async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await yamlFiles(full)));
    else if (/\.ya?ml$/.test(e.name)) out.push(full);
  }
  return out;
}

/** Every document of a YAML text; a syntax error or warning fails with the file's name. */
function parseAll(text: string, name: string): Doc[] {
  return parseAllDocuments(text).flatMap((d) => {
    assert.deepEqual(d.errors.map((e) => e.message), [], `${name}: YAML errors`);
    assert.deepEqual(d.warnings.map((e) => e.message), [], `${name}: YAML warnings`);
    const js: unknown = d.toJS();
    return js === null || js === undefined ? [] : [js as Doc];
  });
}

async function docsOf(rel: string): Promise<Doc[]> {
  return parseAll(await readFile(join(DEPLOY, rel), 'utf8'), rel);
}

function find(docs: readonly Doc[], kind: string, name?: string): Doc {
  const d = docs.find((x) => x['kind'] === kind && (name === undefined || (x['metadata'] as Doc | undefined)?.['name'] === name));
  assert.ok(d, `no ${kind}${name === undefined ? '' : `/${name}`}`);
  return d;
}

/** A path into plain parsed YAML, e.g. at(d, 'spec', 'template', 'spec', 'containers', 0). */
function at(value: unknown, ...path: (string | number)[]): unknown {
  let v = value;
  for (const key of path) {
    assert.ok(v !== null && typeof v === 'object', `missing ${path.join('.')}`);
    v = (v as Record<string | number, unknown>)[key];
  }
  return v;
}

/** The value after `flag` in an args list. */
function flag(args: unknown, name: string): string | undefined {
  assert.ok(Array.isArray(args));
  const i = args.indexOf(name);
  return i < 0 ? undefined : String(args[i + 1]);
}

/** Runs `infergate validate -f …` on `files`; asserts it succeeds with only "no Pod" warnings. */
async function assertValid(files: readonly string[], label: string): Promise<string> {
  const r = await cli(['validate', ...files.flatMap((f) => ['-f', f])]);
  assert.equal(r.code, 0, `${label}: infergate validate failed:\n${r.stderr}`);
  const unexpected = r.stderr.split('\n').filter((l) => l !== '' && !/^warning: .*matches no Pod in these files/.test(l));
  assert.deepEqual(unexpected, [], `${label}: unexpected validate output`);
  return r.stdout;
}

test('every YAML file in deploy/ parses, and every manifest names its apiVersion, kind and name', async () => {
  const files = await yamlFiles(DEPLOY);
  assert.ok(files.length >= 15, `found ${files.length} files`);
  for (const file of files) {
    const rel = relative(DEPLOY, file);
    const docs = parseAll(await readFile(file, 'utf8'), rel);
    assert.ok(docs.length > 0, `${rel} is empty`);
    if (rel.startsWith('envoy/envoy')) continue; // Envoy bootstraps, checked below
    for (const d of docs) {
      assert.equal(typeof d['apiVersion'], 'string', `${rel}: apiVersion`);
      assert.equal(typeof d['kind'], 'string', `${rel}: kind`);
      if (d['kind'] !== 'Kustomization') assert.equal(typeof at(d, 'metadata', 'name'), 'string', `${rel}: metadata.name`);
      // A ConfigMap's files parse too (the EPP reads them).
      if (d['kind'] === 'ConfigMap') for (const [key, text] of Object.entries((d['data'] ?? {}) as Record<string, string>)) parseAll(text, `${rel}: data.${key}`);
    }
  }
});

test('every file of deploy/ with an inference resource passes infergate validate', async () => {
  const files: string[] = [];
  for (const file of await yamlFiles(DEPLOY)) {
    const docs = parseAll(await readFile(file, 'utf8'), file);
    if (docs.some((d) => INFERENCE_KINDS.has(String(d['kind'])))) files.push(file);
  }
  assert.deepEqual(files.map((f) => relative(DEPLOY, f)).sort(), ['examples/pd/inference-pool.yaml', 'examples/pool/inference-pool.yaml', 'examples/variants/inference-pool-v1.yaml']);
  for (const f of files) await assertValid([f], relative(DEPLOY, f));
});

test("the PD sidecars' ConfigMap holds valid files, the same resources as those applied to the cluster", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-deploy-'));
  try {
    const decodePod = at(find(await docsOf('examples/pd/decode.yaml'), 'Deployment'), 'spec', 'template', 'spec') as Doc;
    const volume = (decodePod['volumes'] as Doc[]).find((v) => v['name'] === 'config');
    const cm = find(await docsOf('examples/pd/sidecar-config.yaml'), 'ConfigMap', String(at(volume, 'configMap', 'name')));
    const data = cm['data'] as Record<string, string>;
    assert.deepEqual(Object.keys(data).sort(), ['pods.yaml', 'pool.yaml']);
    assert.deepEqual(parseAll(data['pool.yaml'] ?? '', 'pool.yaml'), await docsOf('examples/pd/inference-pool.yaml'), 'pool.yaml must equal examples/pd/inference-pool.yaml');
    // As the pod sees them: one file per key, given to validate as the sidecar's -f flags are.
    const files = Object.keys(data).map((key) => join(dir, key));
    for (const [key, text] of Object.entries(data)) await writeFile(join(dir, key), text);
    assert.match(await assertValid(files, 'sidecar-config.yaml'), /InferencePool\/qwen-inference-pool/);
    const sidecar = (decodePod['containers'] as Doc[])[0];
    const mount = at(sidecar, 'volumeMounts', 0) as Doc;
    const args = (sidecar?.['args'] ?? []) as string[];
    assert.deepEqual(args.filter((_, i) => args[i - 1] === '-f').sort(), Object.keys(data).map((k) => `${String(mount['mountPath'])}/${k}`).sort());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** A duration flag's value in milliseconds (`120s`, `2m`, or milliseconds), as the CLI reads it. */
function durationMs(text: string | undefined): number {
  const ms = text === undefined ? undefined : parseDurationMs(text);
  assert.ok(ms !== undefined, `not a duration: ${String(text)}`);
  return ms;
}

/**
 * What every gateway Deployment here must hold: a non-root, read-only pod whose downward API gives
 * the Lease identity, and a termination grace that covers the preStop pause, the drain deadline
 * (--shutdown-grace) and a few seconds to flush.
 */
function assertRunsSafely(deployment: Doc, label: string): { pod: Doc; container: Doc; args: string[] } {
  const pod = at(deployment, 'spec', 'template', 'spec') as Doc;
  const container = at(pod, 'containers', 0) as Doc;
  const args = container['args'] as string[];
  assert.ok(args.includes('--kubernetes'), `${label}: --kubernetes`);
  assert.ok(!args.includes('-f') && !args.includes('--file'), `${label}: no files: the configuration comes from the API server`);
  assert.equal(pod['volumes'] === undefined ? undefined : (pod['volumes'] as Doc[]).find((v) => v['configMap'] !== undefined), undefined, `${label}: no ConfigMap`);
  assert.equal(at(pod, 'securityContext', 'runAsNonRoot'), true, `${label}: runAsNonRoot`);
  assert.equal(at(container, 'securityContext', 'readOnlyRootFilesystem'), true, `${label}: readOnlyRootFilesystem`);
  assert.equal(at(container, 'securityContext', 'allowPrivilegeEscalation'), false, `${label}: allowPrivilegeEscalation`);
  assert.deepEqual(at(container, 'securityContext', 'capabilities', 'drop'), ['ALL'], `${label}: capabilities`);
  const env = container['env'] as Doc[];
  for (const [name, field] of [['POD_NAME', 'metadata.name'], ['POD_NAMESPACE', 'metadata.namespace']]) {
    assert.equal(at(env.find((e) => e['name'] === name), 'valueFrom', 'fieldRef', 'fieldPath'), field, `${label}: ${name} from the downward API`);
  }
  assert.ok(at(container, 'resources', 'requests', 'cpu') !== undefined && at(container, 'resources', 'limits', 'memory') !== undefined, `${label}: resources`);
  const preStop = at(container, 'lifecycle', 'preStop', 'exec', 'command') as string[];
  assert.equal(preStop[0], 'sleep');
  const needMs = Number(preStop[1]) * 1000 + durationMs(flag(args, '--shutdown-grace')) + 5_000;
  assert.ok(Number(pod['terminationGracePeriodSeconds']) * 1000 >= needMs, `${label}: terminationGracePeriodSeconds ${String(pod['terminationGracePeriodSeconds'])} s < preStop + --shutdown-grace + 5 s`);
  return { pod, container, args };
}

/** Every Service port reaches a named container port. */
function assertServicePorts(service: Doc, container: Doc, deployment: Doc): void {
  assert.deepEqual(at(service, 'spec', 'selector'), at(deployment, 'spec', 'selector', 'matchLabels'), `${String(at(service, 'metadata', 'name'))}: selector`);
  for (const p of at(service, 'spec', 'ports') as Doc[]) {
    assert.ok((container['ports'] as Doc[]).some((c) => c['name'] === p['targetPort'] || c['containerPort'] === p['targetPort']), `targetPort ${String(p['targetPort'])}`);
  }
}

/** The PodDisruptionBudget that selects the Deployment's pods lets at most one go at a time. */
function assertBudget(pdb: Doc, deployment: Doc): void {
  const labels = at(deployment, 'spec', 'template', 'metadata', 'labels') as Record<string, string>;
  for (const [k, v] of Object.entries(at(pdb, 'spec', 'selector', 'matchLabels') as Record<string, string>)) assert.equal(labels[k], v, `PDB selects ${k}`);
  assert.equal(at(pdb, 'spec', 'maxUnavailable'), 1);
}

test('the EPP Deployment, its Service, RBAC, budget and the pool name each other consistently', async () => {
  const deployment = find(await docsOf('epp/deployment.yaml'), 'Deployment', 'inference-gateway-ext-proc');
  const service = find(await docsOf('epp/service.yaml'), 'Service', 'inference-gateway-ext-proc');
  const account = find(await docsOf('epp/serviceaccount.yaml'), 'ServiceAccount');
  const role = find(await docsOf('epp/rbac.yaml'), 'Role');
  const binding = find(await docsOf('epp/rbac.yaml'), 'RoleBinding');
  const pool = find(await docsOf('examples/pool/inference-pool.yaml'), 'InferencePool');
  const poolV1 = find(await docsOf('examples/variants/inference-pool-v1.yaml'), 'InferencePool');

  const { pod, container: epp, args } = assertRunsSafely(deployment, 'epp');
  assert.equal(args[0], 'epp');
  assert.equal(flag(args, '--grpc-port'), '9002');
  assert.equal(flag(args, '--grpc-health-port'), '9003');
  assert.equal(flag(args, '--metrics-port'), '9090');
  assert.equal(flag(args, '--metrics-address'), '0.0.0.0');
  assert.equal(flag(args, '--pool-name'), at(pool, 'metadata', 'name'));
  assert.equal(pod['serviceAccountName'], at(account, 'metadata', 'name'));
  assert.equal(account['automountServiceAccountToken'], true, 'the token the watch needs');
  assert.deepEqual(at(binding, 'subjects', 0, 'name'), at(account, 'metadata', 'name'));
  assert.deepEqual(at(binding, 'roleRef', 'name'), at(role, 'metadata', 'name'));
  // Native gRPC probes on the health port, with the service names the health server answers.
  assert.deepEqual(at(epp, 'livenessProbe', 'grpc'), { port: 9003, service: HEALTH_SERVICES.liveness });
  assert.deepEqual(at(epp, 'readinessProbe', 'grpc'), { port: 9003, service: HEALTH_SERVICES.readiness });
  // The Lease it may renew is the one it uses by default: `<pool-name>-epp`.
  const leaseRule = (role['rules'] as Doc[]).find((r) => (r['resources'] as string[]).includes('leases') && r['resourceNames'] !== undefined);
  assert.deepEqual(leaseRule?.['resourceNames'], [`${String(flag(args, '--pool-name'))}-epp`]);
  assertBudget(find(await docsOf('epp/pdb.yaml'), 'PodDisruptionBudget'), deployment);

  // The pool's EPP reference (both API versions) is this Service's ext_proc port, HTTP/2.
  const ports = at(service, 'spec', 'ports') as Doc[];
  const grpc = ports.find((p) => p['port'] === 9002);
  assert.equal(grpc?.['appProtocol'], 'http2');
  assert.ok(ports.some((p) => p['port'] === 9003) && ports.some((p) => p['port'] === 9090));
  assertServicePorts(service, epp, deployment);
  assert.equal(at(pool, 'spec', 'extensionRef', 'name'), at(service, 'metadata', 'name'));
  assert.equal(at(pool, 'spec', 'extensionRef', 'portNumber'), 9002);
  assert.equal(at(poolV1, 'spec', 'endpointPickerRef', 'name'), at(service, 'metadata', 'name'));
  assert.equal(at(poolV1, 'spec', 'endpointPickerRef', 'port', 'number'), 9002);
});

test("the standalone Deployment: probes on the admin server's health routes, Services on its ports, its Lease and class", async () => {
  const deployment = find(await docsOf('standalone/deployment.yaml'), 'Deployment', 'infergate');
  const services = await docsOf('standalone/service.yaml');
  const rbac = await docsOf('standalone/rbac.yaml');
  const { pod, container, args } = assertRunsSafely(deployment, 'standalone');
  assert.equal(args[0], 'serve');
  assert.equal(pod['serviceAccountName'], at(find(await docsOf('standalone/serviceaccount.yaml'), 'ServiceAccount'), 'metadata', 'name'));
  assert.equal(flag(args, '--admin-address'), '0.0.0.0', 'kubelet and Prometheus reach the admin port on the pod address');
  const adminPort = Number(flag(args, '--admin-port'));
  const admin = (container['ports'] as Doc[]).find((p) => p['containerPort'] === adminPort);
  assert.ok(admin, 'the admin port is a container port');
  assertBudget(find(await docsOf('standalone/pdb.yaml'), 'PodDisruptionBudget'), deployment);
  for (const s of services) assertServicePorts(s, container, deployment);

  // The probe paths are routes the admin server answers: liveness 200, readiness 200 when ready
  // and 503 when not.
  let ready = false;
  const server = await startAdminServer('127.0.0.1', 0, { live: () => true, ready: () => ({ ready }) });
  try {
    for (const probe of ['livenessProbe', 'readinessProbe']) {
      const get = at(container, probe, 'httpGet') as Doc;
      assert.ok(get['port'] === admin['name'] || get['port'] === adminPort, `${probe} on the admin port`);
      const url = `http://127.0.0.1:${server.port}${String(get['path'])}`;
      ready = false;
      const before = (await fetch(url)).status;
      ready = true;
      const after = (await fetch(url)).status;
      assert.deepEqual([before, after], probe === 'livenessProbe' ? [200, 200] : [503, 200], `${probe} ${String(get['path'])}`);
    }
  } finally {
    await server.close();
  }

  // The Lease it may renew is its default one; the GatewayClass it ships is the default class.
  const lease = find(rbac, 'Role', 'infergate-lease');
  assert.deepEqual((lease['rules'] as Doc[]).find((r) => r['resourceNames'] !== undefined)?.['resourceNames'], ['infergate-status']);
  assert.equal(flag(args, '--lease-name'), undefined, 'the Role names the default Lease');
  const gatewayClass = find(await docsOf('standalone/gatewayclass.yaml'), 'GatewayClass');
  assert.equal(flag(args, '--gateway-class'), undefined, 'the class shipped is the default one');
  assert.equal(at(gatewayClass, 'metadata', 'name'), 'infergate');
  assert.equal(at(gatewayClass, 'spec', 'controllerName'), 'infergate.dev/gateway-controller');
  // Seed 003's Gateway for this mode is in that class, on a port the Deployment and Service open.
  const seedGateway = find(await docsOf('examples/standalone/gateway.yaml'), 'Gateway');
  assert.equal(at(seedGateway, 'spec', 'gatewayClassName'), at(gatewayClass, 'metadata', 'name'));
  const listenerPort = at(seedGateway, 'spec', 'listeners', 0, 'port');
  assert.ok((container['ports'] as Doc[]).some((p) => p['containerPort'] === listenerPort), 'the listener port is a container port');
  assert.ok(services.some((s) => (at(s, 'spec', 'ports') as Doc[]).some((p) => p['port'] === listenerPort)), 'and a Service port');
  // The all-namespaces binding grants the same ClusterRole the base binds in one namespace.
  const wide = find(await docsOf('standalone/all-namespaces.yaml'), 'ClusterRoleBinding');
  assert.deepEqual(at(wide, 'roleRef'), at(find(rbac, 'RoleBinding', 'infergate-config'), 'roleRef'));
});

test('the Envoy Gateway policies point at the route, the Gateway listener and the EPP Service', async () => {
  const gateway = await docsOf('examples/gateway/gateway.yaml');
  const route = find(gateway, 'HTTPRoute');
  const gw = find(gateway, 'Gateway');
  const policy = find(await docsOf('envoy-gateway/extension-policy.yaml'), 'EnvoyExtensionPolicy');
  const patch = find(await docsOf('envoy-gateway/patch-policy.yaml'), 'EnvoyPatchPolicy');

  assert.deepEqual(at(policy, 'spec', 'targetRefs', 0), { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: at(route, 'metadata', 'name') });
  const extProc = at(policy, 'spec', 'extProc', 0) as Doc;
  assert.deepEqual(at(extProc, 'backendRefs', 0), { group: '', kind: 'Service', name: 'inference-gateway-ext-proc', port: 9002 });
  assert.equal(at(extProc, 'processingMode', 'request', 'body'), 'FullDuplexStreamed');
  assert.equal(at(extProc, 'processingMode', 'response', 'body'), 'FullDuplexStreamed');
  // Envoy Gateway's CEL rule: FullDuplexStreamed requires failOpen false.
  assert.equal(extProc['failOpen'], false);

  assert.equal(at(patch, 'spec', 'targetRef', 'name'), at(gw, 'metadata', 'name'));
  const names = (at(patch, 'spec', 'jsonPatches') as Doc[]).map((p) => String(p['name']));
  const listener = String(at(gw, 'spec', 'listeners', 0, 'name'));
  assert.ok(names.includes(`default/${String(at(gw, 'metadata', 'name'))}/${listener}`), 'route configuration named <ns>/<gateway>/<listener>');
  assert.ok(names.includes(`envoyextensionpolicy/default/${String(at(policy, 'metadata', 'name'))}/extproc/0`), "the EPP's cluster named after the policy");
  const dst = (at(patch, 'spec', 'jsonPatches') as Doc[]).find((p) => p['name'] === 'original_destination_cluster');
  assert.deepEqual(at(dst, 'operation', 'value', 'original_dst_lb_config'), { use_http_header: true, http_header_name: 'x-gateway-destination-endpoint' });
});

test('every kustomization.yaml lists files that exist, and deploy/kustomization.yaml has every file of deploy/epp', async () => {
  const kustomizations = (await yamlFiles(DEPLOY)).filter((f) => f.endsWith('kustomization.yaml'));
  assert.deepEqual(kustomizations.map((f) => relative(DEPLOY, f)).sort(), ['crds/kustomization.yaml', 'epp/kustomization.yaml', 'kustomization.yaml', 'observability/kustomization.yaml', 'standalone/kustomization.yaml']);
  for (const file of kustomizations) {
    const k = find(parseAll(await readFile(file, 'utf8'), file), 'Kustomization');
    for (const r of k['resources'] as string[]) assert.ok((await stat(join(file, '..', r))).isFile(), `${relative(DEPLOY, file)}: ${r}`);
  }
  const root = find(await docsOf('kustomization.yaml'), 'Kustomization');
  const epp = find(await docsOf('epp/kustomization.yaml'), 'Kustomization');
  for (const r of epp['resources'] as string[]) assert.ok((root['resources'] as string[]).includes(`epp/${r}`), `deploy/kustomization.yaml lacks epp/${r}`);
  assert.deepEqual(root['images'], epp['images']);
});

test('the PD decode pod: the sidecar on the target port, the decode server behind it, both roles labelled', async () => {
  const pool = find(await docsOf('examples/pd/inference-pool.yaml'), 'InferencePool');
  const policy = find(await docsOf('examples/pd/inference-pool.yaml'), 'InferenceTrafficPolicy');
  const roleLabel = String(at(policy, 'spec', 'profile', 'pd', 'pdRoleLabelName'));
  const targetPort = String(at(pool, 'spec', 'targetPortNumber'));
  const selector = at(pool, 'spec', 'selector') as Record<string, string>;

  for (const [file, role] of [['examples/pd/decode.yaml', 'decode'], ['examples/pd/prefill.yaml', 'prefill']] as const) {
    const labels = at(find(await docsOf(file), 'Deployment'), 'spec', 'template', 'metadata', 'labels') as Record<string, string>;
    assert.equal(labels[roleLabel], role, `${file}: role label`);
    for (const [k, v] of Object.entries(selector)) assert.equal(labels[k], v, `${file}: selected by the pool`);
  }

  const decodePod = at(find(await docsOf('examples/pd/decode.yaml'), 'Deployment'), 'spec', 'template', 'spec') as Doc;
  const [sidecar, engine] = decodePod['containers'] as Doc[];
  assert.equal(at(sidecar, 'args', 0), 'pd-sidecar');
  assert.equal(flag(sidecar?.['args'], '--port'), targetPort, 'the sidecar owns the pool target port');
  assert.equal(flag(sidecar?.['args'], '--pool-name'), at(pool, 'metadata', 'name'));
  const decodeUrl = new URL(flag(sidecar?.['args'], '--decode-url') ?? '');
  assert.equal(decodeUrl.hostname, '127.0.0.1');
  assert.equal(flag(engine?.['command'], '--port'), decodeUrl.port, 'the decode server listens where the sidecar sends');
  assert.notEqual(decodeUrl.port, targetPort);
  assert.equal(flag(engine?.['command'], '--disaggregation-mode'), 'decode');

  const prefill = at(find(await docsOf('examples/pd/prefill.yaml'), 'Deployment'), 'spec', 'template', 'spec', 'containers', 0) as Doc;
  assert.equal(flag(prefill['command'], '--port'), targetPort);
  assert.equal(flag(prefill['command'], '--disaggregation-bootstrap-port'), String(at(policy, 'spec', 'profile', 'pd', 'kvTransfer', 'bootstrapPort')));
});
