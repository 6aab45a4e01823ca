import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { cli } from '../support/cli.js';

/*
 * deploy/ is what users apply to a cluster; nothing else runs it here, so these tests keep it from
 * rotting: every file parses, every inference resource passes `infergate validate` (the ConfigMaps'
 * embedded files as the EPP reads them), the copies the EPP reads agree with what is applied to
 * the cluster, and the names that tie the manifests together (Service, ports, pool, ConfigMap
 * keys, policy targets) agree.
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
  assert.deepEqual(files.map((f) => relative(DEPLOY, f)).sort(), ['pd/inference-pool.yaml', 'pool/inference-pool.yaml', 'variants/inference-pool-v1.yaml']);
  for (const f of files) await assertValid([f], relative(DEPLOY, f));
});

test("the EPP's ConfigMaps hold valid files, the same resources as those applied to the cluster", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-deploy-'));
  try {
    for (const [configMap, applied] of [['pool/epp-config.yaml', 'pool/inference-pool.yaml'], ['pd/epp-config.yaml', 'pd/inference-pool.yaml']] as const) {
      const cm = find(await docsOf(configMap), 'ConfigMap', 'inference-gateway-ext-proc-config');
      const data = cm['data'] as Record<string, string>;
      assert.deepEqual(Object.keys(data).sort(), ['pods.yaml', 'pool.yaml'], configMap);
      assert.deepEqual(parseAll(data['pool.yaml'] ?? '', configMap), await docsOf(applied), `${configMap} pool.yaml must equal ${applied}`);
      // As the pod sees them: one file per key, given to validate as the EPP's -f flags are.
      const files = Object.keys(data).map((key) => join(dir, key));
      for (const [key, text] of Object.entries(data)) await writeFile(join(dir, key), text);
      const out = await assertValid(files, configMap);
      assert.match(out, /InferencePool\/qwen-inference-pool/);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the EPP Deployment, its Service, ConfigMap and the pool name each other consistently', async () => {
  const deployment = find(await docsOf('epp/deployment.yaml'), 'Deployment', 'inference-gateway-ext-proc');
  const service = find(await docsOf('epp/service.yaml'), 'Service', 'inference-gateway-ext-proc');
  const account = find(await docsOf('epp/serviceaccount.yaml'), 'ServiceAccount');
  const pool = find(await docsOf('pool/inference-pool.yaml'), 'InferencePool');
  const poolV1 = find(await docsOf('variants/inference-pool-v1.yaml'), 'InferencePool');
  const cm = find(await docsOf('pool/epp-config.yaml'), 'ConfigMap');

  const pod = at(deployment, 'spec', 'template', 'spec') as Doc;
  const epp = at(pod, 'containers', 0) as Doc;
  const args = epp['args'];
  assert.equal(at(args, 0), 'epp');
  assert.equal(flag(args, '--grpc-port'), '9002');
  assert.equal(flag(args, '--grpc-health-port'), '9003');
  assert.equal(flag(args, '--metrics-port'), '9090');
  assert.equal(flag(args, '--pool-name'), at(pool, 'metadata', 'name'));
  assert.equal(pod['serviceAccountName'], at(account, 'metadata', 'name'));
  // Native gRPC probes on the health port, with upstream's service names.
  assert.deepEqual(at(epp, 'livenessProbe', 'grpc'), { port: 9003, service: 'liveness' });
  assert.deepEqual(at(epp, 'readinessProbe', 'grpc'), { port: 9003, service: 'readiness' });
  // Each -f is a file of the mounted ConfigMap (a folder would hold only symbolic links).
  const mount = at(epp, 'volumeMounts', 0) as Doc;
  const volume = (pod['volumes'] as Doc[]).find((v) => v['name'] === mount['name']);
  assert.equal(at(volume, 'configMap', 'name'), at(cm, 'metadata', 'name'));
  const files = (args as string[]).filter((_, i, a) => a[i - 1] === '-f');
  assert.deepEqual(files.sort(), Object.keys(cm['data'] as Doc).map((k) => `${String(mount['mountPath'])}/${k}`).sort());

  // The pool's EPP reference (both API versions) is this Service's ext_proc port, HTTP/2.
  const ports = at(service, 'spec', 'ports') as Doc[];
  const grpc = ports.find((p) => p['port'] === 9002);
  assert.equal(grpc?.['appProtocol'], 'http2');
  assert.ok(ports.some((p) => p['port'] === 9003) && ports.some((p) => p['port'] === 9090));
  assert.deepEqual(at(service, 'spec', 'selector'), at(deployment, 'spec', 'selector', 'matchLabels'));
  assert.equal(at(pool, 'spec', 'extensionRef', 'name'), at(service, 'metadata', 'name'));
  assert.equal(at(pool, 'spec', 'extensionRef', 'portNumber'), 9002);
  assert.equal(at(poolV1, 'spec', 'endpointPickerRef', 'name'), at(service, 'metadata', 'name'));
  assert.equal(at(poolV1, 'spec', 'endpointPickerRef', 'port', 'number'), 9002);
  for (const p of ports) if (typeof p['targetPort'] === 'string') assert.ok((epp['ports'] as Doc[]).some((c) => c['name'] === p['targetPort']), `targetPort ${String(p['targetPort'])}`);
});

test('the Envoy Gateway policies point at the route, the Gateway listener and the EPP Service', async () => {
  const gateway = await docsOf('gateway/gateway.yaml');
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

test('kustomization.yaml lists files that exist', async () => {
  const k = find(await docsOf('kustomization.yaml'), 'Kustomization');
  for (const r of k['resources'] as string[]) assert.ok((await stat(join(DEPLOY, r))).isFile(), r);
});

test('the PD decode pod: the sidecar on the target port, the decode server behind it, both roles labelled', async () => {
  const pool = find(await docsOf('pd/inference-pool.yaml'), 'InferencePool');
  const policy = find(await docsOf('pd/inference-pool.yaml'), 'InferenceTrafficPolicy');
  const roleLabel = String(at(policy, 'spec', 'profile', 'pd', 'pdRoleLabelName'));
  const targetPort = String(at(pool, 'spec', 'targetPortNumber'));
  const selector = at(pool, 'spec', 'selector') as Record<string, string>;

  for (const [file, role] of [['pd/decode.yaml', 'decode'], ['pd/prefill.yaml', 'prefill']] as const) {
    const labels = at(find(await docsOf(file), 'Deployment'), 'spec', 'template', 'metadata', 'labels') as Record<string, string>;
    assert.equal(labels[roleLabel], role, `${file}: role label`);
    for (const [k, v] of Object.entries(selector)) assert.equal(labels[k], v, `${file}: selected by the pool`);
  }

  const decodePod = at(find(await docsOf('pd/decode.yaml'), 'Deployment'), 'spec', 'template', 'spec') as Doc;
  const [sidecar, engine] = decodePod['containers'] as Doc[];
  assert.equal(at(sidecar, 'args', 0), 'pd-sidecar');
  assert.equal(flag(sidecar?.['args'], '--port'), targetPort, 'the sidecar owns the pool target port');
  assert.equal(flag(sidecar?.['args'], '--pool-name'), at(pool, 'metadata', 'name'));
  const decodeUrl = new URL(flag(sidecar?.['args'], '--decode-url') ?? '');
  assert.equal(decodeUrl.hostname, '127.0.0.1');
  assert.equal(flag(engine?.['command'], '--port'), decodeUrl.port, 'the decode server listens where the sidecar sends');
  assert.notEqual(decodeUrl.port, targetPort);
  assert.equal(flag(engine?.['command'], '--disaggregation-mode'), 'decode');

  const prefill = at(find(await docsOf('pd/prefill.yaml'), 'Deployment'), 'spec', 'template', 'spec', 'containers', 0) as Doc;
  assert.equal(flag(prefill['command'], '--port'), targetPort);
  assert.equal(flag(prefill['command'], '--disaggregation-bootstrap-port'), String(at(policy, 'spec', 'profile', 'pd', 'kvTransfer', 'bootstrapPort')));
});
