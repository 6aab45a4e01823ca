/**
 * The demo's examples for seed 002 (smart routing): each variant the page shows, one folder each
 * under examples/seed-002/ (the seed's own pool YAML and the Pods it would select), all behind the
 * seed's Gateway and HTTPRoute (examples/seed-002/gateway.yaml). `infergate demo --example
 * <variant>` starts simulated servers for the pods that serve and the gateway in front of them.
 */
import type { SimRuntime } from '../sim/index.js';
import { examplePath, QWEN3_32B, type DemoEngine, type DemoExample } from './demo-example.js';

/** Seed 002's variants: routing policy × deployment shape. */
export const SEED_002_VARIANTS = [
  'default-vllm',
  'prefix-vllm',
  'default-vllm-multinode',
  'prefix-vllm-multinode',
  'default-sglang',
  'prefix-sglang',
  'default-sglang-multinode',
  'prefix-sglang-multinode',
  'default-sglang-pd',
  'prefix-sglang-pd',
] as const;

export type Seed002Variant = (typeof SEED_002_VARIANTS)[number];

/** One Qwen3-32B server on two H100s, as the seed deploys it (the model path is its served name). */
function qwen(runtime: 'vllm' | 'sglang', pdRole?: 'prefill' | 'decode'): DemoEngine['options'] {
  return { runtime, model: QWEN3_32B, modelPath: QWEN3_32B, profile: 'qwen3-32b-2xh100', ...(pdRole === undefined ? {} : { pdRole }) };
}

const RUNTIME_NAMES: Readonly<Record<'vllm' | 'sglang', string>> = { vllm: 'vLLM', sglang: 'SGLang' };

/** The servers of a variant: the pods its pool selects (examples/seed-002/<variant>/pods.yaml). */
function enginesOf(runtime: 'vllm' | 'sglang', shape: 'single' | 'multinode' | 'pd'): DemoEngine[] {
  switch (shape) {
    case 'single':
      return [0, 1].map((i) => ({ name: `qwen-${i}`, host: `127.0.0.${22 + i}`, options: qwen(runtime) }));
    case 'multinode':
      // Only the leaders serve HTTP; the workers (qwen-0-1, qwen-1-1) exist as Pods the selector leaves out.
      return [0, 1].map((i) => ({ name: `qwen-${i}`, host: `127.0.0.${22 + 2 * i}`, options: qwen(runtime) }));
    case 'pd':
      return [
        { name: 'qwen-prefill-0', host: '127.0.0.12', options: qwen('sglang', 'prefill') },
        { name: 'qwen-prefill-1', host: '127.0.0.13', options: qwen('sglang', 'prefill') },
        { name: 'qwen-decode-0', host: '127.0.0.14', options: qwen('sglang', 'decode') },
        { name: 'qwen-decode-1', host: '127.0.0.15', options: qwen('sglang', 'decode') },
      ];
  }
}

function describeVariant(variant: Seed002Variant): { runtime: SimRuntime & ('vllm' | 'sglang'); shape: 'single' | 'multinode' | 'pd'; prefix: boolean; summary: string } {
  const prefix = variant.startsWith('prefix-');
  const runtime = variant.includes('sglang') ? 'sglang' : 'vllm';
  const shape = variant.endsWith('-pd') ? 'pd' : variant.endsWith('-multinode') ? 'multinode' : 'single';
  const policy = prefix ? 'prefix-cache aware routing (PREFIX_CACHE)' : 'the default policy (queue length and KV cache usage)';
  const pods =
    shape === 'single'
      ? `two single-node ${RUNTIME_NAMES[runtime]} servers (qwen-0, qwen-1)`
      : shape === 'multinode'
        ? `two multi-node ${RUNTIME_NAMES[runtime]} groups; the pool selects only their leaders (role: leader: qwen-0, qwen-1), not the workers qwen-0-1, qwen-1-1`
        : 'two SGLang prefill servers (qwen-prefill-0/1) and two decode servers (qwen-decode-0/1); every request is prefilled on one and decoded on the other';
  return { runtime, shape, prefix, summary: `${pods}, routed by ${policy}` };
}

function seed002Example(variant: Seed002Variant): DemoExample {
  const { runtime, shape, prefix, summary } = describeVariant(variant);
  const round = (n: 1 | 2): string => examplePath(`seed-002/round${n}.json`);
  return {
    paths: [examplePath('seed-002/gateway.yaml'), examplePath(`seed-002/${variant}/`)],
    engines: enginesOf(runtime, shape),
    banner: ({ base, admin }) => `Seed 002, ${variant}: ${summary}. Each server stands for ${QWEN3_32B}.
Try (header x-sim-pod names the pod that answered; the answer opens with "I am Qwen3-32B."):
  curl -si ${base}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model":"${QWEN3_32B}","messages":[{"role":"user","content":"Hello, this is a test"}],"max_tokens":50}'
The seed's prefix-cache check, two turns of one conversation (${prefix ? 'under PREFIX_CACHE both go to the same pod' : 'under DEFAULT they may go to different pods; compare with the prefix-* variants'}):
  curl -s ${base}/v1/chat/completions -H 'Content-Type: application/json' -d @${round(1)}
  curl -s ${base}/v1/chat/completions -H 'Content-Type: application/json' -d @${round(2)}
Every request ends with one "Request Handled" log line on this process's stdout; its "pod" field
names the pod (--log-format pretty prints it as a readable line). Only those lines:
  npx infergate demo --example ${variant} | grep --line-buffered '"Request Handled"'
The pool's endpoints, load and health:  curl -s ${admin}/debug/endpoints
`,
  };
}

/** Every seed 002 variant as a demo example. */
export const SEED_002_EXAMPLES: Readonly<Record<Seed002Variant, DemoExample>> = Object.fromEntries(
  SEED_002_VARIANTS.map((v) => [v, seed002Example(v)]),
) as Record<Seed002Variant, DemoExample>;
