import type { PoolConfig, RuleConfig } from '../config/snapshot.js';
import { DEFAULT_BUFFER_LIMIT_BYTES } from '../config/defaults.js';
import { GatewayError } from '../core/errors.js';
import { WeightedTable } from '../core/weighted.js';
import type { Runtime } from './runtime.js';

/**
 * The body limit of a pool served by pool key (the endpoint picker), in bytes, when the gateway's
 * options name none: the same 16 MiB a listener without a ClientTrafficPolicy `bufferLimit` gets
 * (config/defaults.ts). Envoy routed the request, so no listener's limit applies; a deployment
 * sets another with GatewayOptions `poolBodyLimitBytes` (one number, or per pool key).
 */
export const DEFAULT_POOL_BODY_LIMIT_BYTES = DEFAULT_BUFFER_LIMIT_BYTES;

/** Where the 413's message says a pool's limit comes from. */
export function poolLimitName(poolKey: string): string {
  return `the body limit of InferencePool ${poolKey}`;
}

/** Body limits by pool: one for all, or per pool key (`namespace/name`) with the default for the rest. */
export type PoolBodyLimits = number | Readonly<Record<string, number>>;

/** The limit of `poolKey` under `limits` (DEFAULT_POOL_BODY_LIMIT_BYTES when unset). */
export function poolBodyLimit(limits: PoolBodyLimits | undefined, poolKey: string): number {
  if (typeof limits === 'number') return limits;
  const own = limits === undefined || !Object.hasOwn(limits, poolKey) ? undefined : limits[poolKey];
  return own ?? DEFAULT_POOL_BODY_LIMIT_BYTES;
}

/** Throws RangeError unless every limit is a positive integer of bytes (checked once, at start). */
export function checkPoolBodyLimits(limits: PoolBodyLimits | undefined): void {
  if (limits === undefined) return;
  const entries = typeof limits === 'number' ? [['every pool', limits] as const] : Object.entries(limits);
  for (const [pool, n] of entries) if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`pool body limit of ${pool} must be a positive integer of bytes (got ${n})`);
}

const POOL_RULE_PREFIX = 'pool:';

/** True for the rule of a request Envoy already routed to a pool (poolRule), not an HTTPRoute's. */
export function isPoolRule(rule: RuleConfig): boolean {
  return rule.id.startsWith(POOL_RULE_PREFIX);
}

/** The pool key (`namespace/name`) of a pool rule. */
export function poolKeyOf(rule: RuleConfig): string {
  return rule.id.slice(POOL_RULE_PREFIX.length);
}

/** Per snapshot pool: its rule (the snapshot is immutable; a reload brings new PoolConfigs). */
const rules = new WeakMap<PoolConfig, RuleConfig>();

/**
 * The rule of a request Envoy already routed to `poolKey`: its only backend is the pool, so the
 * pool's InferenceModels and rewrite rules, criticality, admission and scheduling apply as in the
 * proxy; it has no header modifiers and no request timeout (Envoy's route applies those). Throws
 * `pool_not_found` (503) when the snapshot has no such pool.
 */
export function poolRule(runtime: Runtime, poolKey: string, limitBytes: number): RuleConfig {
  const pool = runtime.snapshot.pools.get(poolKey);
  if (pool === undefined) {
    const shown = poolKey.length > 253 ? `${poolKey.slice(0, 253)}…` : poolKey;
    throw new GatewayError('pool_not_found', `no InferencePool ${JSON.stringify(shown)} in the configuration (expected namespace/name of a loaded pool)`);
  }
  const cached = rules.get(pool);
  if (cached !== undefined && cached.bufferLimitBytes === limitBytes) return cached;
  const rule: RuleConfig = {
    id: `${POOL_RULE_PREFIX}${pool.key}`,
    routeName: `${POOL_RULE_PREFIX}${pool.key}`,
    backends: new WeightedTable([{ item: { type: 'pool', pool }, weight: 1 }]),
    requestHeaders: null,
    responseHeaders: null,
    requestTimeoutMs: undefined,
    requestTimeoutSetting: undefined,
    bufferLimitBytes: limitBytes,
  };
  rules.set(pool, rule);
  return rule;
}
