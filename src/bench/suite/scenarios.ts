import type { ArrivalSpec } from '../arrivals.js';
import type { WorkloadInput } from '../workloads/index.js';

/*
 * The benchmark scenarios of `npm run bench`. Each starts a fresh pool of simulated engines (cold
 * caches), then runs the same seeded workload through each system in turn. Pools are sized so the
 * workload's distinct prefixes fill about 75 % of the pool's KV capacity, like llm-d's
 * 73 %-capacity benchmark (PROTOCOLS.md §j.2): spread evenly, every engine could keep its share
 * cached; sent round-robin, every engine sees every prefix and the caches thrash.
 */

/** A system a workload is run through. */
export type SystemId = 'nginx' | 'random' | 'default' | 'prefix' | 'direct';

export const SYSTEM_NAMES: Readonly<Record<SystemId, string>> = {
  direct: 'direct (no proxy)',
  nginx: 'nginx round-robin',
  random: 'gateway random',
  default: 'gateway DEFAULT',
  prefix: 'gateway PREFIX_CACHE',
};

export interface FleetSpec {
  readonly replicas: number;
  readonly profile: string;
  /** KV blocks per engine (of 16 tokens). */
  readonly numGpuBlocks?: number;
  /** Context limit; must fit in the engine's KV (numGpuBlocks × 16), so small pools need a small one. */
  readonly maxModelLen?: number;
  readonly maxNumSeqs?: number;
  readonly loras?: readonly string[];
  readonly maxLoras?: number;
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
  readonly concurrency: number;
  readonly seconds: number;
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

export type Scenario = RoutingScenario | OverheadScenario;

const ROUTING_SYSTEMS: readonly SystemId[] = ['nginx', 'random', 'default', 'prefix'];

/**
 * KV blocks per engine such that the workload's distinct prefixes (`prefixTokens`) fill `fill` of
 * the pool and an engine can still run `concurrent` requests of `requestTokens` each without
 * sharing. llm-d's 73 % benchmark has ~18 concurrent 8,200-token requests per pod; a pool sized on
 * the prefixes alone could run only a handful and would measure KV starvation, not routing.
 */
function blocksFor(prefixTokens: number, replicas: number, concurrent: number, requestTokens: number, fill = 0.75): number {
  return Math.ceil(Math.max(prefixTokens / fill / replicas, concurrent * requestTokens) / 16);
}

function sharedPrefix(quick: boolean): RoutingScenario {
  // SGLang's generated-shared-prefix shape (2048-token system prompts, 128-token questions) on
  // the 32B profile, which GIE's and llm-d's prefix benchmarks use. Groups are chosen so the
  // prompts fill 75 % of a pool sized for `concurrent` requests per engine; the rate is ~75 % of
  // what round-robin sustains (each engine runs `concurrent` requests of about
  // 0.09 ms × 2,300 prefill + 25 ms × output tokens).
  const system = 2048;
  const question = 128;
  const output = quick ? 128 : 256;
  const concurrent = quick ? 8 : 16;
  const groups = quick ? 54 : 112;
  const users = quick ? 4 : 8;
  return {
    kind: 'routing',
    name: 'shared-prefix',
    title: `Shared prefixes: ${groups} system prompts × ${users} users`,
    why: 'Many users share long system prompts (their total fills 75 % of the pool’s KV cache). A prefix-aware router keeps each prompt warm on one engine; round-robin makes every engine recompute every prompt.',
    fleet: { replicas: 8, profile: 'qwen3-32b-2xh100', numGpuBlocks: blocksFor(groups * system, 8, concurrent, system + question + output), maxModelLen: 4096 },
    workload: { type: 'shared-prefix', groups, usersPerGroup: users, systemTokens: system, questionTokens: question, outputTokens: output },
    arrivals: { kind: 'poisson', rate: quick ? 14 : 16 },
    systems: ROUTING_SYSTEMS,
  };
}

function multiTurn(): RoutingScenario {
  const conversations = 32;
  const turns = 6;
  const perTurn = 120 + 180;
  return {
    kind: 'routing',
    name: 'multi-turn',
    title: `Multi-turn chat: ${conversations} conversations × ${turns} turns`,
    why: "Every turn resends the whole conversation, including the previous answer. Only a router that remembers where a conversation ran, answer included, sends the next turn to the engine that caches it.",
    fleet: { replicas: 8, profile: 'qwen3-32b-2xh100', numGpuBlocks: blocksFor(conversations * (600 + turns * perTurn), 8, 4, 600 + turns * perTurn), maxModelLen: 8192 },
    workload: { type: 'multi-turn', conversations, turns, activeConversations: 12, systemTokens: 600, userTokens: 120, outputTokens: 180 },
    arrivals: { kind: 'closed', concurrency: 12 },
    systems: ROUTING_SYSTEMS,
  };
}

function random(): RoutingScenario {
  return {
    kind: 'routing',
    name: 'random',
    title: 'No shared prefixes: 400 random prompts',
    why: 'Nothing to gain from prefix affinity: smart routing must cost nothing here, and load awareness should still beat round-robin.',
    fleet: { replicas: 8, profile: 'qwen3-32b-2xh100', numGpuBlocks: 2048, maxModelLen: 8192 },
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

function overhead(quick: boolean): OverheadScenario {
  const seconds = quick ? 3 : 15;
  return {
    kind: 'overhead',
    name: 'overhead',
    title: 'Proxy overhead against a zero-latency engine',
    why: 'An engine that answers at once leaves only the proxy: the latency it adds, the requests per second it passes, its CPU per 1,000 requests and its memory. Large prompts cost upstream’s picker >100 ms each at 20 concurrent (GIE #2928).',
    fleet: { replicas: 1, profile: 'zero' },
    shapes: [
      { name: 'small', title: 'small requests (64-token prompt, 16 tokens out, streamed)', workload: { type: 'random', count: 100_000, inputTokens: 64, outputTokens: 16 }, concurrency: 32, seconds },
      { name: 'stream', title: 'long streams (64-token prompt, 512 tokens out)', workload: { type: 'random', count: 100_000, inputTokens: 64, outputTokens: 512 }, concurrency: 16, seconds },
      { name: 'large', title: '200 KB prompts (50k tokens, 16 out) at 20 concurrent', workload: { type: 'random', count: 100_000, inputTokens: 50_000, outputTokens: 16 }, concurrency: 20, seconds },
    ],
    systems: ['direct', 'nginx', 'default'],
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
      ...overhead(true),
      shapes: [{ name: 'small', title: 'small requests (64-token prompt, 16 tokens out, streamed)', workload: { type: 'random', count: 100_000, inputTokens: 64, outputTokens: 16 }, concurrency: 4, seconds: 1 }],
    },
  ];
}

export type SuiteSize = 'smoke' | 'quick' | 'full';

export function scenarios(size: SuiteSize): Scenario[] {
  if (size === 'smoke') return smoke();
  return size === 'quick' ? [sharedPrefix(true), overhead(true)] : [sharedPrefix(false), multiTurn(), random(), lora(), overhead(false)];
}
