import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { kubernetesOptions } from '../../../src/cli/kubernetes-options.js';
import { OptionError } from '../../../src/cli/options.js';
import { loadKubeConfig, KubeConfigError } from '../../../src/config/kubernetes/connection.js';
import { defaultIdentity, defaultNamespace } from '../../../src/config/kubernetes/options.js';
import { cli } from '../../support/cli.js';

/* The Kubernetes flags of serve and epp: what they mean, what they refuse, what --help says. */

test('serve --help and epp --help describe the Kubernetes flags', async () => {
  const serve = await cli(['serve', '--help']);
  for (const flag of ['--kubernetes', '--kubeconfig PATH', '--namespace NS', '--all-namespaces', '--gateway-class NAME', '--lease-name NAME', 'infergate.dev/gateway-controller']) assert.ok(serve.stdout.includes(flag), flag);
  const epp = await cli(['epp', '--help']);
  for (const flag of ['--kubernetes', '--kubeconfig PATH', '--namespace NS', '--lease-name NAME']) assert.ok(epp.stdout.includes(flag), flag);
  assert.ok(!epp.stdout.includes('--gateway-class'), 'serve only');
});

test('-f and --kubernetes exclude each other, and the Kubernetes flags need --kubernetes: one line, exit 2', async () => {
  const cases: [string, string[], RegExp][] = [
    ['serve', ['--kubernetes', '-f', '/tmp'], /-f and --kubernetes exclude each other/],
    ['serve', ['--kubernetes', '--backend', 'http://127.0.0.1:1'], /--backend and --kubernetes exclude each other/],
    ['serve', ['-f', '/tmp', '--kubeconfig', '/tmp/x'], /--kubeconfig goes with --kubernetes/],
    ['serve', ['--kubernetes', '--namespace', 'Bad_NS'], /--namespace must be a namespace name/],
    ['serve', ['--kubernetes', '--kubeconfig', '/no/such/kubeconfig'], /cannot read the Kubernetes client configuration/],
    ['epp', ['--pool-name', 'p', '--kubernetes', '-f', '/tmp'], /-f and --kubernetes exclude each other/],
    ['epp', ['--pool-name', 'p', '--kubernetes', '--gateway-class', 'x'], /--gateway-class is for infergate serve/],
    ['epp', ['--pool-name', 'p', '--kubernetes', '--all-namespaces'], /--all-namespaces is for infergate serve/],
    ['epp', ['--pool-name', 'p', '--kubernetes', '--kubeconfig', '/no/such/kubeconfig', '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0'], /cannot read the Kubernetes client configuration/],
  ];
  for (const [command, args, message] of cases) {
    const r = await cli([command, ...args]);
    assert.equal(r.code, 2, `${command} ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    // Refused before anything started: no port bound, nothing logged as listening.
    assert.doesNotMatch(r.stdout, /listening|started/, `${command} ${args.join(' ')}`);
  }
});

test('defaults: namespace from the service account file else default; lease per command; identity from POD_NAME', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-ns-'));
  try {
    await writeFile(join(dir, 'namespace'), 'team-a\n');
    assert.equal(defaultNamespace(join(dir, 'namespace')), 'team-a');
    assert.equal(defaultNamespace(join(dir, 'missing')), 'default');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(defaultIdentity({ POD_NAME: 'gw-0' }), 'gw-0');
  assert.ok(defaultIdentity({}).length > 0);
  const serve = kubernetesOptions({ kubernetes: true, namespace: 'ns1' }, 'serve');
  assert.deepEqual({ ...serve, identity: undefined }, { namespace: 'ns1', allNamespaces: false, gatewayClass: 'infergate', leaseName: 'infergate-status', identity: undefined });
  assert.equal(kubernetesOptions({ kubernetes: true, namespace: 'ns1' }, 'epp', 'qwen-pool')?.leaseName, 'qwen-pool-epp');
  assert.equal(kubernetesOptions({ kubernetes: true, 'lease-name': 'mine', 'gateway-class': 'gc', 'all-namespaces': true }, 'serve')?.gatewayClass, 'gc');
  assert.equal(kubernetesOptions({}, 'serve'), undefined);
});

test('a Lease name the API server would refuse is an option error at start, not a warning and no status forever', () => {
  for (const bad of ['My_Lease', 'lease name', '-lease', 'a'.repeat(254)]) {
    assert.throws(() => kubernetesOptions({ kubernetes: true, 'lease-name': bad }, 'serve'), (e: unknown) => e instanceof OptionError && /--lease-name must be a Kubernetes object name/.test(e.message), bad);
  }
  // The epp's default, from a pool name the loader would accept but a Lease name may not hold.
  assert.throws(() => kubernetesOptions({ kubernetes: true }, 'epp', 'Qwen_Pool'), (e: unknown) => e instanceof OptionError && /<pool-name>-epp.*give --lease-name/.test(e.message));
  assert.equal(kubernetesOptions({ kubernetes: true, 'lease-name': 'gw.status-1' }, 'serve')?.leaseName, 'gw.status-1');
});

test('a plain-HTTP server is refused unless the kubeconfig turns TLS verification off (client-node\'s rule)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-kc-'));
  try {
    const file = join(dir, 'kubeconfig');
    const kc = (extra: string): string => `apiVersion: v1
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"${extra}}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`;
    await writeFile(file, kc(''));
    assert.throws(() => loadKubeConfig(file), (e: unknown) => e instanceof KubeConfigError && /plain HTTP/.test(e.message));
    await writeFile(file, kc(', insecure-skip-tls-verify: true'));
    assert.equal(loadKubeConfig(file).config.getCurrentCluster()?.server, 'http://127.0.0.1:1');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a kubeconfig that cannot be read is named as where it came from: --kubeconfig, or $KUBECONFIG', () => {
  assert.throws(() => loadKubeConfig('/no/such/kubeconfig', {}), (e: unknown) => e instanceof KubeConfigError && /\(--kubeconfig \/no\/such\/kubeconfig\)/.test(e.message));
  const saved = process.env['KUBECONFIG'];
  // client-node's loadFromDefault reads $KUBECONFIG from the process environment.
  process.env['KUBECONFIG'] = '/no/such/kubeconfig';
  try {
    assert.throws(() => loadKubeConfig(undefined, { KUBECONFIG: '/no/such/kubeconfig', HOME: '/nonexistent' }), (e: unknown) => e instanceof KubeConfigError && /\(\$KUBECONFIG \/no\/such\/kubeconfig\)/.test(e.message));
  } finally {
    if (saved === undefined) delete process.env['KUBECONFIG'];
    else process.env['KUBECONFIG'] = saved;
  }
});
