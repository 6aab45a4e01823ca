import { formatProblem, type Gateway, type HTTPRoute, type Pod, type Problem, type Resource } from '../../api/types.js';
import { selectorMatches } from '../../api/labels.js';
import { resourceKey } from '../source.js';
import type { SourceLog } from '../source.js';
import { convertObject } from './objects.js';
import { CONTROLLER_NAME } from './options.js';
import type { RawObject, RefusedObject } from './reflector.js';
import { apiVersionOf, resourceName, type WatchedType } from './watched-kinds.js';

/**
 * What part of the cluster a source serves:
 * - `gateway`: the standalone gateway: Gateways of its GatewayClass (one whose controllerName is
 *   CONTROLLER_NAME), the HTTPRoutes attached to them, every pool, model, policy and Service,
 *   and the Pods some pool or Service selects;
 * - `pool`: one endpoint picker's InferencePool, the models, objectives, rewrites and traffic
 *   policy that name it, and the Pods it selects;
 * - `selector`: a standalone picker's Pods, by label (its pool comes from the flags).
 */
export type ViewScope =
  | { readonly kind: 'gateway'; readonly gatewayClass: string }
  | { readonly kind: 'pool'; readonly namespace: string; readonly name: string }
  | { readonly kind: 'selector'; readonly namespace: string; readonly selector: Readonly<Record<string, string>> };

/** Changes to deliver: upserts and deleted keys. */
export interface Delta {
  readonly upserts: Resource[];
  readonly deletes: Resource[];
}

/** Pods are keyed `namespace/name`, as endpoint discovery keys them. */
function podKeyOf(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

function typeKey(t: WatchedType): string {
  return `${apiVersionOf(t)}|${t.plural}`;
}

/**
 * The source's view of the cluster: the accepted objects of every watched kind (an object that
 * fails validation keeps its last good version, and its problem is logged once per revision), the
 * resources they yield for the scope, and the mirror of what the gateway has applied, so each
 * flush delivers only what changed. A change to anything but Pods recomputes the derived view
 * (O(resources + pods)); a Pod change touches that pod alone.
 */
export class KubernetesView {
  readonly #scope: ViewScope;
  readonly #log: () => SourceLog;
  /** Accepted resources per watched type, by `namespace/name`. */
  readonly #byType = new Map<string, { type: WatchedType; objects: Map<string, Resource> }>();
  /** Refusals already logged: `type|ns/name` → the revision (or reason) logged. */
  readonly #reported = new Map<string, string>();
  /** Warnings not yet delivered (they ride on the next batch). */
  #warnings: Problem[] = [];
  /** Derived from the accepted objects: every non-Pod resource the scope serves, by resourceKey. */
  #config = new Map<string, Resource>();
  /** Pod selectors of the derived config, by namespace. */
  #selectors = new Map<string, Readonly<Record<string, string>>[]>();
  /** The derived configuration must be recomputed. */
  #configDirty = true;
  /** The derived configuration must be compared with what the gateway holds (at the next `pending`). */
  #configUnsent = true;
  readonly #dirtyPods = new Set<string>();
  /** What the gateway holds from this source. */
  readonly #appliedConfig = new Map<string, Resource>();
  readonly #appliedPods = new Map<string, Pod>();
  /** Shadowed names already logged. */
  readonly #shadowed = new Set<string>();
  /** The warning about a missing or foreign GatewayClass, logged when it changes. */
  #classNote = '';

  readonly #maxObjectsPerKind: number;
  /** Kinds whose cap was reported (until they are under it again). */
  readonly #overCap = new Set<string>();

  /** `maxObjectsPerKind` bounds each watched type (a watch can add past what a list was allowed). */
  constructor(scope: ViewScope, log: () => SourceLog, maxObjectsPerKind = Number.POSITIVE_INFINITY) {
    this.#scope = scope;
    this.#log = log;
    this.#maxObjectsPerKind = maxObjectsPerKind;
  }

  #objects(type: WatchedType): Map<string, Resource> {
    const key = typeKey(type);
    let entry = this.#byType.get(key);
    if (entry === undefined) {
      entry = { type, objects: new Map() };
      this.#byType.set(key, entry);
    }
    return entry.objects;
  }

  #touch(type: WatchedType, key: string): void {
    if (type.kind === 'Pod') this.#dirtyPods.add(key);
    else {
      this.#configDirty = true;
      this.#configUnsent = true;
    }
  }

  /** Accepts one object, or keeps the last good version and reports why not. */
  #accept(type: WatchedType, raw: RawObject): void {
    const objects = this.#objects(type);
    const key = podKeyOf(raw.metadata.namespace, raw.metadata.name);
    const converted = convertObject(type, raw);
    if (converted.resource === undefined) {
      const id = `${typeKey(type)}|${key}`;
      const rv = String(raw.metadata.resourceVersion ?? '');
      if (this.#reported.get(id) !== rv) {
        this.#reported.set(id, rv);
        const kept = objects.has(key) ? 'its last good version keeps serving' : 'it is not served';
        for (const p of converted.problems) {
          if (p.severity === 'error') this.#log().warn({ problem: formatProblem(p), object: `${resourceName(type)} ${key}`, resourceVersion: rv }, `Kubernetes object refused; ${kept}`);
        }
      }
      return;
    }
    this.#reported.delete(`${typeKey(type)}|${key}`);
    if (!objects.has(key) && objects.size >= this.#maxObjectsPerKind) {
      if (!this.#overCap.has(typeKey(type))) {
        this.#overCap.add(typeKey(type));
        this.#log().warn({ resource: resourceName(type), limit: this.#maxObjectsPerKind }, `more than ${this.#maxObjectsPerKind} ${resourceName(type)}: new ones are not served until some go`);
      }
      return;
    }
    if (objects.size < this.#maxObjectsPerKind - 1) this.#overCap.delete(typeKey(type));
    this.#warnings.push(...converted.problems.filter((p) => p.severity === 'warning'));
    if (raw.metadata.resourceVersion !== undefined) revisions.set(converted.resource, String(raw.metadata.resourceVersion));
    objects.set(key, converted.resource);
    this.#touch(type, key);
  }

  upsert(type: WatchedType, raw: RawObject): void {
    this.#accept(type, raw);
  }

  remove(type: WatchedType, raw: RawObject): void {
    const key = podKeyOf(raw.metadata.namespace, raw.metadata.name);
    this.#reported.delete(`${typeKey(type)}|${key}`);
    if (this.#objects(type).delete(key)) this.#touch(type, key);
  }

  /**
   * A complete list of one kind: objects not in it are gone; the others are accepted again. An
   * object unchanged since it was accepted (same resourceVersion) keeps its resource, so a re-list
   * after a 410 changes nothing that did not change.
   */
  replace(type: WatchedType, objects: readonly RawObject[], refused: readonly RefusedObject[]): void {
    const known = this.#objects(type);
    const present = new Set<string>([...objects.map((o) => podKeyOf(o.metadata.namespace, o.metadata.name)), ...refused.map((r) => podKeyOf(r.namespace, r.name))]);
    // The vanished go first, so the cap counts what exists now.
    for (const key of [...known.keys()]) {
      if (present.has(key)) continue;
      known.delete(key);
      this.#touch(type, key);
    }
    for (const o of objects) {
      const had = known.get(podKeyOf(o.metadata.namespace, o.metadata.name));
      if (had !== undefined && sameRevision(had, o)) continue;
      this.#accept(type, o);
    }
    for (const r of refused) {
      const key = podKeyOf(r.namespace, r.name);
      const id = `${typeKey(type)}|${key}`;
      if (this.#reported.get(id) !== r.reason) {
        this.#reported.set(id, r.reason);
        this.#log().warn({ object: `${resourceName(type)} ${key}`, reason: r.reason }, `Kubernetes object refused; ${known.has(key) ? 'its last good version keeps serving' : 'it is not served'}`);
      }
    }
  }

  /** Resources of one type, for tests and the status writer. */
  accepted(type: WatchedType): ReadonlyMap<string, Resource> {
    return this.#objects(type);
  }

  /** The label selector of the pool an endpoint picker serves, as `k=v,k=v` (undefined while the pool is unknown). */
  poolSelector(): string | undefined {
    this.#derive();
    if (this.#scope.kind !== 'pool') return undefined;
    const pool = this.#config.get(`InferencePool/${this.#scope.namespace}/${this.#scope.name}`);
    if (pool === undefined || pool.kind !== 'InferencePool') return undefined;
    const entries = Object.entries(pool.spec.selector).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return entries.length === 0 ? undefined : entries.map(([k, v]) => `${k}=${v}`).join(',');
  }

  /** Everything the scope serves now: the whole state, for a replacing batch. */
  full(): Resource[] {
    this.#derive();
    const out: Resource[] = [...this.#config.values()];
    for (const { type, objects } of this.#byType.values()) {
      if (type.kind !== 'Pod') continue;
      for (const pod of objects.values()) if (pod.kind === 'Pod' && this.#selected(pod)) out.push(pod);
    }
    return out;
  }

  /** Warnings gathered since the last call. */
  takeWarnings(): Problem[] {
    const w = this.#warnings;
    this.#warnings = [];
    return w;
  }

  /** After a replacing batch applied: the gateway holds exactly `resources`. */
  appliedAll(resources: readonly Resource[]): void {
    this.#appliedConfig.clear();
    this.#appliedPods.clear();
    for (const r of resources) {
      if (r.kind === 'Pod') this.#appliedPods.set(podKeyOf(r.metadata.namespace, r.metadata.name), r);
      else this.#appliedConfig.set(resourceKey(r), r);
    }
    // Pods marked dirty meanwhile stay marked: a change that arrived while the batch applied is
    // compared against it at the next flush.
  }

  /** After a replacing batch was refused: everything is compared again at the next flush. */
  invalidate(): void {
    this.#configDirty = true;
    this.#configUnsent = true;
  }

  /**
   * What changed since the gateway's state, as two deltas: the configuration (anything but Pods,
   * compiled as a whole by the gateway) and the Pods (applied incrementally), so a Pod change never
   * waits for, or fails with, a configuration change the gateway refused.
   */
  pending(): { config: Delta; pods: Delta } {
    const configWasDirty = this.#configUnsent;
    this.#configUnsent = false;
    this.#derive();
    const config: Delta = { upserts: [], deletes: [] };
    if (configWasDirty) {
      for (const [key, r] of this.#config) if (this.#appliedConfig.get(key) !== r) config.upserts.push(r);
      for (const [key, r] of this.#appliedConfig) if (!this.#config.has(key)) config.deletes.push(r);
    }
    const pods: Delta = { upserts: [], deletes: [] };
    const podKeys: Iterable<string> = configWasDirty ? this.#allPodKeys() : this.#dirtyPods;
    for (const key of podKeys) {
      const pod = this.#pod(key);
      const want = pod !== undefined && this.#selected(pod) ? pod : undefined;
      const have = this.#appliedPods.get(key);
      if (want !== undefined && want !== have) pods.upserts.push(want);
      else if (want === undefined && have !== undefined) pods.deletes.push(have);
    }
    this.#dirtyPods.clear();
    return { config, pods };
  }

  /** After a delta applied. */
  applied(delta: Delta): void {
    for (const r of delta.deletes) {
      if (r.kind === 'Pod') this.#appliedPods.delete(podKeyOf(r.metadata.namespace, r.metadata.name));
      else this.#appliedConfig.delete(resourceKey(r));
    }
    for (const r of delta.upserts) {
      if (r.kind === 'Pod') this.#appliedPods.set(podKeyOf(r.metadata.namespace, r.metadata.name), r);
      else this.#appliedConfig.set(resourceKey(r), r);
    }
  }

  /** After a Pod delta was refused: its pods are compared again at the next flush. */
  retryPods(delta: Delta): void {
    for (const r of [...delta.upserts, ...delta.deletes]) this.#dirtyPods.add(podKeyOf(r.metadata.namespace, r.metadata.name));
  }

  /** After a configuration delta was refused: the next configuration change compares everything again. */
  retryConfig(): void {
    // Nothing to mark: the applied mirror was not updated, so the next derive diffs against it.
  }

  get hasPending(): boolean {
    return this.#configUnsent || this.#dirtyPods.size > 0;
  }

  #pod(key: string): Pod | undefined {
    for (const { type, objects } of this.#byType.values()) {
      if (type.kind !== 'Pod') continue;
      const p = objects.get(key);
      if (p?.kind === 'Pod') return p;
    }
    return undefined;
  }

  #allPodKeys(): Set<string> {
    const keys = new Set<string>(this.#appliedPods.keys());
    for (const { type, objects } of this.#byType.values()) if (type.kind === 'Pod') for (const k of objects.keys()) keys.add(k);
    return keys;
  }

  #selected(pod: Pod): boolean {
    const sels = this.#selectors.get(pod.metadata.namespace);
    return sels !== undefined && sels.some((s) => selectorMatches(s, pod.metadata.labels));
  }

  /** Recomputes the derived configuration when an object other than a Pod changed. */
  #derive(): void {
    if (!this.#configDirty) return;
    this.#configDirty = false;
    const all = new Map<string, { r: Resource; type: WatchedType }>();
    const types = [...this.#byType.values()].filter((e) => e.type.kind !== 'Pod').sort((a, b) => a.type.preference - b.type.preference);
    for (const { type, objects } of types) {
      for (const r of objects.values()) {
        const key = resourceKey(r);
        const first = all.get(key);
        if (first === undefined) {
          all.set(key, { r, type });
          continue;
        }
        if (!this.#shadowed.has(key)) {
          this.#shadowed.add(key);
          this.#log().warn({ resource: key, serving: apiVersionOf(first.type), ignoring: apiVersionOf(type) }, `${r.kind} ${r.metadata.namespace}/${r.metadata.name} exists in two API groups: the newer one is served`);
        }
      }
    }
    const config = new Map<string, Resource>();
    for (const [key, { r }] of all) if (this.#inScope(r)) config.set(key, r);
    if (this.#scope.kind === 'gateway') this.#filterGateways(config);
    this.#config = config;

    const selectors = new Map<string, Readonly<Record<string, string>>[]>();
    const add = (ns: string, sel: Readonly<Record<string, string>>): void => {
      if (Object.keys(sel).length === 0) return;
      const list = selectors.get(ns) ?? [];
      list.push(sel);
      selectors.set(ns, list);
    };
    if (this.#scope.kind === 'selector') add(this.#scope.namespace, this.#scope.selector);
    for (const r of config.values()) {
      if (r.kind === 'InferencePool') add(r.metadata.namespace, r.spec.selector);
      else if (r.kind === 'Service') add(r.metadata.namespace, r.spec.selector);
    }
    this.#selectors = selectors;
  }

  #inScope(r: Resource): boolean {
    const scope = this.#scope;
    if (scope.kind === 'gateway') return true;
    if (scope.kind === 'selector') return false;
    if (r.metadata.namespace !== scope.namespace) return false;
    switch (r.kind) {
      case 'InferencePool':
        return r.metadata.name === scope.name;
      case 'InferenceModel':
      case 'InferenceObjective':
      case 'InferenceModelRewrite':
      case 'InferenceTrafficPolicy':
        return r.spec.poolRef.name === scope.name;
      default:
        return false;
    }
  }

  /**
   * Only this gateway's Gateways: those of the GatewayClass `--gateway-class` names, when that
   * class's controllerName is ours (another controller's Gateways, Envoy Gateway's say, must not
   * open ports here), and the HTTPRoutes attached to them.
   */
  #filterGateways(config: Map<string, Resource>): void {
    if (this.#scope.kind !== 'gateway') return;
    const className = this.#scope.gatewayClass;
    const cls = config.get(`GatewayClass/default/${className}`) ?? [...config.values()].find((r) => r.kind === 'GatewayClass' && r.metadata.name === className);
    const ours = cls?.kind === 'GatewayClass' && cls.spec.controllerName === CONTROLLER_NAME;
    const note = ours ? '' : cls === undefined ? 'missing' : `controller ${cls.kind === 'GatewayClass' ? cls.spec.controllerName : ''}`;
    if (note !== this.#classNote) {
      this.#classNote = note;
      if (note === 'missing') this.#log().warn({ gatewayClass: className }, `GatewayClass ${className} does not exist: no Gateway is served until it does (its spec.controllerName must be ${CONTROLLER_NAME})`);
      else if (note !== '') this.#log().warn({ gatewayClass: className, controllerName: cls?.kind === 'GatewayClass' ? cls.spec.controllerName : undefined }, `GatewayClass ${className} belongs to another controller: no Gateway is served (its spec.controllerName must be ${CONTROLLER_NAME})`);
    }
    const gateways = new Set<string>();
    for (const [key, r] of config) {
      if (r.kind === 'GatewayClass' && r.metadata.name !== className) config.delete(key);
      if (r.kind !== 'Gateway') continue;
      if (ours && (r as Gateway).spec.gatewayClassName === className) gateways.add(`${r.metadata.namespace}/${r.metadata.name}`);
      else config.delete(key);
    }
    for (const [key, r] of config) {
      if (r.kind !== 'HTTPRoute') continue;
      const attached = (r as HTTPRoute).spec.parentRefs.some((p) => p.kind === 'Gateway' && p.group === 'gateway.networking.k8s.io' && gateways.has(`${p.namespace ?? r.metadata.namespace}/${p.name}`));
      if (!attached) config.delete(key);
    }
  }
}

/** The accepted resource came from this very revision of the object. */
function sameRevision(had: Resource, raw: RawObject): boolean {
  const rv = raw.metadata.resourceVersion;
  return rv !== undefined && revisions.get(had) === rv;
}

/** The revision each accepted resource was read at (kept beside, not in, the resource: the store fingerprints resources). */
const revisions = new WeakMap<Resource, string>();
