import { formatBytes } from './quantity.js';
import { formatDurationMs } from './duration.js';
import type { HTTPRoute, Resource } from './types.js';

/** One line per resource for `infergate validate`: what the gateway understood it to say. */
export function summarize(r: Resource): string {
  const head = `${r.kind}/${r.metadata.name}`;
  const ns = r.metadata.namespace === 'default' ? '' : ` (namespace ${r.metadata.namespace})`;
  return `${head}${ns}: ${describe(r)}`;
}

function describe(r: Resource): string {
  switch (r.kind) {
    case 'GatewayClass':
      return `controller ${r.spec.controllerName}`;
    case 'Gateway':
      return `listeners ${r.spec.listeners.map((l) => `${l.name} ${l.protocol}:${l.port}${l.hostname === undefined ? '' : ` ${l.hostname}`}`).join(', ')}`;
    case 'HTTPRoute': {
      const parents = r.spec.parentRefs.map((p) => `${p.name}${p.sectionName === undefined ? '' : `/${p.sectionName}`}`).join(', ');
      const rules = r.spec.rules.map((rule) => {
        const matches = rule.matches.map(describeMatch).join(' | ');
        const backends = rule.backendRefs.map((b) => `${b.kind} ${b.name} (${b.weight})`).join(', ');
        return `[${matches} → ${backends === '' ? 'no backends' : backends}]`;
      });
      return `on ${parents}: ${rules.join(' ')}`;
    }
    case 'InferencePool':
      return `selector ${labels(r.spec.selector)}, ports ${r.spec.targetPorts.join(', ')}, runtime ${r.runtime}, routing ${r.routingStrategy}`;
    case 'InferenceModel': {
      const targets = r.spec.targetModels.map((t) => (t.weight === undefined ? t.name : `${t.name} (${t.weight})`)).join(', ');
      return `modelName ${r.spec.modelName} → ${targets === '' ? r.spec.modelName : targets} in pool ${r.spec.poolRef.name}, ${r.spec.criticality ?? 'Standard (unset)'}`;
    }
    case 'InferenceObjective':
      return `priority ${r.spec.priority ?? '0 (unset)'} in pool ${r.spec.poolRef.name}`;
    case 'InferenceModelRewrite': {
      const rules = r.spec.rules.map((rule) => {
        const matches = rule.matches.length === 0 ? 'any model' : rule.matches.join(' | ');
        const all = rule.targets.every((t) => t.weight === undefined);
        const targets = rule.targets.map((t) => (all ? t.modelRewrite : `${t.modelRewrite} (${t.weight ?? 0})`)).join(', ');
        return `[${matches} → ${targets}]`;
      });
      return `in pool ${r.spec.poolRef.name}${r.apiVersion.startsWith('llm-d.ai/') ? ' (llm-d.ai)' : ''}: ${rules.length === 0 ? 'no rules' : rules.join(' ')}`;
    }
    case 'InferenceTrafficPolicy': {
      const pd = r.spec.profile?.pd;
      const parts = [`pool ${r.spec.poolRef.name}`];
      if (r.spec.modelServerRuntime !== undefined) parts.push(`runtime ${r.spec.modelServerRuntime}`);
      if (pd !== undefined) parts.push(`prefill/decode by label ${pd.pdRoleLabelName ?? '(unset)'}, bootstrap port ${pd.kvTransfer?.bootstrapPort ?? '(unset)'}`);
      return parts.join(', ');
    }
    case 'ClientTrafficPolicy':
      return `${targetList(r.spec.targetRefs)}: body limit ${r.spec.bufferLimitBytes === undefined ? 'default' : formatBytes(r.spec.bufferLimitBytes)}`;
    case 'BackendTrafficPolicy':
      return `${targetList(r.spec.targetRefs)}: request timeout ${r.spec.requestTimeoutMs === undefined ? 'none' : formatDurationMs(r.spec.requestTimeoutMs)}`;
    case 'Service':
      return `selector ${labels(r.spec.selector)}, ports ${r.spec.ports.map((p) => `${p.port}→${p.targetPort}`).join(', ')}`;
    case 'Pod':
      return `${r.status.podIP ?? 'no podIP'}${r.status.phase === undefined ? '' : `, ${r.status.phase}`}, labels ${labels(r.metadata.labels)}`;
  }
}

function labels(map: Readonly<Record<string, string>>): string {
  const entries = Object.entries(map);
  return entries.length === 0 ? '{}' : entries.map(([k, v]) => `${k}=${v}`).join(',');
}

function targetList(refs: ReadonlyArray<{ kind: string; name: string; sectionName?: string }>): string {
  return refs.map((t) => `${t.kind} ${t.name}${t.sectionName === undefined ? '' : `/${t.sectionName}`}`).join(', ');
}

/**
 * One HTTPRoute match as a person reads it: method, path, then every header and query condition
 * (a model-name rule is told apart by its `X-Gateway-Model-Name` header match, so hiding those
 * would make two rules look alike).
 */
function describeMatch(m: HTTPRoute['spec']['rules'][number]['matches'][number]): string {
  const parts = [`${m.method === undefined ? '' : `${m.method} `}${m.path.type} ${m.path.value}`];
  const op = (type: string): string => (type === 'Exact' ? '=' : '~');
  for (const h of m.headers) parts.push(`header ${h.name}${op(h.type)}${h.value}`);
  for (const q of m.queryParams) parts.push(`query ${q.name}${op(q.type)}${q.value}`);
  return parts.join(', ');
}
