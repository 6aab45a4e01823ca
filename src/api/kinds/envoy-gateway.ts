import { z } from 'zod';
import type { BackendTrafficPolicy, ClientTrafficPolicy, PolicyTargetRef } from '../types.js';
import { DurationMs, Metadata, PolicyTargetRefSchema, QuantityBytes } from './common.js';
import type { KindBody } from './kind.js';

/*
 * gateway.envoyproxy.io/v1alpha1 policies, as seed 003 uses them: the request body buffer limit
 * (ClientTrafficPolicy) and the request timeout (BackendTrafficPolicy). Envoy Gateway defines many
 * more fields; any other one is reported as unknown (a warning) so nobody expects it to act.
 */

type RawTarget = z.output<typeof PolicyTargetRefSchema>;

/** `targetRefs` and the older single `targetRef` may both appear; at least one must. */
function targetsOf(spec: { targetRef?: RawTarget | undefined; targetRefs?: RawTarget[] | undefined }, ctx: z.RefinementCtx): PolicyTargetRef[] {
  const all = [...(spec.targetRefs ?? []), ...(spec.targetRef === undefined ? [] : [spec.targetRef])];
  if (all.length === 0) ctx.addIssue({ code: 'custom', path: ['spec', 'targetRefs'], message: 'required: the Gateway (or HTTPRoute) the policy applies to' });
  return all.map((t) => ({ group: t.group, kind: t.kind, name: t.name, ...(t.sectionName === undefined ? {} : { sectionName: t.sectionName }) }));
}

const Targets = {
  targetRef: PolicyTargetRefSchema.optional(),
  targetRefs: z.array(PolicyTargetRefSchema).max(16).optional(),
};

export const ClientTrafficPolicySchema = z
  .object({
    metadata: Metadata,
    spec: z.object({
      ...Targets,
      connection: z.object({ bufferLimit: QuantityBytes.optional() }).optional(),
    }),
  })
  .transform((r, ctx): KindBody<ClientTrafficPolicy> => {
    const limit = r.spec.connection?.bufferLimit;
    return { metadata: r.metadata, spec: { targetRefs: targetsOf(r.spec, ctx), ...(limit === undefined ? {} : { bufferLimitBytes: limit }) } };
  });

export const BackendTrafficPolicySchema = z
  .object({
    metadata: Metadata,
    spec: z.object({
      ...Targets,
      timeout: z.object({ http: z.object({ requestTimeout: DurationMs.optional() }).optional() }).optional(),
    }),
  })
  .transform((r, ctx): KindBody<BackendTrafficPolicy> => {
    const timeout = r.spec.timeout?.http?.requestTimeout;
    return { metadata: r.metadata, spec: { targetRefs: targetsOf(r.spec, ctx), ...(timeout === undefined ? {} : { requestTimeoutMs: timeout }) } };
  });
