import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { RUNTIMES } from '../../src/api/kinds/inference.js';
import { GATEWAY_TYPES, POD, POOL_TYPES } from '../../src/config/kubernetes/watched-kinds.js';
import { KINDS } from '../../src/api/kinds/index.js';
import { parseDocuments } from '../../src/api/load.js';
import { validateStructural } from '../support/structural-schema.js';

/*
 * What `kubectl apply -k` applies, rendered as kubectl renders it (`kubectl kustomize`): every
 * kustomization in deploy/ builds; every rendered document of a kind the gateway reads passes the
 * project's own loader (the same code that reads these objects from the API server); the RBAC
 * bound to each gateway's ServiceAccount lets it list and watch every kind it reads, write only
 * the status it owns and its own Lease, and nothing else; and the InferenceTrafficPolicy CRD
 * accepts what the loader accepts and refuses what it refuses.
 *
 * kubectl: .ci/run installs Debian's kubernetes-client (kubectl 1.20, an old kustomize) where
 * kubectl is missing, so the kustomizations are written for old and new kustomize alike. Outside CI
 * a machine without kubectl skips these tests with that advice; in CI (CI=true) a missing kubectl
 * fails them.
 */

const DEPLOY = fileURLToPath(new URL('../../../deploy/', import.meta.url));
const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));
const run = promisify(execFile);

type Doc = Record<string, unknown>;

async function kubectlUsable(): Promise<string | undefined> {
  try {
    await run('kubectl', ['version', '--client'], { timeout: 30_000 });
    return undefined;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'kubectl is not installed' : `kubectl does not run: ${(err as Error).message.split('\n')[0] ?? ''}`;
    assert.notEqual(process.env['CI'], 'true', `${why}; .ci/run installs it (apt-get install kubernetes-client)`);
    return `${why} (apt-get install kubernetes-client, as .ci/run does)`;
  }
}

const skip = await kubectlUsable();

/** `kubectl kustomize deploy/<dir>`: the rendered documents, as plain objects. */
async function render(dir: string): Promise<Doc[]> {
  const { stdout } = await run('kubectl', ['kustomize', join(DEPLOY, dir)], { timeout: 60_000, maxBuffer: 16 << 20 });
  return parseAllDocuments(stdout).flatMap((d) => {
    assert.deepEqual(d.errors, [], `${dir}: kubectl kustomize printed YAML that does not parse`);
    const js: unknown = d.toJS();
    return js === null || js === undefined ? [] : [js as Doc];
  });
}

function nameOf(d: Doc): string {
  return String((d['metadata'] as Doc | undefined)?.['name']);
}

const BASES = ['standalone', 'epp', 'crds', 'observability', '.'] as const;

test('every kustomization renders, and every rendered document of a kind the gateway reads passes its loader', { skip }, async () => {
  for (const dir of BASES) {
    const docs = await render(dir);
    assert.ok(docs.length > 0, `${dir}: nothing rendered`);
    const text = docs.map((d) => JSON.stringify(d)).join('\n---\n');
    const loaded = parseDocuments(text, `kubectl kustomize deploy/${dir}`);
    assert.deepEqual(loaded.problems.map((p) => `${p.subject}: ${p.path}: ${p.message}`), [], `deploy/${dir}`);
    const known = docs.filter((d) => KINDS.has(String(d['kind'])));
    assert.equal(loaded.resources.length, known.length, `deploy/${dir}: every known document loaded`);
    // The image is set by kustomize, never left as the bare placeholder.
    for (const d of docs.filter((x) => x['kind'] === 'Deployment')) {
      const containers = (((d['spec'] as Doc)['template'] as Doc)['spec'] as Doc)['containers'] as Doc[];
      for (const c of containers) if (c['name'] !== undefined && String(c['image']).startsWith('infergate')) assert.fail(`deploy/${dir}: ${nameOf(d)} runs the placeholder image`);
    }
  }
});

/** One RBAC rule as Kubernetes reads it. */
interface Rule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
  readonly resourceNames?: readonly string[];
}

interface Grant {
  readonly rule: Rule;
  /** Granted through a ClusterRoleBinding (every namespace) rather than a RoleBinding. */
  readonly clusterWide: boolean;
  readonly roleKind: string;
}

/** Every rule bound to the ServiceAccount the rendered Deployment runs as. */
function grantsOf(docs: readonly Doc[]): { account: string; grants: Grant[] } {
  const deployment = docs.find((d) => d['kind'] === 'Deployment');
  assert.ok(deployment);
  const account = String((((deployment['spec'] as Doc)['template'] as Doc)['spec'] as Doc)['serviceAccountName']);
  const grants: Grant[] = [];
  for (const binding of docs.filter((d) => d['kind'] === 'RoleBinding' || d['kind'] === 'ClusterRoleBinding')) {
    const subjects = (binding['subjects'] ?? []) as Doc[];
    if (!subjects.some((s) => s['kind'] === 'ServiceAccount' && s['name'] === account && s['namespace'] === (deployment['metadata'] as Doc)['namespace'])) continue;
    const ref = binding['roleRef'] as Doc;
    const role = docs.find((d) => d['kind'] === ref['kind'] && nameOf(d) === ref['name']);
    assert.ok(role, `${String(binding['kind'])}/${nameOf(binding)} refers to ${String(ref['kind'])}/${String(ref['name'])}, which is not rendered`);
    for (const rule of role['rules'] as Rule[]) grants.push({ rule, clusterWide: binding['kind'] === 'ClusterRoleBinding', roleKind: String(role['kind']) });
  }
  return { account, grants };
}

function allows(grants: readonly Grant[], group: string, resource: string, verb: string): boolean {
  return grants.some((g) => g.rule.apiGroups.includes(group) && g.rule.resources.includes(resource) && g.rule.verbs.includes(verb) && g.rule.resourceNames === undefined);
}

/** What each mode's Kubernetes source lists and watches (the source's own table), Pods included. */
function watchedResources(mode: 'standalone' | 'epp'): { group: string; resource: string }[] {
  const types = [...(mode === 'standalone' ? GATEWAY_TYPES : POOL_TYPES), POD];
  return types.map((t) => ({ group: t.group, resource: t.plural }));
}

const READ = new Set(['get', 'list', 'watch']);
const STATUS = new Set(['get', 'update', 'patch']);

/** Least privilege: reads are reads, writes are status subresources and the Lease, nothing is a wildcard. */
function assertLeastPrivilege(grants: readonly Grant[], statusResources: readonly string[], leaseName: string, label: string): void {
  for (const { rule, roleKind, clusterWide } of grants) {
    const what = `${label}: ${rule.apiGroups.join(',')}/${rule.resources.join(',')} ${rule.verbs.join(',')}`;
    assert.ok(![...rule.apiGroups, ...rule.resources, ...rule.verbs].includes('*'), `${what}: a wildcard`);
    assert.ok(!rule.resources.some((r) => r === 'secrets' || r === 'configmaps'), `${what}: secrets or configmaps`);
    if (rule.resources.includes('leases')) {
      assert.equal(roleKind, 'Role', `${what}: leases in a namespaced Role`);
      assert.ok(!clusterWide);
      assert.deepEqual(rule.apiGroups, ['coordination.k8s.io'], what);
      if (rule.resourceNames === undefined) assert.deepEqual(rule.verbs, ['create'], `${what}: only create without a name`);
      else {
        assert.deepEqual(rule.resourceNames, [leaseName], `${what}: the gateway's own Lease`);
        assert.deepEqual([...rule.verbs].sort(), ['get', 'update'], what);
      }
      continue;
    }
    if (rule.resources.every((r) => r.endsWith('/status'))) {
      for (const r of rule.resources) assert.ok(statusResources.includes(r), `${what}: status it does not own`);
      for (const v of rule.verbs) assert.ok(STATUS.has(v), `${what}: ${v}`);
      continue;
    }
    for (const v of rule.verbs) assert.ok(READ.has(v), `${what}: ${v} on a spec`);
  }
}

test('RBAC: each gateway may list and watch every kind it reads, write only its status and its Lease', { skip }, async () => {
  // Standalone: GatewayClasses cluster-wide (they are cluster-scoped), the rest in its namespace.
  {
    const { grants } = grantsOf(await render('standalone'));
    for (const { group, resource } of watchedResources('standalone')) {
      for (const verb of READ) assert.ok(allows(grants, group, resource, verb), `standalone: ${verb} ${group || 'core'}/${resource}`);
      const g = grants.find((x) => x.rule.apiGroups.includes(group) && x.rule.resources.includes(resource));
      assert.equal(g?.clusterWide, resource === 'gatewayclasses', `standalone: ${resource} ${resource === 'gatewayclasses' ? 'cluster-wide' : 'in its namespace only'}`);
    }
    for (const [group, resource] of [['inference.networking.k8s.io', 'inferencepools/status'], ['inference.networking.x-k8s.io', 'inferencepools/status'], ['gateway.networking.k8s.io', 'httproutes/status']] as const) {
      for (const verb of STATUS) assert.ok(allows(grants, group, resource, verb), `standalone: ${verb} ${group}/${resource}`);
    }
    assertLeastPrivilege(grants, ['inferencepools/status', 'httproutes/status'], 'infergate-status', 'standalone');
  }
  // EPP: one namespace only, its pool's status, never route status (the Gateway controller's).
  {
    const docs = await render('epp');
    assert.ok(!docs.some((d) => d['kind'] === 'ClusterRole' || d['kind'] === 'ClusterRoleBinding'), 'the EPP needs no cluster-wide access');
    const { grants } = grantsOf(docs);
    for (const { group, resource } of watchedResources('epp')) {
      for (const verb of READ) assert.ok(allows(grants, group, resource, verb), `epp: ${verb} ${group || 'core'}/${resource}`);
    }
    for (const group of ['inference.networking.k8s.io', 'inference.networking.x-k8s.io']) {
      for (const verb of STATUS) assert.ok(allows(grants, group, 'inferencepools/status', verb), `epp: ${verb} ${group}/inferencepools/status`);
    }
    const deployment = docs.find((d) => d['kind'] === 'Deployment') as Doc;
    const args = ((((deployment['spec'] as Doc)['template'] as Doc)['spec'] as Doc)['containers'] as Doc[])[0]?.['args'] as string[];
    assertLeastPrivilege(grants, ['inferencepools/status'], `${args[args.indexOf('--pool-name') + 1] ?? ''}-epp`, 'epp');
  }
});

/** Every document of `kind` in the YAML files under `dir`. */
async function documentsOf(dir: string, kind: string): Promise<{ file: string; doc: Doc }[]> {
  const out: { file: string; doc: Doc }[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() || !/\.ya?ml$/.test(e.name)) continue;
    const file = join(e.parentPath, e.name);
    for (const d of parseAllDocuments(await readFile(file, 'utf8'))) {
      const js = d.toJS() as Doc | null;
      if (js?.['kind'] === kind) out.push({ file, doc: js });
    }
  }
  return out;
}

test("the InferenceTrafficPolicy CRD accepts every policy the project ships, and refuses what the loader refuses", { skip }, async () => {
  const [crd] = (await render('crds')).filter((d) => d['kind'] === 'CustomResourceDefinition' && nameOf(d) === 'inferencetrafficpolicies.inferenceextension.alibabacloud.com');
  assert.ok(crd, 'the CRD is rendered');
  const spec = crd['spec'] as Doc;
  assert.equal(spec['group'], 'inferenceextension.alibabacloud.com');
  const [version] = spec['versions'] as Doc[];
  assert.equal(`${String(spec['group'])}/${String(version?.['name'])}`, Object.keys(KINDS.get('InferenceTrafficPolicy')?.versions ?? {})[0]);
  assert.deepEqual(version?.['subresources'], { status: {} });
  const schema = (version?.['schema'] as Doc)['openAPIV3Schema'];
  const runtime = ((((schema as Doc)['properties'] as Doc)['spec'] as Doc)['properties'] as Doc)['modelServerRuntime'] as Doc;
  assert.deepEqual(runtime['enum'], [...RUNTIMES], 'the runtimes the loader knows');

  const shipped = [...(await documentsOf(DEPLOY, 'InferenceTrafficPolicy')), ...(await documentsOf(EXAMPLES, 'InferenceTrafficPolicy'))];
  assert.ok(shipped.length >= 2, `found ${shipped.length} policies`);
  for (const { file, doc } of shipped) {
    assert.deepEqual(parseDocuments(JSON.stringify(doc), file).problems, [], `${file}: the loader accepts it`);
    assert.deepEqual(validateStructural(schema, doc), [], `${file}: the CRD accepts it`);
  }

  // Changes the loader refuses: the CRD refuses them too, at the same field.
  const base = shipped.find(({ doc }) => (doc['spec'] as Doc)['profile'] !== undefined)?.doc;
  assert.ok(base, 'a policy with a pd profile');
  const variants: [string, (spec: Doc) => void][] = [
    ['an unknown runtime', (s) => (s['modelServerRuntime'] = 'tgi')],
    ['no role label', (s) => delete ((s['profile'] as Doc)['pd'] as Doc)['pdRoleLabelName']],
    ['a bootstrap port out of range', (s) => (((s['profile'] as Doc)['pd'] as Doc)['kvTransfer'] = { bootstrapPort: 70000 })],
    ['no pool', (s) => delete s['poolRef']],
    ['an unknown prefix-cache mode', (s) => ((((s['profile'] as Doc)['pd'] as Doc)['trafficPolicy'] as Doc)['prefixCache'] = { mode: 'exact' })],
    ['a zero block size', (s) => ((((s['profile'] as Doc)['pd'] as Doc)['trafficPolicy'] as Doc)['prefixCache'] = { mode: 'precise', blockSize: 0 })],
    ['a tokenizer without a path', (s) => ((((s['profile'] as Doc)['pd'] as Doc)['trafficPolicy'] as Doc)['prefixCache'] = { mode: 'precise', tokenizers: [{ model: 'm' }] })],
    ['an unknown field', (s) => (s['poolRefs'] = { name: 'x' })],
  ];
  for (const [what, change] of variants) {
    const doc = structuredClone(base);
    change(doc['spec'] as Doc);
    assert.notDeepEqual(parseDocuments(JSON.stringify(doc), what).problems, [], `${what}: the loader refuses it`);
    assert.notDeepEqual(validateStructural(schema, doc), [], `${what}: the CRD refuses it`);
  }
});
