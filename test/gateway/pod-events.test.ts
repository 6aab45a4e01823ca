import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDocuments } from '../../src/api/index.js';
import type { Pod } from '../../src/api/types.js';
import { seededRandom } from '../../src/core/weighted.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { MAX_LOGGED } from '../../src/gateway/endpoints-changed.js';
import { gatewayAndRoute } from '../support/config.js';
import { memoryLogger, MemorySource, type LogRecord } from '../support/memory-source.js';

// Pod events as a Kubernetes watch delivers them (one incremental batch per event) must move
// endpoints without recompiling the configuration, and be logged as what they are.

const PORT = 8080;

function podYaml(name: string, app: string, ip: string, ready = true): string {
  return `---
apiVersion: v1
kind: Pod
metadata: {name: ${name}, labels: {app: ${app}}}
status: {phase: Running, podIP: ${ip}, conditions: [{type: Ready, status: "${ready ? 'True' : 'False'}"}]}
`;
}

function pod(name: string, app: string, ip: string, ready = true): Pod {
  return parseDocuments(podYaml(name, app, ip, ready), 'pod.yaml').resources[0] as Pod;
}

/** Two pools (`a`, `b`, selecting app=a / app=b), routed by the `x-pool` header; pods as given. */
function config(pods = '', labels = ''): string {
  const rule = (name: string): string => `  - matches: [{headers: [{name: x-pool, value: ${name}}]}]
    backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: ${name}}]`;
  const pool = (name: string): string => `---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: ${name}${labels}}
spec: {selector: {matchLabels: {app: ${name}}}, targetPorts: [{number: 8000}]}
`;
  return `${gatewayAndRoute(PORT, [rule('a'), rule('b')])}${pool('a')}${pool('b')}${pods}`;
}

async function start(yaml: string): Promise<{ gateway: Gateway; source: MemorySource; lines: LogRecord[] }> {
  const source = new MemorySource(yaml);
  const { logger, lines } = memoryLogger();
  const gateway = await Gateway.start({ sources: [source], logger, scrapeIntervalMs: 0, random: seededRandom(3) });
  return { gateway, source, lines };
}

/** Where the gateway sends one request for pool `name` now (the endpoint names it may choose). */
async function decide(gateway: Gateway, name: string): Promise<string[]> {
  const h = gateway.begin({ method: 'POST', path: '/v1/chat/completions', headers: {} });
  h.route(PORT, { method: 'POST', path: '/v1/chat/completions', query: '', host: 'gw', headers: { 'x-pool': name } });
  try {
    const d = await h.decide(Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })), new AbortController().signal);
    return d.endpoints.map((e) => e.name);
  } catch (err) {
    return [`refused: ${(err as Error).message}`];
  } finally {
    h.failed(new Error('not sent'));
  }
}

/** The lines logged since `from` about configuration and endpoints (the requests' own lines left out). */
const configLines = (lines: LogRecord[], from: number): LogRecord[] => lines.slice(from).filter((l) => l.msg !== 'Request Handled' && l.msg !== 'internal error');
const messages = (lines: LogRecord[], from: number): Array<string | undefined> => configLines(lines, from).map((l) => l.msg);

test('a pod event moves endpoints without a recompile and logs "endpoints changed" with the pod and the pool touched, not "config reloaded"', async () => {
  const { gateway, source, lines } = await start(config(podYaml('a-0', 'a', '127.0.1.1') + podYaml('b-0', 'b', '127.0.2.1')));
  try {
    const runtime = gateway.runtime;
    const version = gateway.ready().version;
    const mark = lines.length;

    // A new ready pod in pool a: it gets traffic.
    const added = await source.apply({ upserts: [pod('a-1', 'a', '127.0.1.2')] });
    assert.deepEqual(added, { ok: true, version, warnings: [], configChanged: false });
    assert.equal(gateway.runtime, runtime, 'no new runtime: the configuration was not recompiled');
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) for (const name of await decide(gateway, 'a')) seen.add(name);
    assert.ok(seen.has('a-1'), `the new pod is scheduled (saw ${[...seen].join(', ')})`);

    // The only pod of pool b goes unready: b's requests are refused, a is untouched.
    await source.apply({ upserts: [pod('b-0', 'b', '127.0.2.1', false)] });
    assert.match((await decide(gateway, 'b'))[0] ?? '', /^refused/);
    // And deleted, then a pod of a deleted.
    await source.apply({ deletes: [{ kind: 'Pod', namespace: 'default', name: 'a-0' }] });
    assert.deepEqual(await decide(gateway, 'a'), ['a-1']);

    assert.equal(gateway.runtime, runtime);
    assert.equal(gateway.ready().version, version, 'no new snapshot version for pod events');
    const after = configLines(lines, mark);
    assert.deepEqual(
      after.map((l) => l.msg),
      ['endpoints changed', 'endpoints changed', 'pool selects no serving pod: its requests get 503 until one appears', 'endpoints changed'],
      'each pod event is "endpoints changed" (and b going empty is said), never "config reloaded"',
    );
    const changes = after.filter((l) => l.msg === 'endpoints changed');
    assert.deepEqual(
      changes.map((l) => [l['pods'], l['pools']]),
      [
        [['default/a-1'], [{ pool: 'default/a', endpoints: 2 }]],
        [['default/b-0'], [{ pool: 'default/b', endpoints: 0 }]],
        [['default/a-0'], [{ pool: 'default/a', endpoints: 1 }]],
      ],
    );
    assert.ok(changes.every((l) => l['source'] === 'memory' && l['podCount'] === 1 && l['poolCount'] === 1));
  } finally {
    await gateway.close();
  }
});

test('a whole-state reload where only pods changed is "endpoints changed"; one that changed nothing is still confirmed as "config reloaded"; a pool change recompiles', async () => {
  const { gateway, source, lines } = await start(config(podYaml('a-0', 'a', '127.0.1.1')));
  try {
    const runtime = gateway.runtime;
    let mark = lines.length;
    await source.set(config(podYaml('a-0', 'a', '127.0.1.1') + podYaml('a-1', 'a', '127.0.1.2')));
    assert.equal(gateway.runtime, runtime);
    assert.deepEqual(messages(lines, mark), ['endpoints changed']);

    mark = lines.length;
    await source.resync();
    assert.deepEqual(messages(lines, mark), ['config reloaded'], 'a reload that changed nothing is confirmed');
    assert.equal(gateway.runtime, runtime);

    mark = lines.length;
    const changed = await source.set(config(podYaml('a-0', 'a', '127.0.1.1') + podYaml('a-1', 'a', '127.0.1.2'), ', labels: {edited: "yes"}'));
    assert.equal(changed.ok && changed.configChanged, true);
    assert.notEqual(gateway.runtime, runtime, 'a changed pool builds a new runtime');
    assert.deepEqual(messages(lines, mark), ['config reloaded']);
    assert.deepEqual(await decide(gateway, 'a').then((n) => n.length > 0), true);
  } finally {
    await gateway.close();
  }
});

test('a batch of many pods logs a bounded line: the first names and the counts', async () => {
  const { gateway, source, lines } = await start(config());
  try {
    const mark = lines.length;
    const pods = Array.from({ length: 3 * MAX_LOGGED }, (_, i) => pod(`a-${i}`, 'a', `127.0.3.${i + 1}`));
    await source.apply({ upserts: pods });
    const line = lines.slice(mark).find((l) => l.msg === 'endpoints changed');
    assert.ok(line !== undefined);
    assert.equal((line['pods'] as string[]).length, MAX_LOGGED);
    assert.equal(line['podCount'], 3 * MAX_LOGGED);
    assert.deepEqual(line['pools'], [{ pool: 'default/a', endpoints: 3 * MAX_LOGGED }]);
  } finally {
    await gateway.close();
  }
});

test('pod events that change nothing, or that no pool selects, log no "endpoints changed" and build nothing', async () => {
  const { gateway, source, lines } = await start(config(podYaml('a-0', 'a', '127.0.1.1')));
  try {
    const runtime = gateway.runtime;
    const mark = lines.length;
    await source.apply({ upserts: [pod('a-0', 'a', '127.0.1.1')] });
    await source.apply({ upserts: [pod('x-0', 'other', '127.0.9.1')] });
    await source.apply({ deletes: [{ kind: 'Pod', namespace: 'default', name: 'never-existed' }] });
    assert.deepEqual(messages(lines, mark), []);
    assert.equal(gateway.runtime, runtime);
  } finally {
    await gateway.close();
  }
});

test("a deleted pod's models leave what the gateway knows; its prefix-index entries are forgotten", async () => {
  const { gateway, source } = await start(config(podYaml('a-0', 'a', '127.0.1.1') + podYaml('a-1', 'a', '127.0.1.2')));
  try {
    const [e0, e1] = gateway.runtime?.pools.get('default/a')?.members.endpoints ?? [];
    assert.ok(e0 !== undefined && e1 !== undefined);
    // As the model lister would have found them; a config change re-reads every list.
    e0.servedModels = [{ id: 'base', parent: null }, { id: 'lora-x', parent: 'base' }];
    e1.servedModels = [{ id: 'base', parent: null }];
    await source.set(config(podYaml('a-0', 'a', '127.0.1.1') + podYaml('a-1', 'a', '127.0.1.2'), ', labels: {v: "2"}'));
    assert.equal(gateway.baseModelOf('lora-x'), 'base');
    assert.ok(gateway.knownModel('lora-x'));
    gateway.prefixIndex.record(e0, new Uint32Array([1, 2, 3]));
    assert.ok(gateway.prefixIndex.entriesOf(e0) > 0);

    await source.apply({ deletes: [{ kind: 'Pod', namespace: 'default', name: 'a-0' }] });
    assert.equal(gateway.baseModelOf('lora-x'), undefined, 'no endpoint lists the adapter any more');
    assert.equal(gateway.knownModel('lora-x'), false);
    assert.ok(gateway.knownModel('base'), 'a-1 still lists the base model');
    assert.equal(gateway.prefixIndex.entriesOf(e0), 0);
  } finally {
    await gateway.close();
  }
});
