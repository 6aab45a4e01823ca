import {
  RUNTIME_ANNOTATION,
  type BackendRef,
  type BackendTrafficPolicy,
  type ClientTrafficPolicy,
  type Gateway,
  type HTTPRoute,
  type HTTPRouteFilter,
  type InferenceModel,
  type InferenceObjective,
  type InferencePool,
  type InferenceTrafficPolicy,
  type PolicyTargetRef,
  type Problem,
  type Resource,
  type ResourceKind,
  type ResourceOf,
  type Service,
} from '../api/types.js';
import { fieldSource } from '../api/field-lines.js';
import { WeightedTable } from '../core/weighted.js';
import { DEFAULT_BUFFER_LIMIT_BYTES } from './defaults.js';
import { deepFreeze } from './freeze.js';
import { precisePrefixConfig } from './prefix-mode.js';
import { compileRewrites, NO_REWRITES } from './model-rewrites.js';
import { RouteTable, type RouteEntry } from './route-table.js';
import { BASE_MODEL_NAME_HEADER, MODEL_NAME_HEADER, poolTakesModel, type BackendTarget, type ListenerConfig, type ModelConfig, type PoolConfig, type RewriteTable, type RuleConfig, type ServiceConfig, type Snapshot } from './snapshot.js';

/** The Gateway API group (parentRefs and policy targetRefs name Gateways and HTTPRoutes in it). */
export const GATEWAY_GROUP = 'gateway.networking.k8s.io';
/** The groups an HTTPRoute backendRef may name an InferencePool in (GIE api/v1alpha2 and api/v1). */
export const POOL_GROUPS: ReadonlySet<string> = new Set(['inference.networking.x-k8s.io', 'inference.networking.k8s.io']);
const SUPPORTED_FILTERS = new Set(['RequestHeaderModifier', 'ResponseHeaderModifier']);
const MODEL_HEADERS = new Set([MODEL_NAME_HEADER, BASE_MODEL_NAME_HEADER]);

export interface CompileResult {
  readonly snapshot: Snapshot;
  /** Cross-resource findings; all are warnings (the resource is served with a documented fallback). */
  readonly warnings: readonly Problem[];
}

/** Groups resources by kind, keeping input order. */
class Index {
  readonly #byKind = new Map<ResourceKind, Resource[]>();
  readonly order = new Map<Resource, number>();

  constructor(resources: readonly Resource[]) {
    resources.forEach((r, i) => {
      this.order.set(r, i);
      const list = this.#byKind.get(r.kind) ?? [];
      list.push(r);
      this.#byKind.set(r.kind, list);
    });
  }

  of<K extends ResourceKind>(kind: K): ResourceOf<K>[] {
    return (this.#byKind.get(kind) ?? []) as ResourceOf<K>[];
  }

  find<K extends ResourceKind>(kind: K, namespace: string, name: string): ResourceOf<K> | undefined {
    return this.of(kind).find((r) => r.metadata.namespace === namespace && r.metadata.name === name);
  }
}

function subject(r: Resource): string {
  return `${r.kind}/${r.metadata.name}`;
}

/**
 * Compiles validated resources into a Snapshot: resolves references, precomputes route tables,
 * weighted tables and per-listener limits, and reports what cannot be resolved as warnings
 * (Kubernetes accepts dangling references too; the affected traffic gets a clear error).
 */
export function compileSnapshot(resources: readonly Resource[], version: number): CompileResult {
  const idx = new Index(resources);
  const warnings: Problem[] = [];
  const warn = (r: Resource, path: string, message: string): void => {
    // The field's own line, as load errors say it (field-lines.ts).
    warnings.push({ severity: 'warning', subject: subject(r), path, message, source: fieldSource(r.source, path) });
  };

  const pools = compilePools(idx, warn);
  const services = new Map<string, ServiceConfig>();
  for (const s of idx.of('Service')) services.set(`${s.metadata.namespace}/${s.metadata.name}`, compileService(s));

  const listeners = compileListeners(idx, pools, services, warn);
  const snapshot: Snapshot = {
    version,
    createdAt: new Date(),
    listeners,
    pools,
    services,
    warnings,
    resourceCount: resources.length,
  };
  return { snapshot: deepFreeze(snapshot), warnings };
}

// ---------------------------------------------------------------- pools and models

type Warn = (r: Resource, path: string, message: string) => void;

function compilePools(idx: Index, warn: Warn): Map<string, PoolConfig> {
  const models = new Map<string, Map<string, ModelConfig>>();
  const modelOwners = new Map<string, InferenceModel>();
  // Oldest InferenceModel wins a modelName within a pool (creation timestamp, else file order).
  const sortedModels = [...idx.of('InferenceModel')].sort((a, b) => olderFirst(idx, a, b));
  for (const m of sortedModels) {
    const poolKey = `${m.spec.poolRef.namespace ?? m.metadata.namespace}/${m.spec.poolRef.name}`;
    if (!POOL_GROUPS.has(m.spec.poolRef.group) || m.spec.poolRef.kind !== 'InferencePool') {
      warn(m, 'spec.poolRef', `must reference an InferencePool (got ${m.spec.poolRef.kind} in group "${m.spec.poolRef.group}")`);
      continue;
    }
    if (idx.find('InferencePool', poolKey.split('/')[0] ?? '', m.spec.poolRef.name) === undefined) {
      warn(m, 'spec.poolRef.name', `InferencePool ${poolKey} not found; the model is not served`);
      continue;
    }
    const owner = modelOwners.get(`${poolKey}|${m.spec.modelName}`);
    if (owner !== undefined) {
      warn(m, 'spec.modelName', `modelName "${m.spec.modelName}" is already served in pool ${poolKey} by InferenceModel/${owner.metadata.name}, which is older; this one is not Ready`);
      continue;
    }
    modelOwners.set(`${poolKey}|${m.spec.modelName}`, m);
    const byName = models.get(poolKey) ?? new Map<string, ModelConfig>();
    byName.set(m.spec.modelName, compileModel(m));
    models.set(poolKey, byName);
  }

  const rewrites = compileRewrites(
    [...idx.of('InferenceModelRewrite')].sort((a, b) => olderFirst(idx, a, b)),
    (rw) => {
      const ns = rw.spec.poolRef.namespace ?? rw.metadata.namespace;
      return idx.find('InferencePool', ns, rw.spec.poolRef.name) === undefined ? undefined : `${ns}/${rw.spec.poolRef.name}`;
    },
    models,
    warn,
  );

  const objectives = new Map<string, Map<string, number>>();
  for (const o of idx.of('InferenceObjective')) addObjective(idx, o, objectives, warn);

  const trafficPolicies = new Map<string, InferenceTrafficPolicy>();
  for (const p of idx.of('InferenceTrafficPolicy')) {
    const key = `${p.metadata.namespace}/${p.spec.poolRef.name}`;
    if (idx.find('InferencePool', p.metadata.namespace, p.spec.poolRef.name) === undefined) {
      warn(p, 'spec.poolRef.name', `InferencePool ${key} not found; the policy has no effect`);
    } else if (trafficPolicies.has(key)) {
      warn(p, 'spec.poolRef.name', `InferencePool ${key} already has InferenceTrafficPolicy/${trafficPolicies.get(key)?.metadata.name}; this one is ignored`);
    } else {
      trafficPolicies.set(key, p);
    }
  }

  for (const [key, policy] of trafficPolicies) {
    const pd = policy.spec.profile?.pd;
    if (pd === undefined) continue;
    const pool = idx.find('InferencePool', key.split('/')[0] ?? '', policy.spec.poolRef.name);
    const runtime = policy.spec.modelServerRuntime ?? pool?.runtime;
    if (runtime === 'trt-llm') warn(policy, 'spec.profile.pd', 'prefill/decode disaggregation is served for sglang and vllm pools only; this trt-llm pool is routed as one pool (roles ignored)');
  }

  const out = new Map<string, PoolConfig>();
  for (const p of idx.of('InferencePool')) {
    const key = `${p.metadata.namespace}/${p.metadata.name}`;
    out.set(key, compilePool(p, key, models.get(key), rewrites.get(key), objectives.get(key), trafficPolicies.get(key), warn));
  }
  return out;
}

function olderFirst(idx: Index, a: Resource, b: Resource): number {
  const ca = a.metadata.creationTimestamp ?? '';
  const cb = b.metadata.creationTimestamp ?? '';
  if (ca !== '' && cb !== '' && ca !== cb) return ca < cb ? -1 : 1;
  return (idx.order.get(a) ?? 0) - (idx.order.get(b) ?? 0);
}

function compileModel(m: InferenceModel): ModelConfig {
  const targets = m.spec.targetModels.length === 0 ? [{ name: m.spec.modelName }] : m.spec.targetModels;
  return {
    modelName: m.spec.modelName,
    resourceName: m.metadata.name,
    criticality: m.spec.criticality ?? 'Standard',
    // Without weights every target gets an equal share, as upstream does.
    targets: new WeightedTable(targets.map((t) => ({ item: t.name, weight: t.weight ?? 1 }))),
  };
}

function addObjective(idx: Index, o: InferenceObjective, into: Map<string, Map<string, number>>, warn: Warn): void {
  const ns = o.spec.poolRef.namespace ?? o.metadata.namespace;
  if (idx.find('InferencePool', ns, o.spec.poolRef.name) === undefined) {
    warn(o, 'spec.poolRef.name', `InferencePool ${ns}/${o.spec.poolRef.name} not found; the objective has no effect`);
    return;
  }
  const key = `${ns}/${o.spec.poolRef.name}`;
  const byName = into.get(key) ?? new Map<string, number>();
  byName.set(o.metadata.name, o.spec.priority ?? 0);
  into.set(key, byName);
}

function compilePool(
  p: InferencePool,
  key: string,
  models: Map<string, ModelConfig> | undefined,
  rewrites: RewriteTable | undefined,
  objectives: Map<string, number> | undefined,
  policy: InferenceTrafficPolicy | undefined,
  warn: Warn,
): PoolConfig {
  const runtime = policy?.spec.modelServerRuntime ?? p.runtime;
  const mode = precisePrefixConfig(p, policy, hasPrefixAffinity(p, policy, runtime), warn);
  const precise = typeof mode === 'object' ? mode : undefined;
  return {
    key,
    namespace: p.metadata.namespace,
    name: p.metadata.name,
    apiVersion: p.apiVersion,
    selector: p.spec.selector,
    targetPorts: p.spec.targetPorts,
    // An InferenceTrafficPolicy's runtime wins over the annotation: it is the more specific resource.
    runtime: policy?.spec.modelServerRuntime ?? p.runtime,
    runtimeConfigured: policy?.spec.modelServerRuntime !== undefined || p.metadata.annotations[RUNTIME_ANNOTATION] !== undefined,
    routingStrategy: p.routingStrategy,
    routing: p.routing,
    models: models ?? new Map(),
    rewrites: rewrites ?? NO_REWRITES,
    objectives: objectives ?? new Map(),
    ...(policy === undefined ? {} : { trafficPolicy: policy.spec }),
    ...(precise === undefined ? {} : { precise }),
    ...(typeof mode === 'string' ? { preciseUnavailable: mode } : {}),
    resource: p,
  };
}

/**
 * Whether the pool's scheduling has prefix affinity (policies.ts): a prefill/decode policy whose
 * role names `prefixCache`, else the PREFIX_CACHE strategy or a positive prefix weight, and no
 * baseline policy.
 */
function hasPrefixAffinity(p: InferencePool, policy: InferenceTrafficPolicy | undefined, runtime: string): boolean {
  const pd = runtime === 'trt-llm' ? undefined : policy?.spec.profile?.pd;
  const weight = p.routing?.scorers?.prefix;
  if (pd !== undefined) return weight !== 0 && pd.trafficPolicy?.prefixCache !== undefined && (pd.prefillPolicyRef === 'prefixCache' || pd.decodePolicyRef === 'prefixCache');
  if (p.routing?.policy !== undefined) return false;
  return weight === undefined ? p.routingStrategy === 'PREFIX_CACHE' : weight > 0;
}

function compileService(s: Service): ServiceConfig {
  return { key: `${s.metadata.namespace}/${s.metadata.name}`, namespace: s.metadata.namespace, name: s.metadata.name, selector: s.spec.selector, ports: s.spec.ports };
}

// ---------------------------------------------------------------- listeners and routes

interface BoundListener {
  readonly gateway: Gateway;
  readonly name: string;
  readonly port: number;
  readonly hostname: string | undefined;
}

function compileListeners(
  idx: Index,
  pools: Map<string, PoolConfig>,
  services: Map<string, ServiceConfig>,
  warn: Warn,
): Map<number, ListenerConfig> {
  const bound: BoundListener[] = [];
  for (const g of idx.of('Gateway')) {
    g.spec.listeners.forEach((l, i) => {
      if (l.protocol !== 'HTTP') {
        warn(g, `spec.listeners[${i}].protocol`, `protocol ${l.protocol} is not supported (only HTTP); listener ${l.name} is not served`);
        return;
      }
      bound.push({ gateway: g, name: l.name, port: l.port, hostname: l.hostname });
    });
  }

  const entriesByPort = new Map<number, RouteEntry[]>();
  for (const l of bound) entriesByPort.set(l.port, entriesByPort.get(l.port) ?? []);

  for (const route of idx.of('HTTPRoute')) {
    const attached = attachRoute(idx, route, bound, warn);
    if (attached.length === 0) continue;
    const rules = route.spec.rules.map((rule, ri) => {
      const filters = [...rule.filters, ...rule.backendRefs.flatMap((b) => b.filters)];
      reportUnsupportedFilters(route, ri, filters, warn);
      return { rule, ri };
    });
    for (const listener of attached) {
      const limits = listenerLimits(idx, listener, route);
      for (const { rule, ri } of rules) {
        const compiled: RuleConfig = {
          id: `${route.metadata.namespace}/${route.metadata.name}#${ri}`,
          routeName: route.metadata.name,
          backends: new WeightedTable(
            rule.backendRefs.map((b, bi) => ({ item: resolveBackend(route, ri, bi, b, pools, services, warn), weight: b.weight })),
          ),
          requestHeaders: rule.filters.find((f) => f.type === 'RequestHeaderModifier')?.requestHeaderModifier ?? null,
          responseHeaders: rule.filters.find((f) => f.type === 'ResponseHeaderModifier')?.responseHeaderModifier ?? null,
          requestTimeoutMs: rule.requestTimeoutMs ?? limits.requestTimeoutMs,
          requestTimeoutSetting:
            rule.requestTimeoutMs !== undefined ? `HTTPRoute ${route.metadata.namespace}/${route.metadata.name} spec.rules[${ri}].timeouts.request` : limits.requestTimeoutSetting,
          bufferLimitBytes: limits.bufferLimitBytes,
        };
        if (listener === attached[0]) reportPartialModels(route, ri, compiled.backends, warn);
        const list = entriesByPort.get(listener.port) ?? [];
        for (const match of rule.matches) {
          list.push({
            rule: compiled,
            listenerHostname: listener.hostname,
            routeHostnames: route.spec.hostnames,
            match,
            routeOrder: { created: route.metadata.creationTimestamp ?? '', key: `${route.metadata.namespace}/${route.metadata.name}`, fileOrder: idx.order.get(route) ?? 0 },
            ruleIndex: ri,
          });
        }
        entriesByPort.set(listener.port, list);
      }
    }
  }

  const out = new Map<number, ListenerConfig>();
  for (const [port, entries] of entriesByPort) {
    const names = bound.filter((l) => l.port === port).map((l) => `${l.gateway.metadata.name}/${l.name}`);
    const models = new Set<string>();
    for (const e of entries) {
      for (const b of e.rule.backends.items) if (b.type === 'pool') for (const m of [...b.pool.models.keys(), ...b.pool.rewrites.exact.keys()]) models.add(m);
    }
    const maxBodyBytes = entries.reduce((max, e) => Math.max(max, e.rule.bufferLimitBytes), 0) || DEFAULT_BUFFER_LIMIT_BYTES;
    const matchesModelHeaders = entries.some((e) => e.match.headers.some((h) => MODEL_HEADERS.has(h.name.toLowerCase())));
    out.set(port, { port, names, routes: new RouteTable(entries), models: [...models].sort(), maxBodyBytes, matchesModelHeaders });
  }
  return out;
}

/**
 * A rule that splits by weight where an InferenceModel's `modelName` exists in only some of its
 * backends: requests for that model go only to the pools that serve it (the gateway's backend
 * choice, docs/routing.md), so the rule's weights do not split them as written. Said once per
 * rule and model, as a warning: it is a working layout (seed 003's LoRA canary), not an error.
 */
function reportPartialModels(route: HTTPRoute, ri: number, backends: WeightedTable<BackendTarget>, warn: Warn): void {
  if (backends.size < 2) return;
  const names = new Set<string>();
  for (const b of backends.items) if (b.type === 'pool') for (const m of [...b.pool.models.keys(), ...b.pool.rewrites.exact.keys()]) names.add(m);
  for (const model of [...names].sort()) {
    const serving = backends.items.filter((b): b is BackendTarget & { type: 'pool' } => b.type === 'pool' && poolTakesModel(b.pool, model));
    if (serving.length === backends.size) continue;
    const pools = serving.map((b) => b.pool.name).join(', ');
    warn(route, `spec.rules[${ri}]`, `model ${model} is served by ${pools} only; requests for it go there (weights apply among the pools that serve it)`);
  }
}

function attachRoute(idx: Index, route: HTTPRoute, bound: readonly BoundListener[], warn: Warn): BoundListener[] {
  const attached = new Set<BoundListener>();
  route.spec.parentRefs.forEach((ref, i) => {
    if (ref.group !== GATEWAY_GROUP || ref.kind !== 'Gateway') {
      warn(route, `spec.parentRefs[${i}]`, `parent ${ref.kind} in group "${ref.group}" is not supported (only Gateway)`);
      return;
    }
    const ns = ref.namespace ?? route.metadata.namespace;
    const gateway = idx.find('Gateway', ns, ref.name);
    if (gateway === undefined) {
      warn(route, `spec.parentRefs[${i}].name`, `Gateway ${ns}/${ref.name} not found; the route is not attached`);
      return;
    }
    const matches = bound.filter(
      (l) => l.gateway === gateway && (ref.sectionName === undefined || l.name === ref.sectionName) && (ref.port === undefined || l.port === ref.port),
    );
    if (matches.length === 0) {
      const what = ref.sectionName !== undefined ? `listener "${ref.sectionName}"` : ref.port !== undefined ? `a listener on port ${ref.port}` : 'an HTTP listener';
      warn(route, `spec.parentRefs[${i}]`, `Gateway ${ns}/${ref.name} has no ${what}; the route is not attached there`);
    }
    for (const l of matches) attached.add(l);
  });
  return [...attached];
}

function reportUnsupportedFilters(route: HTTPRoute, ri: number, filters: readonly HTTPRouteFilter[], warn: Warn): void {
  filters.forEach((f, fi) => {
    if (!SUPPORTED_FILTERS.has(f.type)) {
      warn(route, `spec.rules[${ri}].filters[${fi}].type`, `filter ${f.type} is not supported; it is ignored`);
    }
  });
}

function targets(ref: PolicyTargetRef, kind: string, resource: Resource): boolean {
  return ref.kind === kind && ref.name === resource.metadata.name && (ref.group === '' || ref.group === GATEWAY_GROUP);
}

/**
 * Listener-wide limits from Envoy Gateway policies. ClientTrafficPolicy targets a Gateway (or one
 * of its listeners by sectionName); BackendTrafficPolicy targets a Gateway or an HTTPRoute, the
 * route's policy being the more specific one.
 */
function listenerLimits(idx: Index, listener: BoundListener, route: HTTPRoute): { bufferLimitBytes: number; requestTimeoutMs: number | undefined; requestTimeoutSetting: string | undefined } {
  const g = listener.gateway;
  const sameNs = (p: ClientTrafficPolicy | BackendTrafficPolicy, r: Resource): boolean => p.metadata.namespace === r.metadata.namespace;
  const forListener = (ref: PolicyTargetRef): boolean => targets(ref, 'Gateway', g) && (ref.sectionName === undefined || ref.sectionName === listener.name);
  const ctp = idx.of('ClientTrafficPolicy').find((p) => sameNs(p, g) && p.spec.targetRefs.some(forListener));
  const routeBtp = idx.of('BackendTrafficPolicy').find((p) => sameNs(p, route) && p.spec.targetRefs.some((t) => targets(t, 'HTTPRoute', route)));
  const gatewayBtp = idx.of('BackendTrafficPolicy').find((p) => sameNs(p, g) && p.spec.targetRefs.some(forListener));
  const btp = routeBtp?.spec.requestTimeoutMs !== undefined ? routeBtp : gatewayBtp?.spec.requestTimeoutMs !== undefined ? gatewayBtp : undefined;
  return {
    bufferLimitBytes: ctp?.spec.bufferLimitBytes ?? DEFAULT_BUFFER_LIMIT_BYTES,
    requestTimeoutMs: btp?.spec.requestTimeoutMs,
    requestTimeoutSetting: btp === undefined ? undefined : `BackendTrafficPolicy ${btp.metadata.namespace}/${btp.metadata.name} timeout.http.requestTimeout`,
  };
}

function resolveBackend(
  route: HTTPRoute,
  ri: number,
  bi: number,
  ref: BackendRef,
  pools: Map<string, PoolConfig>,
  services: Map<string, ServiceConfig>,
  warn: Warn,
): BackendTarget {
  const path = `spec.rules[${ri}].backendRefs[${bi}]`;
  const ns = ref.namespace ?? route.metadata.namespace;
  const key = `${ns}/${ref.name}`;
  const invalid = (field: string, reason: string): BackendTarget => {
    if (ref.weight > 0) warn(route, `${path}${field}`, `${reason}; requests drawn to it get 500`);
    return { type: 'invalid', reason };
  };
  if (ref.kind === 'InferencePool') {
    if (!POOL_GROUPS.has(ref.group)) return invalid('.group', `InferencePool group must be inference.networking.x-k8s.io or inference.networking.k8s.io (got "${ref.group}")`);
    const pool = pools.get(key);
    return pool === undefined ? invalid('.name', `InferencePool ${key} not found`) : { type: 'pool', pool };
  }
  if (ref.kind === 'Service' && ref.group === '') {
    const service = services.get(key);
    if (service === undefined) return invalid('.name', `Service ${key} not found`);
    const port = ref.port === undefined ? (service.ports.length === 1 ? service.ports[0] : undefined) : service.ports.find((p) => p.port === ref.port);
    if (port === undefined) {
      return invalid('.port', ref.port === undefined ? `Service ${key} has ${service.ports.length} ports; backendRef.port is required` : `Service ${key} has no port ${ref.port}`);
    }
    return { type: 'service', service, targetPort: port.targetPort };
  }
  return invalid('.kind', `backend kind ${ref.kind} in group "${ref.group}" is not supported (InferencePool or Service)`);
}
