import { fieldSource, type Pod, type Problem, type Source } from '../api/index.js';
import { formatPath } from '../api/issues.js';
import type { Snapshot } from '../config/snapshot.js';
import { roleOf, selectorMatches } from '../endpoints/discovery.js';
import { pdProfileOf } from '../gateway/runtime.js';

/** What `validate` says about one prefill/decode pool: a summary line and the problems serving would meet. */
export interface PdPoolReport {
  readonly line: string;
  readonly warnings: readonly Problem[];
}

/**
 * The prefill/decode pools of a snapshot as serve would run them (the runtime the traffic policy
 * gives, not the pool's own annotation), with the pods of the same files counted by role. A pool
 * without a pod of either role refuses every request (503), and a pod whose role label is missing
 * or unknown is never routed: both are warnings here, as serve warns per pod.
 */
export function pdPoolReports(snapshot: Snapshot, pods: readonly Pod[], poolSource: (namespace: string, name: string) => Source | undefined = () => undefined): PdPoolReport[] {
  const reports: PdPoolReport[] = [];
  for (const pool of snapshot.pools.values()) {
    const pd = pdProfileOf(pool);
    if (pd === undefined) continue;
    const label = pd.pdRoleLabelName;
    // Without a role label every pod can play both roles (discovery's rule).
    if (label === undefined) continue;
    const selected = pods.filter((p) => p.metadata.namespace === pool.namespace && selectorMatches(pool.selector, p.metadata.labels));
    const subject = `InferencePool/${pool.name}`;
    const warnings: Problem[] = [];
    const counts = { prefill: 0, decode: 0, both: 0 };
    for (const pod of selected) {
      const role = roleOf(pod, label);
      if (role !== undefined) {
        counts[role]++;
        continue;
      }
      const value = pod.metadata.labels[label];
      const why = value === undefined ? 'missing' : `"${value.slice(0, 64)}" is not a role (prefill, decode or both)`;
      const path = formatPath(['metadata', 'labels', label]);
      warnings.push({ severity: 'warning', subject: `Pod/${pod.metadata.name}`, path, message: `${why}: never routed in prefill/decode pool ${pool.name}`, source: fieldSource(pod.source, path) });
    }
    const head = `${subject} as served: runtime ${pool.runtime}, prefill/decode by label ${label}`;
    if (selected.length === 0) {
      reports.push({ line: `${head}; no Pods in these files (roles are checked when served)`, warnings });
      continue;
    }
    for (const role of ['prefill', 'decode'] as const) {
      if (counts[role] + counts.both === 0) {
        const source = poolSource(pool.namespace, pool.name);
        warnings.push({ severity: 'warning', subject, path: 'pods', message: `no selected Pod here has role ${role} (label ${label}): every request would get 503`, ...(source === undefined ? {} : { source: fieldSource(source, 'spec.selector') }) });
      }
    }
    reports.push({ line: `${head}: ${counts.prefill} prefill, ${counts.decode} decode${counts.both > 0 ? `, ${counts.both} both` : ''} pod(s)`, warnings });
  }
  return reports;
}
