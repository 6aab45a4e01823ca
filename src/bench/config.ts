import { z } from 'zod';
import type { ArrivalSpec } from './arrivals.js';
import type { Api } from './client.js';
import { DEFAULT_ENDPOINT_HEADER, DEFAULT_TIMEOUT_MS } from './client.js';
import {
  BenchConfigError,
  errorMap,
  LoraInput,
  MultiTurnInput,
  RandomInput,
  resolveWorkloadParams,
  SharedPrefixInput,
  WORKLOAD_KINDS,
  zodProblems,
  type WorkloadKind,
  type WorkloadParams,
} from './workloads/index.js';

/*
 * A bench run's settings from a YAML file and command-line flags: flags win, field by field. Both
 * are gathered into one raw object and checked by one schema, so an error names the field whichever
 * way it was given (`load.rate (--rate): must be greater than 0`).
 */

const positive = z.number().positive();
const positiveInt = z.number().int().min(1);

/** The `load` section: how requests arrive and when the run stops. */
export const LoadInput = z
  .strictObject({
    /** Poisson arrivals at this many requests per second. */
    rate: positive.optional(),
    /** A sweep: Poisson stages at these rates, `stageSeconds` each. */
    rates: z.array(positive).min(1).optional(),
    /** Seconds per sweep stage. Default 30. */
    stageSeconds: positive.optional(),
    /** Closed loop with this many clients. */
    concurrency: positiveInt.optional(),
    /** Open loop: most requests in flight. */
    maxConcurrency: positiveInt.optional(),
    requests: positiveInt.optional(),
    /** Seconds. */
    duration: positive.optional(),
  })
  .refine((l) => [l.rate, l.rates, l.concurrency].filter((v) => v !== undefined).length <= 1, {
    message: 'give one of rate, rates, concurrency',
  });

/** A bench YAML file (every field optional; flags may supply or override each). */
export const BenchFileInput = z.strictObject({
  url: z.url().optional(),
  model: z.string().min(1).optional(),
  api: z.enum(['chat', 'completions']).optional(),
  seed: z.number().int().optional(),
  name: z.string().min(1).optional(),
  /** Validated by the workload schemas (see workloads/params.ts). */
  workload: z.looseObject({ type: z.enum(WORKLOAD_KINDS) }).optional(),
  load: LoadInput.optional(),
  timeoutSeconds: positive.optional(),
  endpointHeader: z.string().min(1).optional(),
  ignoreEos: z.boolean().optional(),
  metricsUrls: z.array(z.url()).optional(),
});
export type BenchFileInput = z.infer<typeof BenchFileInput>;

/** Everything a run needs, resolved and defaulted. */
export interface BenchPlan {
  readonly url: string;
  /** Default `mymodel` (the simulator's default model). */
  readonly model: string;
  /** Default `chat`. */
  readonly api: Api;
  /** Default 1. */
  readonly seed: number;
  /** System name in reports. Default `target`. */
  readonly name: string;
  readonly workload: WorkloadParams;
  /** Default closed loop with 8 clients. */
  readonly arrivals: ArrivalSpec;
  readonly maxRequests: number | undefined;
  readonly durationSeconds: number | undefined;
  readonly maxConcurrency: number | undefined;
  readonly timeoutMs: number;
  readonly endpointHeader: string;
  /** Default true. */
  readonly ignoreEos: boolean;
  readonly metricsUrls: readonly string[];
}

/** Flag → field, for workload parameters given on the command line. */
export const WORKLOAD_FLAGS: Readonly<Record<string, { field: string; kind: 'int' | 'number' | 'list' | 'bool' | 'string' }>> = {
  preset: { field: 'preset', kind: 'string' },
  groups: { field: 'groups', kind: 'int' },
  'users-per-group': { field: 'usersPerGroup', kind: 'int' },
  'system-tokens': { field: 'systemTokens', kind: 'int' },
  'question-tokens': { field: 'questionTokens', kind: 'int' },
  'output-tokens': { field: 'outputTokens', kind: 'int' },
  ordered: { field: 'ordered', kind: 'bool' },
  conversations: { field: 'conversations', kind: 'int' },
  turns: { field: 'turns', kind: 'int' },
  'active-conversations': { field: 'activeConversations', kind: 'int' },
  'common-prefix-tokens': { field: 'commonPrefixTokens', kind: 'int' },
  'user-tokens': { field: 'userTokens', kind: 'int' },
  'input-tokens': { field: 'inputTokens', kind: 'int' },
  adapters: { field: 'adapters', kind: 'list' },
  'adapter-count': { field: 'adapterCount', kind: 'int' },
  skew: { field: 'skew', kind: 'number' },
};

/** Flag → field outside the workload. */
const TOP_FLAGS: Readonly<Record<string, string>> = {
  url: 'url',
  model: 'model',
  api: 'api',
  seed: 'seed',
  name: 'name',
  timeout: 'timeoutSeconds',
  'endpoint-header': 'endpointHeader',
  'metrics-url': 'metricsUrls',
  rate: 'load.rate',
  rates: 'load.rates',
  'stage-seconds': 'load.stageSeconds',
  concurrency: 'load.concurrency',
  'max-concurrency': 'load.maxConcurrency',
  requests: 'load.requests',
  duration: 'load.duration',
};

const SCHEMA_KEYS: Readonly<Record<WorkloadKind, ReadonlySet<string>>> = {
  'shared-prefix': new Set(Object.keys(SharedPrefixInput.shape)),
  'multi-turn': new Set(Object.keys(MultiTurnInput.shape)),
  random: new Set(Object.keys(RandomInput.shape)),
  lora: new Set(Object.keys(LoraInput.shape)),
};

/** Parsed flag values as `node:util` parseArgs gives them. */
export type FlagValues = Readonly<Record<string, string | boolean | ReadonlyArray<string | boolean> | undefined>>;

/** A flag's text as a number when it looks like one; otherwise unchanged, so the schema reports it. */
function numeric(text: string): number | string {
  const t = text.trim();
  return t !== '' && Number.isFinite(Number(t)) ? Number(t) : text;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Merges a bench file (already parsed from YAML; `undefined` when none) with flags and resolves
 * every default. Flags override file fields one by one; a different `--workload` than the file's
 * drops the file's workload parameters.
 * @throws BenchConfigError naming each bad field (and its flag)
 */
export function resolveBenchPlan(flags: FlagValues, file?: unknown, fileName = 'config'): BenchPlan {
  if (file !== undefined && file !== null && !isRecord(file)) throw new BenchConfigError([`${fileName}: must be a mapping of bench settings`]);
  const raw: Record<string, unknown> = { ...(isRecord(file) ? file : {}) };
  const fromFile = new Set(Object.keys(raw));
  const load: Record<string, unknown> = { ...(isRecord(raw['load']) ? raw['load'] : {}) };
  const fieldFlag = new Map<string, string>();

  for (const [flag, field] of Object.entries(TOP_FLAGS)) {
    const value = flags[flag];
    if (value === undefined || typeof value === 'boolean') continue;
    fieldFlag.set(field, flag);
    let v: unknown;
    if (flag === 'metrics-url') v = typeof value === 'string' ? [value] : value.map(String);
    else if (typeof value !== 'string') v = String(value[value.length - 1]);
    else if (flag === 'rates') v = value.split(',').map((s) => numeric(s));
    else if (['seed', 'timeout', 'rate', 'stage-seconds', 'concurrency', 'max-concurrency', 'requests', 'duration'].includes(flag)) v = numeric(value);
    else v = value;
    if (field.startsWith('load.')) load[field.slice(5)] = v;
    else raw[field] = v;
  }
  // A flag choosing the arrival process replaces the file's choice, not adds to it.
  const arrivalFlags = ['rate', 'rates', 'concurrency'].filter((f) => flags[f] !== undefined);
  if (arrivalFlags.length > 0) for (const key of ['rate', 'rates', 'concurrency']) if (!arrivalFlags.includes(key)) delete load[key];
  if (Object.keys(load).length > 0) raw['load'] = load;
  if (flags['no-ignore-eos'] === true) raw['ignoreEos'] = false;

  const fileWorkload = isRecord(raw['workload']) ? raw['workload'] : undefined;
  const flagType = typeof flags['workload'] === 'string' ? flags['workload'] : undefined;
  let workload: Record<string, unknown> | undefined =
    flagType === undefined ? fileWorkload : fileWorkload?.['type'] === flagType ? { ...fileWorkload } : { type: flagType };
  if (flagType !== undefined) fieldFlag.set('workload.type', 'workload');
  const problems: string[] = [];
  for (const [flag, spec] of Object.entries(WORKLOAD_FLAGS)) {
    const value = flags[flag];
    if (value === undefined || (spec.kind === 'bool' && value === false)) continue;
    const type = workload?.['type'];
    if (typeof type === 'string' && type in SCHEMA_KEYS && !SCHEMA_KEYS[type as WorkloadKind].has(spec.field)) {
      problems.push(`--${flag} does not apply to the ${type} workload`);
      continue;
    }
    const text = typeof value === 'string' ? value : Array.isArray(value) ? String(value[value.length - 1]) : '';
    workload ??= {};
    fieldFlag.set(`workload.${spec.field}`, flag);
    workload[spec.field] = spec.kind === 'bool' ? true : spec.kind === 'list' ? text.split(',').map((s) => s.trim()).filter((s) => s !== '') : spec.kind === 'string' ? text : numeric(text);
  }
  if (workload !== undefined) raw['workload'] = workload;
  if (problems.length > 0) throw new BenchConfigError(problems);

  const label = (path: string): string => {
    const flag = fieldFlag.get(path.replace(/\[\d+\]$/, ''));
    const where = flag !== undefined ? ` (--${flag})` : fromFile.has(path.split(/[.[]/)[0] ?? '') ? ` (in ${fileName})` : '';
    return `${path}${where}`;
  };
  const relabel = (line: string): string => {
    const i = line.indexOf(': ');
    return i === -1 ? line : `${label(line.slice(0, i))}${line.slice(i)}`;
  };

  const parsed = BenchFileInput.safeParse(raw, { error: errorMap });
  if (!parsed.success) throw new BenchConfigError(zodProblems(parsed.error).map(relabel));
  const cfg = parsed.data;
  if (cfg.url === undefined) throw new BenchConfigError(['url (--url): required']);
  if (cfg.workload === undefined) throw new BenchConfigError([`workload (--workload): required, one of ${WORKLOAD_KINDS.join(', ')}`]);
  let params: WorkloadParams;
  try {
    params = resolveWorkloadParams(cfg.workload);
  } catch (err) {
    if (err instanceof BenchConfigError) throw new BenchConfigError(err.problems.map(relabel));
    throw err;
  }

  const l = cfg.load ?? {};
  const arrivals: ArrivalSpec =
    l.rate !== undefined
      ? { kind: 'poisson', rate: l.rate }
      : l.rates !== undefined
        ? { kind: 'sweep', stages: l.rates.map((rate) => ({ rate, seconds: l.stageSeconds ?? 30 })) }
        : { kind: 'closed', concurrency: l.concurrency ?? 8 };
  return {
    url: cfg.url,
    model: cfg.model ?? 'mymodel',
    api: cfg.api ?? 'chat',
    seed: cfg.seed ?? 1,
    name: cfg.name ?? 'target',
    workload: params,
    arrivals,
    maxRequests: l.requests,
    durationSeconds: l.duration,
    maxConcurrency: l.maxConcurrency,
    timeoutMs: cfg.timeoutSeconds !== undefined ? cfg.timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS,
    endpointHeader: cfg.endpointHeader ?? DEFAULT_ENDPOINT_HEADER,
    ignoreEos: cfg.ignoreEos ?? true,
    metricsUrls: cfg.metricsUrls ?? [],
  };
}
