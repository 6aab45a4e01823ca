import type { InferenceModelRewrite, Resource } from '../api/types.js';
import { WeightedTable } from '../core/weighted.js';
import type { ModelConfig, RewriteRuleConfig, RewriteTable } from './snapshot.js';

type Warn = (r: Resource, path: string, message: string) => void;

/** Groups an InferenceModelRewrite's poolRef may name (GIE's two InferencePool groups). */
const POOL_GROUPS = new Set(['inference.networking.x-k8s.io', 'inference.networking.k8s.io']);

/** A rewrite table with no rules (the pool's models pass through, or follow their InferenceModel). */
export const NO_REWRITES: RewriteTable = { exact: new Map(), generic: undefined };

/**
 * Builds each pool's rewrite table from InferenceModelRewrites given OLDEST FIRST (creation
 * timestamp, then file order). Precedence is upstream's (GIE InferenceModelRewriteSpec, "Precedence
 * and Conflict Resolution"): an exact match beats a generic rule, then the oldest resource wins,
 * then the first rule in its list; filling the tables in that order makes the first entry the
 * winner. A model name an InferenceModel of the same pool serves is decided by that InferenceModel
 * (the more specific resource: a generic fallback rule must not take over a configured canary), so
 * an exact match on it never applies and is warned about.
 *
 * `poolOf` resolves a poolRef to the pool's `namespace/name`, or undefined when there is none.
 */
export function compileRewrites(
  sorted: readonly InferenceModelRewrite[],
  poolOf: (rw: InferenceModelRewrite) => string | undefined,
  models: ReadonlyMap<string, ReadonlyMap<string, ModelConfig>>,
  warn: Warn,
): Map<string, RewriteTable> {
  const exact = new Map<string, Map<string, { rule: RewriteRuleConfig; owner: string }>>();
  const generic = new Map<string, { rule: RewriteRuleConfig; owner: string }>();
  for (const rw of sorted) {
    const ref = rw.spec.poolRef;
    if (!POOL_GROUPS.has(ref.group) || ref.kind !== 'InferencePool') {
      warn(rw, 'spec.poolRef', `must reference an InferencePool (got ${ref.kind} in group "${ref.group}"); the rewrite has no effect`);
      continue;
    }
    const pool = poolOf(rw);
    if (pool === undefined) {
      warn(rw, 'spec.poolRef.name', `InferencePool ${ref.namespace ?? rw.metadata.namespace}/${ref.name} not found; the rewrite has no effect`);
      continue;
    }
    const byName = exact.get(pool) ?? new Map<string, { rule: RewriteRuleConfig; owner: string }>();
    exact.set(pool, byName);
    rw.spec.rules.forEach((r, ri) => {
      const weighted = r.targets.filter((t) => t.weight !== undefined).length;
      // Upstream counts a missing weight as 0 (never drawn) unless every target lacks one.
      if (weighted > 0 && weighted < r.targets.length) {
        warn(rw, `spec.rules[${ri}].targets`, 'some targets have a weight and some do not; the ones without a weight are never drawn (set weights for all targets, or none)');
      }
      const rule: RewriteRuleConfig = {
        resourceName: rw.metadata.name,
        generic: r.matches.length === 0,
        targets: new WeightedTable(r.targets.map((t) => ({ item: t.modelRewrite, weight: weighted === 0 ? 1 : (t.weight ?? 0) }))),
      };
      const here = `InferenceModelRewrite/${rw.metadata.name} spec.rules[${ri}]`;
      if (rule.generic) {
        const first = generic.get(pool);
        if (first === undefined) generic.set(pool, { rule, owner: here });
        else warn(rw, `spec.rules[${ri}]`, `pool ${pool} already has a generic rule (${first.owner}, older or earlier); this one never applies`);
        return;
      }
      r.matches.forEach((model, mi) => {
        const path = `spec.rules[${ri}].matches[${mi}].model.value`;
        const im = models.get(pool)?.get(model);
        if (im !== undefined) {
          warn(rw, path, `InferenceModel/${im.resourceName} serves "${model}" in pool ${pool} and decides its target; this match never applies`);
          return;
        }
        const first = byName.get(model);
        if (first === undefined) byName.set(model, { rule, owner: here });
        else if (first.rule !== rule) warn(rw, path, `"${model}" is already rewritten in pool ${pool} by ${first.owner} (older or earlier); this match never applies`);
      });
    });
  }
  const out = new Map<string, RewriteTable>();
  for (const pool of new Set([...exact.keys(), ...generic.keys()])) {
    const byName = new Map<string, RewriteRuleConfig>();
    for (const [model, e] of exact.get(pool) ?? []) byName.set(model, e.rule);
    out.set(pool, { exact: byName, generic: generic.get(pool)?.rule });
  }
  return out;
}
