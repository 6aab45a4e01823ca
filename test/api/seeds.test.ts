import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { formatProblem, parseDocuments, type InferencePool, type InferenceTrafficPolicy, type LoadResult } from '../../src/api/index.js';

const SEEDS = fileURLToPath(new URL('../../../test/fixtures/seeds/', import.meta.url));

async function load(name: string): Promise<LoadResult> {
  return parseDocuments(await readFile(join(SEEDS, name), 'utf8'), name);
}

test('every YAML block of seeds 001-003 loads without an error or a warning', async () => {
  const files = (await readdir(SEEDS)).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 18);
  for (const f of files) {
    const r = await load(f);
    assert.deepEqual(r.problems.map(formatProblem), [], f);
    assert.ok(r.resources.length + r.ignored.length > 0, `${f} yields something`);
  }
});

test('seed 002: runtime and routing-strategy annotations, the PD traffic policy', async () => {
  const sglangPrefix = (await load('002-prefix-sglang.yaml')).resources.find((r): r is InferencePool => r.kind === 'InferencePool');
  assert.equal(sglangPrefix?.runtime, 'sglang');
  assert.equal(sglangPrefix?.routingStrategy, 'PREFIX_CACHE');
  const vllmDefault = (await load('002-default-vllm.yaml')).resources.find((r): r is InferencePool => r.kind === 'InferencePool');
  assert.equal(vllmDefault?.runtime, 'vllm');
  assert.equal(vllmDefault?.routingStrategy, 'DEFAULT');
  assert.deepEqual(vllmDefault?.spec.targetPorts, [8000]);

  const pd = await load('002-prefix-sglang-pd.yaml');
  const pool = pd.resources.find((r): r is InferencePool => r.kind === 'InferencePool');
  assert.equal(pool?.spec.endpointPickerRef, undefined, 'the PD example has no extensionRef');
  const policy = pd.resources.find((r): r is InferenceTrafficPolicy => r.kind === 'InferenceTrafficPolicy');
  assert.equal(policy?.spec.modelServerRuntime, 'sglang');
  assert.equal(policy?.spec.profile?.pd?.pdRoleLabelName, 'rolebasedgroup.workloads.x-k8s.io/role');
  assert.equal(policy?.spec.profile?.pd?.kvTransfer?.bootstrapPort, 34000);
  assert.equal(policy?.spec.profile?.pd?.trafficPolicy?.prefixCache?.mode, 'estimate');
  assert.equal(policy?.spec.profile?.pd?.prefillPolicyRef, 'prefixCache');
});

test('seed 001: the TensorRT-LLM pool reads as trt-llm', async () => {
  const pool = (await load('001-trt-llm-pool.yaml')).resources[0] as InferencePool;
  assert.equal(pool.runtime, 'trt-llm');
  assert.equal(pool.spec.endpointPickerRef?.name, 'trt-llm-ext-proc');
  assert.equal(pool.spec.endpointPickerRef?.port, 9002, 'extensionRef port defaults to 9002');
});

test('seed 003: Deployments are ignored, policies parse to bytes and milliseconds', async () => {
  const deploy = await load('003-qwen-deployment.yaml');
  assert.deepEqual(deploy.ignored.map((d) => `${d.kind}/${d.name}`), ['Deployment/qwen']);
  assert.deepEqual(deploy.resources.map((r) => `${r.kind}/${r.metadata.name}`), ['Service/qwen']);
  const gw = await load('003-gateway.yaml');
  const ctp = gw.resources.find((r) => r.kind === 'ClientTrafficPolicy');
  const btp = gw.resources.find((r) => r.kind === 'BackendTrafficPolicy');
  assert.equal(ctp?.kind === 'ClientTrafficPolicy' ? ctp.spec.bufferLimitBytes : undefined, 20 * 1024 * 1024);
  assert.equal(btp?.kind === 'BackendTrafficPolicy' ? btp.spec.requestTimeoutMs : undefined, 24 * 3600 * 1000);
});
