import { z } from 'zod';

/*
 * Workload parameters: one zod schema per workload kind, every field optional so a YAML file, a
 * named preset and command-line flags can each supply part of it; `resolveWorkloadParams` layers
 * defaults < preset < given values and checks the result. Token counts are approximate (4
 * characters per token, see text.ts).
 */

const count = z.number().int().min(1);
const tokens = z.number().int().min(0);

/** Shared-prefix presets: the field's published settings (inference-perf, vLLM benchmarks and the Gateway API Inference Extension's benchmark guides). */
export const SHARED_PREFIX_PRESETS = {
  /** inference-perf `shared_prefix` defaults. */
  'inference-perf': { groups: 10, usersPerGroup: 10, systemTokens: 100, questionTokens: 50, outputTokens: 50 },
  /** inference-perf KubeCon NA 2025 demo. */
  'kubecon-demo': { groups: 10, usersPerGroup: 10, systemTokens: 128, questionTokens: 64, outputTokens: 64 },
  /** SGLang `bench_serving --dataset-name generated-shared-prefix` documentation example. */
  sglang: { groups: 64, usersPerGroup: 16, systemTokens: 2048, questionTokens: 128, outputTokens: 256 },
  /** GIE prefix-cache suite, high cache: short-questions__many-system-prompts (also llm-d's 73 %-capacity shape). */
  'gie-high-cache': { groups: 150, usersPerGroup: 5, systemTokens: 6000, questionTokens: 1200, outputTokens: 1000 },
  /** GIE prefix-cache suite, low cache. */
  'gie-low-cache': { groups: 150, usersPerGroup: 5, systemTokens: 1200, questionTokens: 6000, outputTokens: 1000 },
  /** GIE long-questions__many-system-prompts. */
  'gie-long-questions': { groups: 150, usersPerGroup: 5, systemTokens: 1000, questionTokens: 6200, outputTokens: 1000 },
  /** GIE e2e prefix-cache CI. */
  'gie-ci': { groups: 20, usersPerGroup: 5, systemTokens: 2048, questionTokens: 512, outputTokens: 256 },
} as const;

export type SharedPrefixPreset = keyof typeof SHARED_PREFIX_PRESETS;
const PRESET_NAMES = Object.keys(SHARED_PREFIX_PRESETS) as [SharedPrefixPreset, ...SharedPrefixPreset[]];

export const SharedPrefixInput = z.strictObject({
  type: z.literal('shared-prefix'),
  preset: z.enum(PRESET_NAMES).optional(),
  groups: count.optional(),
  usersPerGroup: count.optional(),
  systemTokens: tokens.optional(),
  questionTokens: tokens.optional(),
  outputTokens: count.optional(),
  /** false (default): the G×U prompts in a seeded random order, groups interleaved as real users are. */
  ordered: z.boolean().optional(),
});

export const MultiTurnInput = z.strictObject({
  type: z.literal('multi-turn'),
  conversations: count.optional(),
  turns: count.optional(),
  activeConversations: count.optional(),
  commonPrefixTokens: tokens.optional(),
  systemTokens: tokens.optional(),
  userTokens: tokens.optional(),
  outputTokens: count.optional(),
});

export const RandomInput = z.strictObject({
  type: z.literal('random'),
  count: count.optional(),
  inputTokens: tokens.optional(),
  outputTokens: count.optional(),
});

export const LoraInput = z.strictObject({
  type: z.literal('lora'),
  count: count.optional(),
  adapters: z.array(z.string().min(1)).min(1).optional(),
  adapterCount: count.optional(),
  adapterPrefix: z.string().min(1).optional(),
  skew: z.number().min(0).optional(),
  inputTokens: tokens.optional(),
  outputTokens: count.optional(),
});

/** Workload parameters as a YAML file or flags give them (all optional but `type`). */
export const WorkloadInput = z.discriminatedUnion('type', [SharedPrefixInput, MultiTurnInput, RandomInput, LoraInput]);
export type WorkloadInput = z.infer<typeof WorkloadInput>;

/** shared-prefix, resolved. Defaults: inference-perf's (10 × 10, 100 / 50 / 50), random order. */
export interface SharedPrefixParams {
  readonly type: 'shared-prefix';
  readonly groups: number;
  readonly usersPerGroup: number;
  readonly systemTokens: number;
  readonly questionTokens: number;
  readonly outputTokens: number;
  readonly ordered: boolean;
}

/**
 * multi-turn, resolved. Defaults: 8 conversations × 4 turns, 4 active at once, no common prefix,
 * 200-token system prompt per conversation, 100-token user turns, 100-token answers.
 */
export interface MultiTurnParams {
  readonly type: 'multi-turn';
  readonly conversations: number;
  readonly turns: number;
  readonly activeConversations: number;
  /** Tokens at the start of every conversation's system prompt (vLLM multi-turn's common prefix). */
  readonly commonPrefixTokens: number;
  readonly systemTokens: number;
  readonly userTokens: number;
  readonly outputTokens: number;
}

/** random, resolved. Defaults: 100 requests of 512 input / 128 output tokens. */
export interface RandomParams {
  readonly type: 'random';
  readonly count: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

/**
 * lora, resolved. Defaults: 100 requests over 4 adapters `lora-0..3`, uniform (skew 0), 256 input /
 * 64 output tokens. `skew` is a Zipf exponent: adapter i gets weight 1/(i+1)^skew.
 */
export interface LoraParams {
  readonly type: 'lora';
  readonly count: number;
  readonly adapters: readonly string[];
  readonly skew: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

export type WorkloadParams = SharedPrefixParams | MultiTurnParams | RandomParams | LoraParams;

function defined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A validation failure naming the field: `workload.groups: must be at least 1`. */
export class BenchConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'BenchConfigError';
    this.problems = problems;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${typeof value} ${String(value)}`;
}

/** Readable reasons for zod's terse defaults (`expected a number, got the string "fast"`). */
export const errorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'required';
      return `expected ${issue.expected === 'int' ? 'an integer' : issue.expected === 'array' ? 'a list' : issue.expected === 'object' ? 'a mapping' : `a ${issue.expected}`}, got ${describe(issue.input)}`;
    case 'too_small':
      if (issue.origin === 'array') return `must have at least ${String(issue.minimum)} item${issue.minimum === 1 ? '' : 's'}`;
      if (issue.origin === 'string') return 'must not be empty';
      return issue.inclusive === false ? `must be greater than ${String(issue.minimum)}` : `must be at least ${String(issue.minimum)}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => String(v)).join(', ')} (got ${describe(issue.input)})`;
    default:
      return undefined;
  }
};

/** `["workload", "adapters", 1]` → `workload.adapters[1]`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? String(part) : `.${String(part)}`;
  return out === '' ? '(top level)' : out;
}

/** zod issues as `field.path: reason` lines under `prefix`. */
export function zodProblems(error: z.ZodError, prefix: readonly PropertyKey[] = []): string[] {
  return error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') return `${fieldPath([...prefix, ...issue.path])}: unknown field(s) ${issue.keys.join(', ')}`;
    return `${fieldPath([...prefix, ...issue.path])}: ${issue.message}`;
  });
}

/**
 * Validates raw parameters (from YAML and flags merged) and fills defaults, preset values first for
 * shared-prefix. Errors name the field under `path` (default `workload`).
 * @throws BenchConfigError
 */
export function resolveWorkloadParams(raw: unknown, path: readonly PropertyKey[] = ['workload']): WorkloadParams {
  const parsed = WorkloadInput.safeParse(raw, { error: errorMap });
  if (!parsed.success) throw new BenchConfigError(zodProblems(parsed.error, path));
  const input = parsed.data;
  switch (input.type) {
    case 'shared-prefix': {
      const { preset, ...rest } = input;
      return {
        ...SHARED_PREFIX_PRESETS['inference-perf'],
        ordered: false,
        ...(preset === undefined ? {} : SHARED_PREFIX_PRESETS[preset]),
        ...defined(rest),
        type: 'shared-prefix',
      };
    }
    case 'multi-turn': {
      const p: MultiTurnParams = {
        conversations: 8,
        turns: 4,
        activeConversations: 4,
        commonPrefixTokens: 0,
        systemTokens: 200,
        userTokens: 100,
        outputTokens: 100,
        ...defined(input),
        type: 'multi-turn',
      };
      return p;
    }
    case 'random':
      return { count: 100, inputTokens: 512, outputTokens: 128, ...defined(input), type: 'random' };
    case 'lora': {
      const { adapters, adapterCount, adapterPrefix, ...rest } = input;
      if (adapters !== undefined && adapterCount !== undefined && adapterCount !== adapters.length) {
        throw new BenchConfigError([`${fieldPath([...path, 'adapterCount'])}: is ${adapterCount} but adapters lists ${adapters.length} names; give one of them`]);
      }
      const names = adapters ?? Array.from({ length: adapterCount ?? 4 }, (_, i) => `${adapterPrefix ?? 'lora'}-${i}`);
      return { count: 100, skew: 0, inputTokens: 256, outputTokens: 64, ...defined(rest), adapters: names, type: 'lora' };
    }
  }
}
