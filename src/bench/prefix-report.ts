import type { Goodput } from './goodput.js';
import { ms, pct, ratio, table } from './report.js';
import type { RequestRecord } from './runner.js';
import type { SweepResult, SweepSystemResult } from './suite/sweep.js';
import { summarize } from './summary.js';
import { goodputRate, sloLabel } from './sweep-report.js';
import { shortNumber } from './svg.js';

/*
 * The prefix-cache view of a sweep (issue 20): each system's hit rate against the oracle's (the
 * placement that knows every engine's cache, oracle-router.ts), with TTFT p90, goodput and
 * throughput, and whether precise mode meets its goals: within 5 % of the oracle's hit rate, and
 * with two gateway replicas at least 1.5× estimate mode's goodput.
 */

/** Goal 1: precise mode's hit rate at least this share of the oracle's. */
export const PRECISE_HIT_RATE_GOAL = 0.95;
/** Goal 2: with two gateway replicas, precise mode's goodput at least this multiple of estimate mode's. */
export const REPLICAS_GOODPUT_GOAL = 1.5;

/** Prompt tokens served from the prefix cache over prompt tokens, as the answers report them. */
export interface ShareHits {
  readonly requests: number;
  readonly cachedTokens: number;
  readonly promptTokens: number;
  readonly hitRate: number | undefined;
}

/**
 * Hit rate per `via` (where the run sent each request: `gateway`, `bypass`, `gateway-<i>`), from
 * the answers' `usage.prompt_tokens_details.cached_tokens` of completed requests. It counts each
 * request once, at its first scheduling; the engines' counters also count a preempted request's
 * second admission.
 */
export function hitsByVia(records: readonly RequestRecord[]): Map<string, ShareHits> {
  const sums = new Map<string, { requests: number; cached: number; prompt: number }>();
  for (const r of records) {
    if (!r.ok || r.via === undefined || r.promptTokens === undefined || r.cachedTokens === undefined) continue;
    const s = sums.get(r.via) ?? { requests: 0, cached: 0, prompt: 0 };
    s.requests++;
    s.cached += r.cachedTokens;
    s.prompt += r.promptTokens;
    sums.set(r.via, s);
  }
  return new Map([...sums].map(([via, s]) => [via, { requests: s.requests, cachedTokens: s.cached, promptTokens: s.prompt, hitRate: s.prompt > 0 ? s.cached / s.prompt : undefined }]));
}

/** The stages every system ran (a sweep stops a system after a miss): comparable load for all rows. */
export function commonStages(result: SweepResult): number[] {
  const sets = result.systems.map((s) => new Set(s.points.map((p) => p.stage)));
  const first = sets[0];
  if (first === undefined) return [];
  return [...first].filter((stage) => sets.every((set) => set.has(stage))).sort((a, b) => a - b);
}

/** Seconds of offered load in `stages` (open loop: the stages' lengths; closed loop: each level's). */
function stageSeconds(result: SweepResult, stages: readonly number[]): number {
  const load = result.scenario.load;
  return stages.reduce((sum, i) => sum + (load.kind === 'rates' ? (load.stages[i]?.seconds ?? 0) : load.seconds), 0);
}

/** One system's row values (numbers, for the JSON and the checks). */
export interface PrefixRow {
  readonly name: string;
  readonly hitRate: number | undefined;
  /** hitRate / the oracle's. */
  readonly vsOracle: number | undefined;
  /** With a bypass topology: the gateway's share alone, and the bypassing share. */
  readonly gatewayHitRate: number | undefined;
  readonly bypassHitRate: number | undefined;
  /** Over the stages every system ran. */
  readonly ttftP90Ms: number | undefined;
  readonly outputTokensPerS: number | undefined;
  /** Under the headline SLO. */
  readonly goodput: Goodput | undefined;
  /** CPU ms of the front processes (all gateway replicas) per request sent, over the whole sweep. */
  readonly frontCpuMsPerRequest: number | undefined;
}

/** The headline SLO: the 200 ms ITL one where the scenario has it (docs/benchmarks.md), else the first. */
function headlineSlo(result: SweepResult): number {
  return result.scenario.slos.length > 1 ? 1 : 0;
}

export function prefixRows(result: SweepResult): PrefixRow[] {
  const stages = commonStages(result);
  const inCommon = new Set(stages);
  const seconds = stageSeconds(result, stages);
  const oracle = result.systems.find((s) => s.system === 'oracle')?.prefixCache?.hitRate;
  const slo = headlineSlo(result);
  return result.systems.map((s: SweepSystemResult) => {
    const own = s.records.filter((r) => inCommon.has(r.stage));
    const summary = summarize(own);
    const via = hitsByVia(s.records);
    const hitRate = s.prefixCache?.hitRate;
    return {
      name: s.name,
      hitRate,
      vsOracle: hitRate === undefined || oracle === undefined || oracle === 0 ? undefined : hitRate / oracle,
      gatewayHitRate: via.get('gateway')?.hitRate,
      bypassHitRate: via.get('bypass')?.hitRate,
      ttftP90Ms: summary.ttftMs?.p90,
      outputTokensPerS: seconds > 0 ? summary.outputTokens / seconds : undefined,
      goodput: s.goodput[slo],
      frontCpuMsPerRequest: s.frontCpuS === undefined || s.records.length === 0 ? undefined : (s.frontCpuS * 1000) / s.records.length,
    };
  });
}

/** The prefix-cache table (Markdown lines); empty for a sweep with neither an oracle nor a topology. */
export function prefixCacheTable(result: SweepResult): string[] {
  if (!result.systems.some((s) => s.system === 'oracle') && result.scenario.topology === undefined) return [];
  const bypass = result.scenario.topology?.kind === 'bypass';
  const stages = commonStages(result);
  const slo = result.scenario.slos[headlineSlo(result)];
  const rows = prefixRows(result);
  const head = [
    'system',
    'prefix hit rate (engines)',
    'vs oracle',
    ...(bypass ? ['through the gateway', 'bypassing'] : []),
    `TTFT p90 (${stages.length} common stage${stages.length === 1 ? '' : 's'})`,
    `goodput (${slo === undefined ? '–' : sloLabel(slo)})`,
    'output tok/s there',
    'output tok/s (common stages)',
    'front CPU per request',
  ];
  const cells = rows.map((r) => [
    r.name,
    pct(r.hitRate),
    r.vsOracle === undefined ? '–' : ratio(r.vsOracle, 1),
    ...(bypass ? [pct(r.gatewayHitRate), pct(r.bypassHitRate)] : []),
    ms(r.ttftP90Ms),
    r.goodput === undefined ? '–' : goodputRate(r.goodput),
    r.goodput?.outputTokensPerS === undefined ? '–' : shortNumber(r.goodput.outputTokensPerS),
    r.outputTokensPerS === undefined ? '–' : shortNumber(r.outputTokensPerS),
    ms(r.frontCpuMsPerRequest),
  ]);
  const out = table(head, cells, ['l']);
  const oracle = result.systems.find((s) => s.oracle !== undefined)?.oracle;
  if (oracle !== undefined) {
    out.push(
      '',
      `The oracle is a reference, not a product: for each of its ${oracle.requests} requests it asked every engine how much of the prompt it caches (${oracle.queries} queries with the whole body, ${oracle.failedQueries} failed; each engine tokenised the prompt once more to answer) and waited ${ms(oracle.meanDecisionMs)} on average (wall clock) before forwarding. No real model server answers such a query. It is the best placement per request, greedy: over a whole run a router that also weighs load or groups a new prefix's first requests can come out a little above it, most visibly over traffic the oracle does not place (the bypassing share).`,
    );
  }
  if (result.tokenizer !== undefined) out.push('', 'Every system’s engines tokenised with Llama 3’s tokenizer (the one the precise gateway loads), so every row counts the same tokens.');
  return out;
}

/** Goodput rates compared: `undefined` when either is missing; Infinity when only the base sustained none. */
function goodputRatio(value: Goodput | undefined, base: Goodput | undefined): number | undefined {
  if (value?.rate === undefined || base === undefined) return undefined;
  if (base.rate === undefined) return Number.POSITIVE_INFINITY;
  return value.rate / base.rate;
}

/** The goals' lines for this sweep (empty when it has no precise row). */
export function prefixGoals(result: SweepResult): string[] {
  const rows = prefixRows(result);
  const byId = new Map(result.systems.map((s, i) => [s.system, rows[i] as PrefixRow]));
  const precise = byId.get('precise');
  const oracle = byId.get('oracle');
  if (precise === undefined) return [];
  const out: string[] = [];
  if (oracle?.hitRate !== undefined && precise.hitRate !== undefined) {
    const share = precise.hitRate / oracle.hitRate;
    // With a bypass, the share the router places is the fairer comparison; it is given beside.
    const placed =
      precise.gatewayHitRate !== undefined && oracle.gatewayHitRate !== undefined ? `; through the gateway ${pct(precise.gatewayHitRate)} against ${pct(oracle.gatewayHitRate)} (${((precise.gatewayHitRate / oracle.gatewayHitRate) * 100).toFixed(1)} %)` : '';
    out.push(`- Goal: precise within ${Math.round((1 - PRECISE_HIT_RATE_GOAL) * 100)} % of the oracle's hit rate — ${pct(precise.hitRate)} against ${pct(oracle.hitRate)} (${(share * 100).toFixed(1)} % of it${placed}): **${share >= PRECISE_HIT_RATE_GOAL ? 'holds' : 'does not hold'}**.`);
  }
  const estimate = byId.get('prefix');
  if (result.scenario.topology?.kind === 'gateways' && estimate !== undefined) {
    const r = goodputRatio(precise.goodput, estimate.goodput);
    const text = r === undefined ? 'precise sustained no stage' : r === Number.POSITIVE_INFINITY ? `${goodputRate(precise.goodput as Goodput)} against none` : `${goodputRate(precise.goodput as Goodput)} against ${goodputRate(estimate.goodput as Goodput)} (${r.toFixed(2)}×)`;
    // A goodput that met the top stage is only a lower bound: the ratio decides nothing when estimate mode's is one.
    const verdict = estimate.goodput?.bounded === false && r !== undefined ? 'undecided: estimate mode met the highest stage offered' : r !== undefined && r >= REPLICAS_GOODPUT_GOAL ? 'holds' : 'does not hold';
    const note = precise.goodput?.bounded === false && estimate.goodput?.bounded === true ? ' (precise met the highest stage offered: the ratio is a lower bound)' : '';
    out.push(`- Goal: with ${result.scenario.topology.replicas} replicas, precise at least ${REPLICAS_GOODPUT_GOAL}× estimate mode's goodput — ${text}${note}: **${verdict}**.`);
  }
  return out;
}
