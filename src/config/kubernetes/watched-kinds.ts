/**
 * The kinds the Kubernetes source lists and watches, by group/version/plural (the REST path) and
 * kind. A kind served in two groups is watched in both; `preference` orders them where one name
 * exists in both (lower wins).
 */
export interface WatchedType {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
  /** Among types of the same kind, the lower is preferred for one namespace/name. */
  readonly preference: number;
}

function t(group: string, version: string, plural: string, kind: string, preference = 0, namespaced = true): WatchedType {
  return { group, version, plural, kind, namespaced, preference };
}

export const GATEWAY_CLASS = t('gateway.networking.k8s.io', 'v1', 'gatewayclasses', 'GatewayClass', 0, false);
export const GATEWAY = t('gateway.networking.k8s.io', 'v1', 'gateways', 'Gateway');
export const HTTP_ROUTE = t('gateway.networking.k8s.io', 'v1', 'httproutes', 'HTTPRoute');
/**
 * InferencePool: the GA group first (GIE v1.0, `inference.networking.k8s.io/v1`), the alpha group
 * where a name exists only there (GIE's EPP likewise defaults to the v1 group).
 */
export const INFERENCE_POOL_V1 = t('inference.networking.k8s.io', 'v1', 'inferencepools', 'InferencePool', 0);
export const INFERENCE_POOL_V1ALPHA2 = t('inference.networking.x-k8s.io', 'v1alpha2', 'inferencepools', 'InferencePool', 1);
export const INFERENCE_MODEL = t('inference.networking.x-k8s.io', 'v1alpha2', 'inferencemodels', 'InferenceModel');
/** InferenceObjective: llm-d's newer group wins over upstream's where both hold one name (llm-d router v0.9 moved it, same schema). */
export const INFERENCE_OBJECTIVE_LLMD = t('llm-d.ai', 'v1alpha2', 'inferenceobjectives', 'InferenceObjective', 0);
export const INFERENCE_OBJECTIVE = t('inference.networking.x-k8s.io', 'v1alpha2', 'inferenceobjectives', 'InferenceObjective', 1);
/** InferenceModelRewrite: llm-d's newer group wins over upstream's where both hold one name (llm-d router v0.9 moved it, same schema). */
export const MODEL_REWRITE_LLMD = t('llm-d.ai', 'v1alpha2', 'inferencemodelrewrites', 'InferenceModelRewrite', 0);
export const MODEL_REWRITE_XK8S = t('inference.networking.x-k8s.io', 'v1alpha2', 'inferencemodelrewrites', 'InferenceModelRewrite', 1);
export const TRAFFIC_POLICY = t('inferenceextension.alibabacloud.com', 'v1alpha1', 'inferencetrafficpolicies', 'InferenceTrafficPolicy');
export const CLIENT_TRAFFIC_POLICY = t('gateway.envoyproxy.io', 'v1alpha1', 'clienttrafficpolicies', 'ClientTrafficPolicy');
export const BACKEND_TRAFFIC_POLICY = t('gateway.envoyproxy.io', 'v1alpha1', 'backendtrafficpolicies', 'BackendTrafficPolicy');
export const SERVICE = t('', 'v1', 'services', 'Service');
export const POD = t('', 'v1', 'pods', 'Pod');

/** What a pool's endpoint picker reads: its pool, the models, objectives and rewrites that name it, its traffic policy, and Pods. */
export const POOL_TYPES: readonly WatchedType[] = [INFERENCE_POOL_V1, INFERENCE_POOL_V1ALPHA2, INFERENCE_MODEL, INFERENCE_OBJECTIVE_LLMD, INFERENCE_OBJECTIVE, MODEL_REWRITE_LLMD, MODEL_REWRITE_XK8S, TRAFFIC_POLICY];

/** What the standalone gateway reads (Pods apart: their watch is set up by the source). */
export const GATEWAY_TYPES: readonly WatchedType[] = [GATEWAY_CLASS, GATEWAY, HTTP_ROUTE, ...POOL_TYPES, CLIENT_TRAFFIC_POLICY, BACKEND_TRAFFIC_POLICY, SERVICE];

export function apiVersionOf(type: WatchedType): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`;
}

/** `pods` or `inferencepools.inference.networking.k8s.io`, as kubectl names a resource. */
export function resourceName(type: WatchedType): string {
  return type.group === '' ? type.plural : `${type.plural}.${type.group}`;
}

/** The collection path, in one namespace or (undefined) all. */
export function collectionPath(type: WatchedType, namespace: string | undefined): string {
  const base = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  return type.namespaced && namespace !== undefined ? `${base}/namespaces/${encodeURIComponent(namespace)}/${type.plural}` : `${base}/${type.plural}`;
}
