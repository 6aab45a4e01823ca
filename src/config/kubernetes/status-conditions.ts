import type { Gateway, HTTPRoute, InferencePool, ParentRef, Resource } from '../../api/types.js';
import { GATEWAY_GROUP, POOL_GROUPS } from '../compile.js';
import { hostnamesIntersect } from '../route-table.js';

/*
 * What the gateway reports in Kubernetes status, computed from the resources it serves (pure: no
 * I/O, no clock). Conditions, reasons and field shapes follow the public APIs:
 *   - InferencePool: GIE api/v1/inferencepool_types.go (`status.parents[]` with `parentRef`,
 *     `controllerName`, `conditions`; Accepted: Accepted | NotSupportedByParent |
 *     HTTPRouteNotAccepted | EndpointPickerRefMissing | Pending; ResolvedRefs: ResolvedRefs |
 *     InvalidExtensionRef) and api/v1alpha2 (`status.parent[]`, json key singular, no
 *     controllerName; the `kind: Status, name: default` parent means "no Gateway");
 *   - HTTPRoute: Gateway API apis/v1 RouteParentStatus (`parentRef`, `controllerName`,
 *     `conditions`; Accepted: Accepted | NoMatchingParent | NotAllowedByListeners; ResolvedRefs:
 *     ResolvedRefs | BackendNotFound | InvalidKind);
 *   - the GIE conformance suite (InferencePoolAccepted, InferencePoolResolvedRefsCondition,
 *     InferencePoolInvalidEPPService, InferencePoolMissingEPPRef, HTTPRouteInvalidInferencePoolRef).
 * lastTransitionTime and the merge with what other controllers wrote are status-merge.ts's.
 */

/** The controller name of `infergate serve`: GatewayClasses naming it are ours. */
export const GATEWAY_CONTROLLER_NAME = 'infergate.dev/gateway-controller';
/**
 * The controller name `infergate epp` writes its pool's entry under: distinct from the gateway's,
 * so an infergate gateway and an infergate endpoint picker never replace each other's entries.
 */
export const EPP_CONTROLLER_NAME = 'infergate.dev/endpoint-picker';
/** The GatewayClass `serve --kubernetes` owns by default (`--gateway-class`). */
export const DEFAULT_GATEWAY_CLASS = 'infergate';

/** Gateway API and GIE bound `status.parents` to 32 entries and each entry's conditions to 8. */
export const MAX_STATUS_PARENTS = 32;

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** A metav1.Condition as we compute it (observedGeneration and lastTransitionTime are stamped at merge). */
export interface StatusCondition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  /** At most 32,768 characters (metav1.Condition); ours are short sentences. */
  readonly message: string;
}

/** A status parentRef: the Gateway API ParentReference (GIE's has no sectionName/port, which stay unset). */
export type StatusParentRef = ParentRef;

/** One of our entries in an object's status parents. */
export interface DesiredParent {
  readonly parentRef: StatusParentRef;
  readonly conditions: readonly StatusCondition[];
}

/** The object a status belongs to, and how to address its status subresource. */
export interface StatusTarget {
  readonly kind: 'InferencePool' | 'HTTPRoute';
  /** As the resource was served (`inference.networking.k8s.io/v1`, `gateway.networking.k8s.io/v1`, …). */
  readonly apiVersion: string;
  readonly namespace: string;
  readonly name: string;
  /** The generation the conditions were computed from; undefined when the resource did not carry one. */
  readonly generation?: number;
}

/** What one object's status should say on our behalf: every entry we own, in order (may be empty: clear ours). */
export interface DesiredStatus {
  readonly target: StatusTarget;
  readonly controllerName: string;
  readonly parents: readonly DesiredParent[];
  /**
   * For an API version without `controllerName` on entries (InferencePool v1alpha2): the parentRefs
   * we may replace or remove (`namespace/name` keys of status-merge.ts `parentKey`), since
   * ownership cannot be read from the entry.
   */
  readonly ownedParentKeys: ReadonlySet<string>;
}

/** Whose status to report. */
export type StatusScope =
  /** `serve`: routes and pools reached through Gateways of `gatewayClass`. */
  | { readonly mode: 'gateway'; readonly gatewayClass: string }
  /** `epp`: one pool, and no route status (that is the Gateway controller's, as upstream's EPP leaves it). */
  | { readonly mode: 'epp'; readonly poolNamespace: string; readonly poolName: string };

/** What the conditions are judged from. */
export interface StatusInput {
  /** Every resource the gateway serves (Pods need not be included). */
  readonly resources: readonly Resource[];
  /**
   * Whether a Service exists, for references the served resources do not settle (an
   * endpointPickerRef's Service when Services are not watched): true, false, or undefined when
   * unknown (then the reference is not judged missing). Default: look among `resources`, and
   * undefined when they hold no Service at all.
   */
  readonly serviceExists?: (namespace: string, name: string) => boolean | undefined;
}

/** The parentRef upstream's v1alpha2 CRD uses for "not associated with any Gateway", and our EPP's entry. */
export const DEFAULT_PARENT_REF: StatusParentRef = { group: GATEWAY_GROUP, kind: 'Status', name: 'default' };

/** Every status the scope writes: one per served InferencePool (and, for a gateway, per HTTPRoute). */
export function desiredStatuses(input: StatusInput, scope: StatusScope): DesiredStatus[] {
  const idx = new ResourceIndex(input);
  if (scope.mode === 'epp') {
    const pool = idx.pools.get(`${scope.poolNamespace}/${scope.poolName}`);
    if (pool === undefined) return [];
    const parent: DesiredParent = {
      parentRef: DEFAULT_PARENT_REF,
      conditions: [
        { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'the endpoint picker serves this pool' },
        resolvedRefsOfPool(pool, idx),
      ],
    };
    return [poolStatus(pool, EPP_CONTROLLER_NAME, [parent], new Set([parentKey(DEFAULT_PARENT_REF, pool.metadata.namespace)]))];
  }

  const owned = ownedGateways(idx, scope.gatewayClass);
  const out: DesiredStatus[] = [];
  /** gateway key → pool key → the routes through which it reaches the pool, with their acceptance. */
  const reach = new Map<string, Map<string, RouteAttachment[]>>();

  for (const route of idx.routes) {
    const parents: DesiredParent[] = [];
    const seen = new Set<string>();
    const resolved = resolvedRefsOfRoute(route, idx);
    route.spec.parentRefs.forEach((ref) => {
      const gateway = gatewayOf(ref, route, owned);
      if (gateway === undefined) return;
      const statusRef = routeParentRef(ref);
      const key = parentKey(statusRef, route.metadata.namespace);
      if (seen.has(key)) return;
      seen.add(key);
      const accepted = routeAccepted(ref, gateway, route.spec.hostnames);
      parents.push({ parentRef: statusRef, conditions: [accepted, resolved] });
      const gwKey = `${gateway.metadata.namespace}/${gateway.metadata.name}`;
      for (const poolKey of poolsOfRoute(route)) {
        const byPool = reach.get(gwKey) ?? new Map<string, RouteAttachment[]>();
        const list = byPool.get(poolKey) ?? [];
        list.push({ route, accepted });
        byPool.set(poolKey, list);
        reach.set(gwKey, byPool);
      }
    });
    out.push({
      target: target('HTTPRoute', route),
      controllerName: GATEWAY_CONTROLLER_NAME,
      parents: parents.slice(0, MAX_STATUS_PARENTS),
      ownedParentKeys: new Set(),
    });
  }

  for (const pool of idx.pools.values()) {
    const poolKey = `${pool.metadata.namespace}/${pool.metadata.name}`;
    const parents: DesiredParent[] = [];
    const ownedKeys = new Set<string>();
    for (const [gwKey, gateway] of [...owned].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const ref: StatusParentRef = { group: GATEWAY_GROUP, kind: 'Gateway', name: gateway.metadata.name, namespace: gateway.metadata.namespace };
      ownedKeys.add(parentKey(ref, pool.metadata.namespace));
      const via = reach.get(gwKey)?.get(poolKey);
      if (via === undefined || via.length === 0) continue;
      parents.push({ parentRef: ref, conditions: [poolAccepted(via, gwKey), resolvedRefsOfPool(pool, idx)] });
    }
    // v1alpha2's "no Gateway" entry is removed once a Gateway's entry is written (api/v1alpha2).
    if (parents.length > 0) ownedKeys.add(parentKey(DEFAULT_PARENT_REF, pool.metadata.namespace));
    out.push(poolStatus(pool, GATEWAY_CONTROLLER_NAME, parents.slice(0, MAX_STATUS_PARENTS), ownedKeys));
  }
  return out;
}

/** A parentRef's identity within an object's status: defaults applied (group, kind, the object's namespace). */
export function parentKey(ref: Partial<StatusParentRef> & { readonly name?: unknown }, objectNamespace: string): string {
  const group = typeof ref.group === 'string' ? ref.group : GATEWAY_GROUP;
  const kind = typeof ref.kind === 'string' ? ref.kind : 'Gateway';
  const namespace = typeof ref.namespace === 'string' ? ref.namespace : objectNamespace;
  const section = typeof ref.sectionName === 'string' ? ref.sectionName : '';
  const port = typeof ref.port === 'number' ? String(ref.port) : '';
  return `${group}/${kind}/${namespace}/${String(ref.name)}#${section}:${port}`;
}

// ---------------------------------------------------------------- internals

interface RouteAttachment {
  readonly route: HTTPRoute;
  readonly accepted: StatusCondition;
}

class ResourceIndex {
  readonly pools = new Map<string, InferencePool>();
  readonly gateways = new Map<string, Gateway>();
  readonly routes: HTTPRoute[] = [];
  readonly classes = new Map<string, string>();
  readonly #services = new Set<string>();
  readonly #serviceExists: ((namespace: string, name: string) => boolean | undefined) | undefined;
  #anyService = false;

  constructor(input: StatusInput) {
    for (const r of input.resources) {
      const key = `${r.metadata.namespace}/${r.metadata.name}`;
      if (r.kind === 'InferencePool') this.pools.set(key, r);
      else if (r.kind === 'Gateway') this.gateways.set(key, r);
      else if (r.kind === 'HTTPRoute') this.routes.push(r);
      else if (r.kind === 'GatewayClass') this.classes.set(r.metadata.name, r.spec.controllerName);
      else if (r.kind === 'Service') {
        this.#services.add(key);
        this.#anyService = true;
      }
    }
    this.#serviceExists = input.serviceExists;
  }

  serviceExists(namespace: string, name: string): boolean | undefined {
    if (this.#services.has(`${namespace}/${name}`)) return true;
    if (this.#serviceExists !== undefined) return this.#serviceExists(namespace, name);
    return this.#anyService ? false : undefined;
  }
}

/**
 * Gateways of `gatewayClass`, when a GatewayClass of that name names our controller (Gateway API:
 * a Gateway belongs to the implementation its class names). Without such a class no Gateway is
 * ours, as the Kubernetes source serves none then either.
 */
function ownedGateways(idx: ResourceIndex, gatewayClass: string): Map<string, Gateway> {
  const out = new Map<string, Gateway>();
  if (idx.classes.get(gatewayClass) !== GATEWAY_CONTROLLER_NAME) return out;
  for (const [key, g] of idx.gateways) if (g.spec.gatewayClassName === gatewayClass) out.set(key, g);
  return out;
}

function gatewayOf(ref: ParentRef, route: HTTPRoute, owned: ReadonlyMap<string, Gateway>): Gateway | undefined {
  if (ref.group !== GATEWAY_GROUP || ref.kind !== 'Gateway') return undefined;
  return owned.get(`${ref.namespace ?? route.metadata.namespace}/${ref.name}`);
}

/** The route's parentRef as status echoes it (Gateway API: "the same value as the parentRef in spec"). */
function routeParentRef(ref: ParentRef): StatusParentRef {
  return {
    group: ref.group,
    kind: ref.kind,
    name: ref.name,
    ...(ref.namespace === undefined ? {} : { namespace: ref.namespace }),
    ...(ref.sectionName === undefined ? {} : { sectionName: ref.sectionName }),
    ...(ref.port === undefined ? {} : { port: ref.port }),
  };
}

/** Accepted by the Gateway when some listener the parentRef selects is one the gateway serves (HTTP), as compile.ts attaches routes. */
function routeAccepted(ref: ParentRef, gateway: Gateway, hostnames: readonly string[]): StatusCondition {
  const gw = `Gateway ${gateway.metadata.namespace}/${gateway.metadata.name}`;
  const selected = gateway.spec.listeners.filter((l) => (ref.sectionName === undefined || l.name === ref.sectionName) && (ref.port === undefined || l.port === ref.port));
  if (selected.length === 0) {
    const what = ref.sectionName !== undefined ? `no listener "${ref.sectionName}"` : ref.port !== undefined ? `no listener on port ${ref.port}` : 'no listener';
    return { type: 'Accepted', status: 'False', reason: 'NoMatchingParent', message: `${gw} has ${what}` };
  }
  const http = selected.filter((l) => l.protocol === 'HTTP');
  if (http.length === 0) {
    const protocols = [...new Set(selected.map((l) => l.protocol))].join(', ');
    return { type: 'Accepted', status: 'False', reason: 'NotAllowedByListeners', message: `${gw}: listener protocol ${protocols} is not served (only HTTP)` };
  }
  const hosts = http.filter((l) => hostnamesIntersect(l.hostname, hostnames));
  if (hosts.length === 0) {
    return { type: 'Accepted', status: 'False', reason: 'NoMatchingListenerHostname', message: `${gw}: no listener hostname matches the route's hostnames (${hostnames.join(', ')})` };
  }
  return { type: 'Accepted', status: 'True', reason: 'Accepted', message: `attached to ${gw} (${hosts.map((l) => l.name).join(', ')})` };
}

/** ResolvedRefs of a route: every backendRef names a kind we serve and an object that exists. */
function resolvedRefsOfRoute(route: HTTPRoute, idx: ResourceIndex): StatusCondition {
  for (const [ri, rule] of route.spec.rules.entries()) {
    for (const [bi, ref] of rule.backendRefs.entries()) {
      const at = `spec.rules[${ri}].backendRefs[${bi}]`;
      const ns = ref.namespace ?? route.metadata.namespace;
      if (ref.kind === 'InferencePool' && POOL_GROUPS.has(ref.group)) {
        if (!idx.pools.has(`${ns}/${ref.name}`)) return { type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound', message: `${at}: InferencePool ${ns}/${ref.name} not found` };
      } else if (ref.kind === 'Service' && ref.group === '') {
        if (idx.serviceExists(ns, ref.name) === false) return { type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound', message: `${at}: Service ${ns}/${ref.name} not found` };
      } else {
        return { type: 'ResolvedRefs', status: 'False', reason: 'InvalidKind', message: `${at}: backend kind ${ref.kind} in group "${ref.group}" is not supported (InferencePool or Service)` };
      }
    }
  }
  return { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'all backend references resolved' };
}

/** `namespace/name` of each InferencePool the route's rules name. */
function poolsOfRoute(route: HTTPRoute): Set<string> {
  const out = new Set<string>();
  for (const rule of route.spec.rules) {
    for (const ref of rule.backendRefs) if (ref.kind === 'InferencePool' && POOL_GROUPS.has(ref.group)) out.add(`${ref.namespace ?? route.metadata.namespace}/${ref.name}`);
  }
  return out;
}

/** A pool is Accepted by a Gateway when some route that reaches it through that Gateway is accepted there. */
function poolAccepted(via: readonly RouteAttachment[], gwKey: string): StatusCondition {
  const accepted = via.find((a) => a.accepted.status === 'True');
  if (accepted !== undefined) {
    return { type: 'Accepted', status: 'True', reason: 'Accepted', message: `routed by HTTPRoute ${accepted.route.metadata.namespace}/${accepted.route.metadata.name} through Gateway ${gwKey}` };
  }
  const first = via[0] as RouteAttachment;
  return {
    type: 'Accepted',
    status: 'False',
    reason: 'HTTPRouteNotAccepted',
    message: `HTTPRoute ${first.route.metadata.namespace}/${first.route.metadata.name} is not accepted by Gateway ${gwKey}: ${first.accepted.message}`,
  };
}

/**
 * ResolvedRefs of a pool: its endpointPickerRef (v1alpha2 `extensionRef`) names a Service that
 * exists. Without one the pool is still served (infergate picks endpoints itself; GIE's
 * InferencePoolMissingEPPRef allows Accepted=True), so there is nothing to resolve.
 */
function resolvedRefsOfPool(pool: InferencePool, idx: ResourceIndex): StatusCondition {
  const ref = pool.spec.endpointPickerRef;
  const field = pool.apiVersion.endsWith('/v1alpha2') ? 'spec.extensionRef' : 'spec.endpointPickerRef';
  if (ref === undefined) return { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: `no ${field}: endpoints are picked by infergate` };
  if (ref.kind !== 'Service' || ref.group !== '') {
    return { type: 'ResolvedRefs', status: 'False', reason: 'InvalidExtensionRef', message: `${field}: kind ${ref.kind} in group "${ref.group}" is not supported (only Service)` };
  }
  if (idx.serviceExists(pool.metadata.namespace, ref.name) === false) {
    return { type: 'ResolvedRefs', status: 'False', reason: 'InvalidExtensionRef', message: `${field}: Service ${pool.metadata.namespace}/${ref.name} not found` };
  }
  return { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: `${field} Service ${ref.name} resolved` };
}

function target(kind: 'InferencePool' | 'HTTPRoute', r: InferencePool | HTTPRoute): StatusTarget {
  return {
    kind,
    apiVersion: r.apiVersion,
    namespace: r.metadata.namespace,
    name: r.metadata.name,
    ...(r.metadata.generation === undefined ? {} : { generation: r.metadata.generation }),
  };
}

function poolStatus(pool: InferencePool, controllerName: string, parents: readonly DesiredParent[], ownedParentKeys: ReadonlySet<string>): DesiredStatus {
  return { target: target('InferencePool', pool), controllerName, parents, ownedParentKeys };
}
