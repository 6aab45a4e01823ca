import type { ResourceKind } from '../types.js';
import { PodSchema, ServiceSchema } from './core.js';
import { BackendTrafficPolicySchema, ClientTrafficPolicySchema } from './envoy-gateway.js';
import { GatewayClassSchema, GatewaySchema, HTTPRouteSchema } from './gateway-api.js';
import {
  InferenceModelRewriteSchema,
  InferenceModelSchema,
  InferenceObjectiveSchema,
  InferencePoolV1Alpha2Schema,
  InferencePoolV1Schema,
  InferenceTrafficPolicySchema,
} from './inference.js';
import type { KindSpec } from './kind.js';

const GATEWAY_API = ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'];

function spec(kind: ResourceKind, versions: KindSpec['versions'], strictFields = true): KindSpec {
  return { kind, versions, strictFields };
}

function forVersions<T>(versions: readonly string[], schema: T): Record<string, T> {
  return Object.fromEntries(versions.map((v) => [v, schema]));
}

/**
 * Every kind the gateway reads, by apiVersion. A document of another kind is listed as ignored;
 * a known kind in an unknown apiVersion is an error (its fields may mean something else).
 * Gateway API v1beta1 has the same shape as v1 for every field read here.
 */
export const KINDS: ReadonlyMap<string, KindSpec> = new Map<string, KindSpec>(
  [
    spec('GatewayClass', forVersions(GATEWAY_API, GatewayClassSchema)),
    spec('Gateway', forVersions(GATEWAY_API, GatewaySchema)),
    spec('HTTPRoute', forVersions(GATEWAY_API, HTTPRouteSchema)),
    spec('InferencePool', {
      'inference.networking.x-k8s.io/v1alpha2': InferencePoolV1Alpha2Schema,
      'inference.networking.k8s.io/v1': InferencePoolV1Schema,
    }),
    spec('InferenceModel', { 'inference.networking.x-k8s.io/v1alpha2': InferenceModelSchema }),
    // InferenceObjective and InferenceModelRewrite: upstream's group and llm-d's (llm-d router
    // v0.9 moved both, same schemas); one name per namespace across both, as for any kind here.
    spec('InferenceObjective', {
      'inference.networking.x-k8s.io/v1alpha2': InferenceObjectiveSchema,
      'llm-d.ai/v1alpha2': InferenceObjectiveSchema,
    }),
    spec('InferenceModelRewrite', {
      'inference.networking.x-k8s.io/v1alpha2': InferenceModelRewriteSchema,
      'llm-d.ai/v1alpha2': InferenceModelRewriteSchema,
    }),
    spec('InferenceTrafficPolicy', { 'inferenceextension.alibabacloud.com/v1alpha1': InferenceTrafficPolicySchema }),
    spec('ClientTrafficPolicy', { 'gateway.envoyproxy.io/v1alpha1': ClientTrafficPolicySchema }),
    spec('BackendTrafficPolicy', { 'gateway.envoyproxy.io/v1alpha1': BackendTrafficPolicySchema }),
    spec('Service', { v1: ServiceSchema }, false),
    spec('Pod', { v1: PodSchema }, false),
  ].map((s) => [s.kind, s]),
);
