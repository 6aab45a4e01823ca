import type { ArrivalSpec, RateStage } from '../arrivals.js';
import type { Slo } from '../goodput.js';
import type { WorkloadInput } from '../workloads/index.js';

/*
 * The benchmark scenarios of `npm run bench`. Each starts a fresh pool of simulated engines (cold
 * caches), then runs the same seeded workload through each system in turn. Engines have their
 * profile's real KV capacity (the published-matching 290k tokens per Qwen3-32B instance) unless a
 * scenario says otherwise in its report's first lines. The headline scenarios are sweeps: load
 * rises in stages until each system misses its SLO, and the report gives each system's goodput.
 */

/** A system a workload is run through. */
export type SystemId = 'nginx' | 'node-floor' | 'random' | 'round-robin' | 'default' | 'default-workers' | 'prefix' | 'prefix-nohome' | 'precise' | 'oracle' | 'direct' | 'pd' | 'epp';

export const SYSTEM_NAMES: Readonly<Record<SystemId, string>> = {
  direct: 'direct (no proxy)',
  nginx: 'nginx round-robin',
  'node-floor': 'bare Node proxy (http + undici)',
  random: 'gateway random',
  default: 'gateway DEFAULT',
  'default-workers': 'gateway DEFAULT, 2 workers',
  'round-robin': 'gateway ROUND_ROBIN',
  prefix: 'gateway PREFIX_CACHE',
  'prefix-nohome': 'gateway PREFIX_CACHE, no prefix homes',
  precise: 'gateway PREFIX_CACHE precise',
  oracle: 'oracle (knows every cache)',
  pd: 'gateway PD (2 prefill + 2 decode)',
  epp: 'Envoy stand-in + EPP',
};

export interface FleetSpec {
  readonly replicas: number;
  readonly profile: string;
  /** KV blocks per engine (of 16 tokens); default the profile's (its real capacity). */
  readonly numGpuBlocks?: number;
  /** The engines' modelled time runs this many times faster than the wall clock; default 1. */
  readonly timeScale?: number;
  /** Context limit; must fit in the engine's KV (numGpuBlocks × 16), so small pools need a small one. */
  readonly maxModelLen?: number;
  readonly maxNumSeqs?: number;
  readonly loras?: readonly string[];
  readonly maxLoras?: number;
  /** The engines' face; default vllm. */
  readonly runtime?: 'vllm' | 'sglang';
  /**
   * A Hugging Face tokenizer directory the engines tokenise with (`infergate sim --tokenizer`);
   * default the simulator's own. A sweep with the precise system sets it for every system.
   */
  readonly tokenizer?: string;
  /**
   * For the `pd` system: how many of the replicas are prefill servers (the first ones) and how
   * many decode servers (SGLang PD, the gateway with seed 002's InferenceTrafficPolicy). Other
   * systems get the same engines without roles.
   */
  readonly pd?: { readonly prefill: number; readonly decode: number };
}

export interface RoutingScenario {
  readonly kind: 'routing';
  readonly name: string;
  readonly title: string;
  /** What the scenario shows, for the report. */
  readonly why: string;
  readonly fleet: FleetSpec;
  readonly workload: WorkloadInput;
  readonly arrivals: ArrivalSpec;
  readonly maxRequests?: number;
  readonly systems: readonly SystemId[];
}

/** One request shape of the overhead scenario. */
export interface OverheadShape {
  readonly name: string;
  readonly title: string;
  readonly workload: WorkloadInput;
  /** Closed loop: this many clients. With `rate`: the most requests in flight (later arrivals wait, and it shows). */
  readonly concurrency: number;
  /** Open loop: Poisson arrivals at this many requests per second, whatever the system's speed (latency at a given load, not capacity). */
  readonly rate?: number;
  readonly seconds: number;
  /** The systems this shape runs through, of the scenario's; default all. */
  readonly systems?: readonly SystemId[];
  /** What issue 21 asks of a proxy on this shape, reported beside each row (never asserted). */
  readonly goals?: OverheadGoals;
}

/**
 * A proxy's goals on one shape (issue 21): latency it may add over the direct connection, and
 * ratios to nginx's row in the same run.
 */
export interface OverheadGoals {
  readonly addedE2eP50Ms?: number;
  readonly addedE2eP99Ms?: number;
  readonly addedTtftP99Ms?: number;
  /** No event-loop delay sample over this many ms in the run (the gateway's and the picker's own loop). */
  readonly loopDelayMaxMs?: 10;
  /** Requests per second at least this share of nginx's. */
  readonly throughputVsNginx?: number;
  /** CPU per request at most this many times nginx's. */
  readonly cpuVsNginx?: number;
  /** Added E2E p99 at most this many times nginx's. */
  readonly addedE2eP99VsNginx?: number;
  /** Output tokens per second at least this share of nginx's. */
  readonly outputTokensVsNginx?: number;
}

export interface OverheadScenario {
  readonly kind: 'overhead';
  readonly name: string;
  readonly title: string;
  readonly why: string;
  readonly fleet: FleetSpec;
  readonly shapes: readonly OverheadShape[];
  readonly systems: readonly SystemId[];
}

/** How a sweep raises the load. */
export type SweepLoad =
  /** Open loop: Poisson stages back to back in one run; then up to `drainSeconds` for the last requests. */
  | { readonly kind: 'rates'; readonly stages: readonly RateStage[]; readonly drainSeconds: number }
  /** Closed loop: one run per level with that many clients (conversations), `seconds` each. */
  | { readonly kind: 'concurrency'; readonly levels: readonly number[]; readonly seconds: number };

/**
 * How the load generator reaches the system under test. Default: one front (one gateway, nginx,
 * the oracle). `gateways`: that many copies of the front, each with its own state, taking turns
 * (request n goes to copy n mod N: active-active replicas behind a round-robin balancer).
 * `bypass`: a seeded `share` of the requests goes straight to the pods (round-robin over them),
 * the rest through the front, as when some clients know the pods' addresses.
 */
export type SweepTopology = { readonly kind: 'gateways'; readonly replicas: number } | { readonly kind: 'bypass'; readonly share: number };

/** A goodput sweep (see goodput.ts): rising load per system until it misses the SLO. */
export interface SweepScenario {
  readonly kind: 'sweep';
  readonly name: string;
  readonly title: string;
  readonly why: string;
  /** The report's first line: the pool's KV capacity against the workload, and why if shrunk. */
  readonly capacity: string;
  readonly fleet: FleetSpec;
  readonly workload: WorkloadInput;
  readonly load: SweepLoad;
  /** SLOs to report goodput for; the first one's TTFT limit stops a sweep, its ITL limit is drawn on the ITL chart. */
  readonly slos: readonly Slo[];
  /** Stop a system's sweep once this many stages certainly missed the first SLO's TTFT limit. */
  readonly stopAfterMissed: number;
  readonly systems: readonly SystemId[];
  /** Default: one front. */
  readonly topology?: SweepTopology;
}

export type Scenario = RoutingScenario | OverheadScenario | SweepScenario;

const ROUTING_SYSTEMS: readonly SystemId[] = ['nginx', 'random', 'default', 'prefix'];
/**
 * Sweeps leave out gateway random: it only shows what any load balancer does, and costs minutes.
 * The prefix-cache sweeps run both modes of PREFIX_CACHE (estimate, precise) beside the oracle,
 * the placement that knows every engine's cache (oracle-router.ts): the hit rate a router could reach.
 */
const SWEEP_SYSTEMS: readonly SystemId[] = ['nginx', 'round-robin', 'default', 'prefix', 'precise', 'oracle'];

/**
 * The goodput SLOs: TTFT p90 ≤ 2 s (interactive chat) with ITL p99 ≤ 100 ms (the example),
 * and with ITL p99 ≤ 200 ms. docs/benchmarks.md quotes the 200 ms one as the headline: one
 * 2,048-token prefill chunk of the 32B model stalls the decodes in its step for ~100–150 ms, so a
 * pool that often prefills uncached prompts misses 100 ms at any load, which says more about how
 * often a router avoids prefills than about where it overloads.
 */
export const GOODPUT_SLOS: readonly Slo[] = [
  { ttftP90Ms: 2_000, itlP99Ms: 100 },
  { ttftP90Ms: 2_000, itlP99Ms: 200 },
];

/** Qwen3-32B on 2× H100 (TP 2): KV tokens per engine at the profile's real capacity (18,125 blocks of 16). */
const QWEN3_32B_KV_TOKENS = 290_000;

/**
 * Engines in the sweep pools. llm-d ran 8 pods; here every streamed token costs ~0.17 ms of CPU
 * across the engine process, the proxy and the client, so 8 engines past round-robin's knee would
 * need more than this machine's 2 cores. The pool's fill share, not its size, is the design.
 */
const SWEEP_REPLICAS = 4;

function sharedPrefix(quick: boolean): SweepScenario {
  // llm-d's 73 %-capacity design (llm-d/llm-d-kv-cache benchmarking/73-capacity/README.md): 5 users per group, 6,000-token system
  // prompts, 1,200-token questions (GIE's high-cache suite, output 1,000), and enough groups that
  // every distinct prompt token together fills 73 % of the pool's real KV. Spread by prefix, every
  // engine keeps its share cached; sent round-robin, every engine sees every prompt and thrashes.
  const replicas = quick ? 2 : SWEEP_REPLICAS;
  const users = 5;
  const system = 6_000;
  const question = 1_200;
  const output = quick ? 200 : 1_000;
  const fill = 0.73;
  const pool = replicas * QWEN3_32B_KV_TOKENS;
  const groups = Math.floor((fill * pool) / (system + users * question));
  const distinct = groups * (system + users * question);
  const stages = quick
    ? [2, 4, 6, 8].map((rate) => ({ rate, seconds: 10 }))
    : [2, 3, 4, 5, 6, 7, 8].map((rate) => ({ rate, seconds: 30 }));
  return {
    kind: 'sweep',
    name: 'shared-prefix',
    title: `Shared prefixes at real KV capacity: ${groups} system prompts × ${users} users on ${replicas} engines`,
    why: `Every user of a group shares its ${system.toLocaleString('en-US')}-token system prompt; each user asks its own ${question.toLocaleString('en-US')}-token question, again and again, and gets ${output.toLocaleString('en-US')} tokens back. A prefix-aware router keeps each group on one engine, where all of its prompts stay cached; round-robin makes every engine hold every group, more than its KV can keep. Before the sweep each system serves every group's first prompt once (1 output token), so no system starts cold.`,
    capacity: `Engines run at their profile's real KV capacity (${replicas} × Qwen3-32B on 2× H100, ${(QWEN3_32B_KV_TOKENS / 1000).toFixed(0)}k tokens each, ${(pool / 1e6).toFixed(2)}M in all). The workload's distinct prompt tokens, ${groups} × (${system.toLocaleString('en-US')} + ${users} × ${question.toLocaleString('en-US')}) = ${(distinct / 1e6).toFixed(2)}M, fill ${Math.round((distinct / pool) * 100)} % of it, as in llm-d's 73 %-capacity benchmark.`,
    fleet: { replicas, profile: 'qwen3-32b-2xh100', ...(quick ? { timeScale: 2 } : {}) },
    workload: { type: 'shared-prefix', groups, usersPerGroup: users, systemTokens: system, questionTokens: question, outputTokens: output },
    load: { kind: 'rates', stages, drainSeconds: quick ? 10 : 45 },
    slos: GOODPUT_SLOS,
    stopAfterMissed: 1,
    systems: quick ? ['nginx', 'prefix'] : SWEEP_SYSTEMS,
  };
}

/**
 * The shared-prefix sweep on a small pool for `--smoke`: 2 tiny engines (2,048 KV tokens each)
 * and prompts that fill most of one engine, so a router that spreads a group over both engines
 * misses where one that keeps it in place hits.
 */
function smokeSharedPrefix(): SweepScenario {
  return {
    kind: 'sweep',
    name: 'shared-prefix-sweep',
    title: 'Smoke: a goodput sweep, 6 system prompts × 2 users',
    why: 'CI smoke run of a prefix-cache sweep.',
    capacity: 'Engines run at the tiny profile’s real KV capacity (2 × 2,048 tokens); the distinct prompt tokens, 6 × (240 + 2 × 20), fill 41 % of it.',
    fleet: { replicas: 2, profile: 'tiny' },
    workload: { type: 'shared-prefix', groups: 6, usersPerGroup: 2, systemTokens: 240, questionTokens: 20, outputTokens: 8 },
    load: { kind: 'rates', stages: [{ rate: 10, seconds: 2 }, { rate: 20, seconds: 2 }], drainSeconds: 3 },
    slos: GOODPUT_SLOS,
    stopAfterMissed: 1,
    systems: ['round-robin', 'prefix', 'precise', 'oracle'],
  };
}

/** The shared-prefix sweep the two blind-spot scenarios reuse, at the suite's size. */
function prefixBase(size: SuiteSize): SweepScenario {
  return size === 'smoke' ? smokeSharedPrefix() : sharedPrefix(size === 'quick');
}

/**
 * Where estimate mode is blind (issue 20), 1: two gateway replicas with independent state behind
 * a round-robin balancer, over one pool. Each replica's estimate index sees only the requests it
 * placed; precise mode reads what every engine actually caches from the engines' KV events.
 */
export function prefixReplicas(size: SuiteSize): SweepScenario {
  const base = prefixBase(size);
  return {
    ...base,
    name: 'prefix-replicas',
    title: `Two gateway replicas behind round-robin, one pool: ${base.title.replace(/^Smoke: a goodput sweep, /, 'smoke, ')}`,
    why: `${base.why} Here two gateway processes with the same configuration and independent state serve the pool, taking turns (request n goes to replica n mod 2), as active-active replicas behind a round-robin load balancer do: each estimate-mode replica learns only where it sent its own half of a group's prompts.`,
    topology: { kind: 'gateways', replicas: 2 },
    systems: ['round-robin', 'prefix', 'prefix-nohome', 'precise', 'oracle'],
  };
}

/** Share of the requests that bypass the gateway in the bypass scenario. */
export const BYPASS_SHARE = 0.3;

/**
 * Where estimate mode is blind, 2: 30 % of the traffic goes straight to the pods (round-robin
 * over them), the rest through one gateway. The engines cache what the bypassing requests bring;
 * an estimate index never hears of it.
 */
export function prefixBypass(size: SuiteSize): SweepScenario {
  const base = prefixBase(size);
  return {
    ...base,
    name: 'prefix-bypass',
    title: `${Math.round(BYPASS_SHARE * 100)} % of the traffic bypasses the gateway: ${base.title.replace(/^Smoke: a goodput sweep, /, 'smoke, ')}`,
    why: `${base.why} Here a seeded ${Math.round(BYPASS_SHARE * 100)} % of the requests go straight to the engines (round-robin over them), the rest through one gateway, as when some clients know the pods' addresses. Hit rates are given over all traffic (the engines' counters) and for the gateway's share alone (the prompt tokens its answers report cached).`,
    topology: { kind: 'bypass', share: BYPASS_SHARE },
    systems: ['round-robin', 'prefix', 'precise', 'oracle'],
  };
}

/** The multi-turn sweep's highest level of conversations at once. */
const MAX_CONVERSATIONS = 128;

function multiTurn(): SweepScenario {
  // vLLM's multi-turn benchmark shape (vllm-project/vllm: benchmarks/multi_turn) at its means: a 500-token prefix common
  // to all, a 1,000-token one per conversation, 140-token user turns, 100-token answers; 10 turns.
  const turns = 10;
  const perConversation = 500 + 1_000 + turns * (140 + 100);
  return {
    kind: 'sweep',
    name: 'multi-turn',
    title: `Multi-turn chat at real KV capacity: ${turns}-turn conversations`,
    why: 'Every turn resends the whole conversation, including the previous answer. Only a router that remembers where a conversation ran, answer included, sends the next turn to the engine that caches it; elsewhere the whole history is prefilled again.',
    capacity: `Engines run at their profile's real KV capacity (${SWEEP_REPLICAS} × Qwen3-32B on 2× H100, ${(QWEN3_32B_KV_TOKENS / 1000).toFixed(0)}k tokens each). A conversation reaches ${perConversation.toLocaleString('en-US')} tokens, so even the most conversations at once here (${MAX_CONVERSATIONS}) hold at most ${Math.round(((MAX_CONVERSATIONS * perConversation) / (SWEEP_REPLICAS * QWEN3_32B_KV_TOKENS)) * 100)} % of the pool: this scenario is about recomputing histories, not about KV pressure.`,
    fleet: { replicas: SWEEP_REPLICAS, profile: 'qwen3-32b-2xh100' },
    workload: { type: 'multi-turn', conversations: 100_000, turns, activeConversations: 1, commonPrefixTokens: 500, systemTokens: 1_000, userTokens: 140, outputTokens: 100 },
    load: { kind: 'concurrency', levels: [16, 32, 64, 96, MAX_CONVERSATIONS], seconds: 20 },
    slos: GOODPUT_SLOS,
    stopAfterMissed: 1,
    systems: SWEEP_SYSTEMS,
  };
}

/**
 * Prefill/decode disaggregation against aggregation on the same 4 engines (issue 12): long
 * prompts with shortish answers, where every aggregated engine keeps stalling its decodes behind
 * 2,048-token prefill chunks, and a PD pool keeps its decode engines free of prefills but has only
 * half of the engines to prefill with.
 */
function pdScenario(quick: boolean): SweepScenario {
  const input = 4_096;
  const output = quick ? 128 : 256;
  // Past the aggregated pools' knee (prefill compute on 4 engines), which is well past PD's (on 2).
  const stages = quick ? [2, 6, 10].map((rate) => ({ rate, seconds: 10 })) : [2, 4, 6, 8, 10, 12, 14, 16].map((rate) => ({ rate, seconds: 15 }));
  const perRequest = input + output;
  return {
    kind: 'sweep',
    name: 'pd',
    title: `Prefill/decode disaggregation: ${input.toLocaleString('en-US')}-token prompts, ${output}-token answers on ${SWEEP_REPLICAS} engines, 2 prefill + 2 decode against aggregated`,
    why: `Every request brings a fresh ${input.toLocaleString('en-US')}-token prompt (nothing shared, nothing cached) and streams ${output} tokens. Aggregated, each engine prefills prompts in 2,048-token chunks inside the same steps as its decodes, so every decoding request on it waits ~100 ms whenever a chunk runs. Disaggregated (SGLang PD, the gateway with seed 002's InferenceTrafficPolicy: prefix-aware balancing on both roles), 2 engines only prefill and hand each prompt's KV (1 GiB for Qwen3-32B) to one of 2 engines that only decode: steady token gaps, at the price of half the prefill capacity, a second request per prompt and the KV transfer.`,
    capacity: `Engines run at their profile's real KV capacity (${SWEEP_REPLICAS} × Qwen3-32B on 2× H100, SGLang face, ${(QWEN3_32B_KV_TOKENS / 1000).toFixed(0)}k tokens each). A request holds at most ${perRequest.toLocaleString('en-US')} tokens, so KV is not what limits this scenario: prefill compute is. The KV transfer is ${input.toLocaleString('en-US')} × 256 KiB over 800 Gb/s (2 × 400 Gb/s RDMA, one NIC per GPU): 10.7 ms per prompt.`,
    fleet: { replicas: SWEEP_REPLICAS, profile: 'qwen3-32b-2xh100', runtime: 'sglang', pd: { prefill: 2, decode: 2 }, ...(quick ? { timeScale: 2 } : {}) },
    workload: { type: 'random', count: 100_000, inputTokens: input, outputTokens: output },
    load: { kind: 'rates', stages, drainSeconds: quick ? 10 : 30 },
    slos: GOODPUT_SLOS,
    stopAfterMissed: 1,
    systems: quick ? ['nginx', 'pd'] : ['nginx', 'default', 'pd'],
  };
}

function random(): RoutingScenario {
  return {
    kind: 'routing',
    name: 'random',
    title: 'No shared prefixes: 400 random prompts',
    why: 'Nothing to gain from prefix affinity: smart routing must cost nothing here, and load awareness should still beat round-robin.',
    fleet: { replicas: 8, profile: 'qwen3-32b-2xh100' },
    workload: { type: 'random', count: 400, inputTokens: 1024, outputTokens: 128 },
    arrivals: { kind: 'poisson', rate: 12 },
    systems: ROUTING_SYSTEMS,
  };
}

function lora(): RoutingScenario {
  const adapters = Array.from({ length: 8 }, (_, i) => `lora-${i}`);
  return {
    kind: 'routing',
    name: 'lora',
    title: '8 LoRA adapters on engines with 2 adapter slots',
    why: 'Requests for an adapter that is not resident wait for a slot and pay its load. LoRA affinity keeps each adapter on the engines that have it loaded.',
    fleet: { replicas: 8, profile: 'llama-3.1-8b-h100', loras: adapters, maxLoras: 2 },
    workload: { type: 'lora', count: 480, adapters, skew: 1, inputTokens: 256, outputTokens: 64 },
    arrivals: { kind: 'poisson', rate: 24 },
    systems: ROUTING_SYSTEMS,
  };
}

/** The overhead scenario's request shapes. */
const SMALL: WorkloadInput = { type: 'random', count: 100_000, inputTokens: 64, outputTokens: 16 };
const LONG_STREAM: WorkloadInput = { type: 'random', count: 100_000, inputTokens: 64, outputTokens: 512 };
const LARGE_PROMPT: WorkloadInput = { type: 'random', count: 100_000, inputTokens: 50_000, outputTokens: 16 };
/** Issue 21's goals for 200 KB prompts at 20 and at 200 concurrent. */
const LARGE_GOALS: OverheadGoals = { addedTtftP99Ms: 20, loopDelayMaxMs: 10 };

function overhead(quick: boolean): OverheadScenario {
  // At --quick the whole overhead part stays about a minute: 2 s per run, and the systems that
  // answer a shape's question only (each proxy starts afresh per shape, which costs seconds).
  const seconds = quick ? 2 : 15;
  const latencyOnly: readonly SystemId[] = ['direct', 'nginx', 'default'];
  return {
    kind: 'overhead',
    name: 'overhead',
    title: 'Proxy overhead against a zero-latency engine',
    why: 'An engine that answers at once leaves only the proxy: the latency it adds, the requests per second it passes, its CPU per 1,000 requests, its memory, and how late its event loop ran (p99 and worst over the run, from its own infergate_event_loop_delay_seconds; the buckets bound them, hence ≤). The engine counts prompts rather than tokenising them (the zero profile), so a 200 KB prompt costs it little more than its JSON parse and the direct row is the floor. The bare Node proxy (Node’s http server and undici relaying to the one engine, nothing else) is the floor any proxy written on Node starts from: a gateway’s CPU beyond it is its own work. Each proxy is warmed for 3 s at the shape’s concurrency first (a fresh Node process runs unoptimised code for its first few thousand requests). Closed-loop shapes measure capacity; the 1,000 req/s shape is open loop (Poisson arrivals), the latency a proxy adds at a given load. Large prompts cost upstream’s picker ~154 ms each at 20 concurrent and ~1.45 s at 200 (GIE #2928). For Envoy stand-in + EPP, CPU and memory are the picker’s process alone (the stand-in plays Envoy, in Node, in a process of its own), and the decision time is measured in the stand-in from the request_headers message to the picker’s answer. Goals are issue 21’s, reported, never asserted.',
    fleet: { replicas: 1, profile: 'zero' },
    shapes: [
      { name: 'small', title: 'small requests (64-token prompt, 16 tokens out, streamed)', workload: SMALL, concurrency: 32, seconds, goals: { throughputVsNginx: 0.9, cpuVsNginx: 2 } },
      {
        name: 'small-rate',
        title: 'small requests at 1,000 req/s (Poisson arrivals, at most 256 in flight)',
        workload: SMALL,
        rate: 1_000,
        concurrency: 256,
        seconds,
        goals: { addedE2eP50Ms: 1, addedE2eP99Ms: 3 },
        ...(quick ? { systems: latencyOnly } : {}),
      },
      {
        name: 'stream',
        title: 'long streams (64-token prompt, 512 tokens out)',
        workload: LONG_STREAM,
        concurrency: 16,
        seconds,
        goals: { addedE2eP99VsNginx: 1.2, outputTokensVsNginx: 0.95 },
        ...(quick ? { systems: latencyOnly } : {}),
      },
      { name: 'large', title: '200 KB prompts (50k tokens, 16 out) at 20 concurrent', workload: LARGE_PROMPT, concurrency: 20, seconds, goals: LARGE_GOALS, ...(quick ? { systems: ['direct', 'nginx', 'default', 'epp'] } : {}) },
      // GIE #2928's second point: upstream's EPP adds ~1.45 s per 220 KB prompt at 200 concurrent.
      { name: 'large-200', title: '200 KB prompts (50k tokens, 16 out) at 200 concurrent', workload: LARGE_PROMPT, concurrency: 200, seconds, goals: LARGE_GOALS, ...(quick ? { systems: ['direct', 'nginx', 'default', 'epp'] } : {}) },
    ],
    systems: ['direct', 'nginx', 'node-floor', 'default', 'default-workers', 'epp'],
  };
}

/**
 * A few seconds of each kind on two small engines: CI's end-to-end check that the suite runs and
 * its reports are produced and sane (never a timing threshold).
 */
function smoke(): Scenario[] {
  return [
    {
      kind: 'routing',
      name: 'shared-prefix',
      title: 'Smoke: shared prefixes, 4 system prompts × 4 users',
      why: 'CI smoke run of the suite.',
      fleet: { replicas: 2, profile: 'tiny', numGpuBlocks: 256, maxModelLen: 1024 },
      workload: { type: 'shared-prefix', groups: 4, usersPerGroup: 4, systemTokens: 200, questionTokens: 20, outputTokens: 16 },
      arrivals: { kind: 'closed', concurrency: 4 },
      systems: ROUTING_SYSTEMS,
    },
    {
      kind: 'sweep',
      name: 'shared-prefix-sweep',
      title: 'Smoke: a goodput sweep, 4 system prompts × 2 users',
      why: 'CI smoke run of a sweep.',
      capacity: 'Engines run at the tiny profile’s real KV capacity (2 × 2,048 tokens).',
      fleet: { replicas: 2, profile: 'tiny' },
      workload: { type: 'shared-prefix', groups: 4, usersPerGroup: 2, systemTokens: 200, questionTokens: 20, outputTokens: 8 },
      load: { kind: 'rates', stages: [{ rate: 10, seconds: 1 }, { rate: 20, seconds: 1 }], drainSeconds: 2 },
      slos: GOODPUT_SLOS,
      stopAfterMissed: 1,
      systems: ['nginx', 'prefix'],
    },
    {
      kind: 'sweep',
      name: 'pd',
      title: 'Smoke: prefill/decode disaggregation, 2 prefill + 2 decode',
      why: 'CI smoke run of the PD sweep.',
      capacity: 'Engines run at the tiny profile’s real KV capacity (4 × 2,048 tokens).',
      fleet: { replicas: 4, profile: 'tiny', runtime: 'sglang', pd: { prefill: 2, decode: 2 } },
      workload: { type: 'random', count: 1_000, inputTokens: 200, outputTokens: 8 },
      load: { kind: 'rates', stages: [{ rate: 8, seconds: 2 }], drainSeconds: 3 },
      slos: GOODPUT_SLOS,
      stopAfterMissed: 1,
      systems: ['nginx', 'pd'],
    },
    {
      ...overhead(true),
      shapes: [{ name: 'small', title: 'small requests (64-token prompt, 16 tokens out, streamed)', workload: SMALL, concurrency: 4, seconds: 1, goals: { cpuVsNginx: 2 } }],
      systems: ['direct', 'nginx', 'node-floor', 'default', 'epp'],
    },
  ];
}

export type SuiteSize = 'smoke' | 'quick' | 'full';

export function scenarios(size: SuiteSize): Scenario[] {
  if (size === 'smoke') return smoke();
  return size === 'quick'
    ? [sharedPrefix(true), pdScenario(true), overhead(true)]
    : [sharedPrefix(false), multiTurn(), prefixReplicas('full'), prefixBypass('full'), pdScenario(false), random(), lora(), overhead(false)];
}

/**
 * Scenarios `--only` may name beyond the size's own list: the prefix-cache blind spots at the
 * smoke and quick sizes, and the shrunk-KV stress case (not at the smoke size).
 */
export function optionalScenarios(size: SuiteSize): Scenario[] {
  if (size === 'smoke') return [prefixReplicas('smoke'), prefixBypass('smoke')];
  return size === 'quick' ? [prefixReplicas('quick'), prefixBypass('quick'), sharedPrefixStress()] : [sharedPrefixStress()];
}

/**
 * The old shared-prefix scenario on a deliberately shrunk pool, kept as a stress case only
 * (`--only shared-prefix-stress`; not part of the suite): 2,432 blocks per engine, 7.5× less than
 * the profile's, so round-robin's working set overflows every engine at a moderate rate.
 */
export function sharedPrefixStress(): RoutingScenario {
  const groups = 112;
  return {
    kind: 'routing',
    name: 'shared-prefix-stress',
    title: `Stress case, shrunk KV: ${groups} system prompts × 8 users on 2,432-block engines`,
    why: 'STRESS CASE, NOT REAL CAPACITY: each engine has 2,432 KV blocks (39k tokens), 7.5× fewer than the Qwen3-32B profile’s real 18,125, so round-robin thrashes at 16 req/s. It shows the shape of a KV cliff, not what a router gains on real GPUs.',
    fleet: { replicas: 8, profile: 'qwen3-32b-2xh100', numGpuBlocks: 2_432, maxModelLen: 4096 },
    workload: { type: 'shared-prefix', groups, usersPerGroup: 8, systemTokens: 2048, questionTokens: 128, outputTokens: 256 },
    arrivals: { kind: 'poisson', rate: 16 },
    systems: ROUTING_SYSTEMS,
  };
}
