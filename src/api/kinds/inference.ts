import { parseDocument } from 'yaml';
import { z } from 'zod';
import { errorMap, formatPath } from '../issues.js';
import { deepDocuments, documentRefusals, MAX_ALIAS_COUNT, shownPath } from '../yaml-limits.js';
import {
  ROUTING_CONFIG_ANNOTATION,
  ROUTING_STRATEGY_ANNOTATION,
  RUNTIME_ANNOTATION,
  type EndpointPickerRef,
  type InferenceModel,
  type InferenceModelRewrite,
  type InferenceObjective,
  type InferencePool,
  type InferenceTrafficPolicy,
  type ModelServerRuntime,
  type ObjectMeta,
  type RoutingConfig,
  type RoutingStrategy,
} from '../types.js';
import { DnsLabel, DurationMs, Group, Kind, LabelKey, LabelMap, Metadata, ObjectName, PortNumber } from './common.js';
import type { KindBody } from './kind.js';

/*
 * The Inference Extension kinds (Gateway API Inference Extension api/v1alpha2, api/v1 and apix/v1alpha2 types; Alibaba Cloud ACK's inference extension docs): InferencePool in both API versions,
 * normalised to one shape; InferenceModel with the all-or-none weight rule; InferenceObjective;
 * InferenceModelRewrite (one schema for both of its groups); and ACK's InferenceTrafficPolicy.
 */

export const RUNTIMES = ['vllm', 'sglang', 'trt-llm'] as const satisfies readonly ModelServerRuntime[];
export const ROUTING_STRATEGIES = ['DEFAULT', 'PREFIX_CACHE'] as const satisfies readonly RoutingStrategy[];

const FailureModeSchema = z.enum(['FailOpen', 'FailClose']).default('FailClose');

const Weight = z.number().min(0).max(100);

/** `prefixCache` of an InferenceTrafficPolicy and the mode fields of the routing annotation's `prefix` (types.ts PrefixCacheModeSettings). */
const ZmqEndpoint = z
  .string()
  .max(256)
  .regex(/^(tcp:\/\/[^\s/]+:(\d{1,5}|\{port\})|ipc:\/\/\S+)$/, { message: 'must be tcp://HOST:PORT (HOST may be {ip}) or ipc://PATH' });
const PrefixCacheModeFields = {
  mode: z.enum(['estimate', 'precise']).optional(),
  blockSize: z.number().int().min(1).max(1024).optional(),
  kvEvents: z
    .strictObject({
      endpoint: ZmqEndpoint.optional(),
      replayEndpoint: z.union([ZmqEndpoint, z.literal('')]).optional(),
      topic: z.string().max(256).optional(),
    })
    .optional(),
  tokenizers: z
    .array(z.strictObject({ model: z.string().min(1).max(256), path: z.string().min(1).max(4096) }))
    .max(64)
    .superRefine((list, ctx) => {
      const seen = new Set<string>();
      list.forEach((t, i) => {
        if (seen.has(t.model)) ctx.addIssue({ code: 'custom', path: [i, 'model'], message: `names model "${t.model.slice(0, 64)}" a second time (each served base model has one tokenizer)`, input: t.model });
        seen.add(t.model);
      });
    })
    .optional(),
};

/** The `infergate.dev/routing` annotation's YAML, with its own field paths in messages. */
const RoutingConfigSchema = z
  .strictObject({
    policy: z.enum(['random', 'round-robin']).optional(),
    streamUsage: z.enum(['inject', 'off']).optional(),
    responseModelName: z.enum(['served', 'requested']).optional(),
    pd: z.strictObject({ uncachedThresholdTokens: z.number().int().min(0).optional(), bootstrapTimeout: DurationMs.optional() }).optional(),
    scorers: z.strictObject({ queue: Weight.optional(), kvCache: Weight.optional(), inflight: Weight.optional(), prefill: Weight.optional(), lora: Weight.optional(), prefix: Weight.optional() }).optional(),
    prefix: z
      .strictObject({
        minBlocksForFullScore: z.number().int().min(1).optional(),
        hotspotQueueDelta: z.number().min(0).optional(),
        hotspotKvDelta: z.number().min(0).max(1).optional(),
        homeBonus: z.number().min(0).max(1).optional(),
        ...PrefixCacheModeFields,
      })
      .optional(),
    saturation: z.strictObject({ queueDepth: z.number().min(0).optional(), kvCacheUtilization: z.number().min(0).max(1).optional() }).optional(),
    queue: z
      .strictObject({
        maxRequests: z.number().int().min(0).max(1_000_000).optional(),
        ttl: DurationMs.optional(),
        sheddable: z.enum(['reject', 'queue']).optional(),
      })
      .optional(),
  })
  .transform((c): RoutingConfig => {
    const { queue, pd, ...rest } = c;
    const out: Record<string, unknown> = { ...rest };
    if (queue !== undefined) {
      const { ttl, ...q } = queue;
      out['queue'] = { ...q, ...(ttl === undefined ? {} : { ttlMs: ttl }) };
    }
    if (pd !== undefined) {
      const { bootstrapTimeout, ...p } = pd;
      out['pd'] = { ...p, ...(bootstrapTimeout === undefined ? {} : { bootstrapTimeoutMs: bootstrapTimeout }) };
    }
    return out as RoutingConfig;
  });

function routingConfig(raw: string, ctx: z.RefinementCtx): RoutingConfig | undefined {
  const path = ['metadata', 'annotations', ROUTING_CONFIG_ANNOTATION];
  let value: unknown;
  // The annotation is YAML within YAML: held to the file's own YAML limits (yaml-limits.ts), its
  // nesting measured before the parser sees it.
  const deep = deepDocuments(raw)[0];
  if (deep !== undefined) {
    ctx.addIssue({ code: 'custom', path, message: `${shownPath(deep.segments, formatPath)}: ${deep.message}`, input: raw });
    return undefined;
  }
  try {
    const doc = parseDocument(raw);
    const error = doc.errors[0];
    if (error !== undefined) throw error;
    const refusal = documentRefusals(doc)[0];
    if (refusal !== undefined) {
      ctx.addIssue({ code: 'custom', path, message: `${shownPath(refusal.segments, formatPath)}: ${refusal.message}`, input: raw });
      return undefined;
    }
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    ctx.addIssue({ code: 'custom', path, message: `is not valid YAML: ${(err as Error).message.split('\n')[0] ?? ''}`, input: raw });
    return undefined;
  }
  const parsed = RoutingConfigSchema.safeParse(value ?? {}, { error: errorMap });
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) {
    const message = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message;
    ctx.addIssue({ code: 'custom', path, message: `${formatPath(issue.path)}: ${message}`, input: raw });
  }
  return undefined;
}

/**
 * The pool annotations, validated where they are written: a typo in `sglang` must not quietly
 * fall back to the vLLM metric names.
 */
function poolAnnotations(meta: ObjectMeta, ctx: z.RefinementCtx): { runtime: ModelServerRuntime; routingStrategy: RoutingStrategy; routing?: RoutingConfig } {
  const rawRuntime = meta.annotations[RUNTIME_ANNOTATION];
  const rawStrategy = meta.annotations[ROUTING_STRATEGY_ANNOTATION];
  let runtime: ModelServerRuntime = 'vllm';
  let routingStrategy: RoutingStrategy = 'DEFAULT';
  if (rawRuntime !== undefined) {
    const v = rawRuntime.trim();
    if ((RUNTIMES as readonly string[]).includes(v)) runtime = v as ModelServerRuntime;
    else ctx.addIssue({ code: 'custom', path: ['metadata', 'annotations', RUNTIME_ANNOTATION], message: `must be one of ${RUNTIMES.join(', ')} (got "${rawRuntime}"); absent means vllm`, input: rawRuntime });
  }
  if (rawStrategy !== undefined) {
    const v = rawStrategy.trim();
    if ((ROUTING_STRATEGIES as readonly string[]).includes(v)) routingStrategy = v as RoutingStrategy;
    else ctx.addIssue({ code: 'custom', path: ['metadata', 'annotations', ROUTING_STRATEGY_ANNOTATION], message: `must be one of ${ROUTING_STRATEGIES.join(', ')} (got "${rawStrategy}")`, input: rawStrategy });
  }
  const rawRouting = meta.annotations[ROUTING_CONFIG_ANNOTATION];
  const routing = rawRouting === undefined ? undefined : routingConfig(rawRouting, ctx);
  return { runtime, routingStrategy, ...(routing === undefined ? {} : { routing }) };
}

const ExtensionRefSchema = z.object({
  group: Group.default(''),
  kind: Kind.default('Service'),
  name: ObjectName,
  portNumber: PortNumber.optional(),
  failureMode: FailureModeSchema,
});

/** `inference.networking.x-k8s.io/v1alpha2`: `selector` map, `targetPortNumber`, `extensionRef`. */
export const InferencePoolV1Alpha2Schema = z
  .object({
    metadata: Metadata,
    spec: z.object({
      selector: LabelMap.refine((m) => Object.keys(m).length > 0, { message: 'must have at least one label (an empty selector would match no pod)' }),
      targetPortNumber: PortNumber,
      // Required by the CRD, but ACK's PD example omits it and the standalone gateway needs no
      // external picker, so it is optional here.
      extensionRef: ExtensionRefSchema.optional(),
    }),
  })
  .transform((r, ctx): KindBody<InferencePool> => {
    const ref = r.spec.extensionRef;
    const endpointPickerRef: EndpointPickerRef | undefined =
      ref === undefined ? undefined : { group: ref.group, kind: ref.kind, name: ref.name, failureMode: ref.failureMode, port: ref.portNumber ?? 9002 };
    return {
      metadata: r.metadata,
      spec: { selector: r.spec.selector, targetPorts: [r.spec.targetPortNumber], appProtocol: 'http', ...(endpointPickerRef === undefined ? {} : { endpointPickerRef }) },
      ...poolAnnotations(r.metadata, ctx),
    };
  });

const EndpointPickerRefSchema = z
  .object({
    group: Group.default(''),
    kind: Kind.default('Service'),
    name: ObjectName,
    port: z.object({ number: PortNumber }).optional(),
    failureMode: FailureModeSchema,
  })
  .superRefine((ref, ctx) => {
    if (ref.kind === 'Service' && ref.port === undefined) {
      ctx.addIssue({ code: 'custom', path: ['port'], message: "port is required when kind is 'Service' or unspecified (defaults to 'Service')" });
    }
  });

/** `inference.networking.k8s.io/v1`: `selector.matchLabels`, `targetPorts[]`, `endpointPickerRef`. */
export const InferencePoolV1Schema = z
  .object({
    metadata: Metadata,
    spec: z.object({
      selector: z.object({
        matchLabels: z.record(LabelKey, z.string()).pipe(LabelMap).refine((m) => {
          const n = Object.keys(m).length;
          return n >= 1 && n <= 64;
        }, { message: 'must have between 1 and 64 labels' }),
      }),
      targetPorts: z
        .array(z.object({ number: PortNumber }))
        .min(1)
        .max(8)
        .refine((ports) => new Set(ports.map((p) => p.number)).size === ports.length, { message: 'port number must be unique' }),
      appProtocol: z.enum(['http', 'kubernetes.io/h2c']).default('http'),
      endpointPickerRef: EndpointPickerRefSchema.optional(),
    }),
  })
  .transform((r, ctx): KindBody<InferencePool> => {
    const ref = r.spec.endpointPickerRef;
    const endpointPickerRef: EndpointPickerRef | undefined =
      ref === undefined ? undefined : { group: ref.group, kind: ref.kind, name: ref.name, failureMode: ref.failureMode, ...(ref.port === undefined ? {} : { port: ref.port.number }) };
    return {
      metadata: r.metadata,
      spec: {
        selector: r.spec.selector.matchLabels,
        targetPorts: r.spec.targetPorts.map((p) => p.number),
        appProtocol: r.spec.appProtocol,
        ...(endpointPickerRef === undefined ? {} : { endpointPickerRef }),
      },
      ...poolAnnotations(r.metadata, ctx),
    };
  });

const PoolRefSchema = (defaultGroup: string) =>
  z.object({
    group: Group.default(defaultGroup),
    kind: Kind.default('InferencePool'),
    name: ObjectName,
    namespace: DnsLabel.optional(),
  });

export const InferenceModelSchema = z
  .object({
    metadata: Metadata,
    spec: z.object({
      modelName: z.string().min(1).max(256),
      criticality: z.enum(['Critical', 'Standard', 'Sheddable']).optional(),
      targetModels: z
        .array(z.object({ name: z.string().min(1).max(253), weight: z.number().int().min(1).max(1_000_000).optional() }))
        .max(10)
        .default([])
        .refine((ts) => ts.every((t) => t.weight !== undefined) || ts.every((t) => t.weight === undefined), {
          message: 'Weights should be set for all models, or none of the models.',
        }),
      poolRef: PoolRefSchema('inference.networking.x-k8s.io'),
    }),
  })
  .transform(
    (r): KindBody<InferenceModel> => ({
      metadata: r.metadata,
      spec: {
        modelName: r.spec.modelName,
        targetModels: r.spec.targetModels.map((t) => (t.weight === undefined ? { name: t.name } : { name: t.name, weight: t.weight })),
        poolRef: r.spec.poolRef,
        ...(r.spec.criticality === undefined ? {} : { criticality: r.spec.criticality }),
      },
    }),
  );

export const InferenceObjectiveSchema = z
  .object({
    metadata: Metadata,
    spec: z.object({
      priority: z.number().int().optional(),
      poolRef: PoolRefSchema('inference.networking.k8s.io'),
    }),
  })
  .transform(
    (r): KindBody<InferenceObjective> => ({
      metadata: r.metadata,
      spec: { poolRef: r.spec.poolRef, ...(r.spec.priority === undefined ? {} : { priority: r.spec.priority }) },
    }),
  );

/**
 * InferenceModelRewrite (GIE apix/v1alpha2, also served as `llm-d.ai/v1alpha2`): `rules[]`, each
 * with `matches[]` (OR; none: a generic rule matching every model) of `model: {type: Exact,
 * value}` and `targets[]` (at least one) of `{modelRewrite, weight 1–1,000,000}`. A target name is
 * held to 256 characters, the longest model name a client may send (gateway/body.ts).
 */
export const InferenceModelRewriteSchema = z
  .object({
    metadata: Metadata,
    spec: z.object({
      poolRef: PoolRefSchema('inference.networking.k8s.io'),
      rules: z.array(
        z.object({
          matches: z.array(z.object({ model: z.object({ type: z.enum(['Exact']).default('Exact'), value: z.string().min(1).max(256) }) })).default([]),
          targets: z.array(z.object({ modelRewrite: z.string().min(1).max(256), weight: z.number().int().min(1).max(1_000_000).optional() })).min(1),
        }),
      ),
    }),
  })
  .transform(
    (r): KindBody<InferenceModelRewrite> => ({
      metadata: r.metadata,
      spec: {
        poolRef: r.spec.poolRef,
        rules: r.spec.rules.map((rule) => ({
          matches: rule.matches.map((m) => m.model.value),
          targets: rule.targets.map((t) => (t.weight === undefined ? { modelRewrite: t.modelRewrite } : { modelRewrite: t.modelRewrite, weight: t.weight })),
        })),
      },
    }),
  );

const PdProfileSchema = z
  .object({
    /** Without it prefill and decode pods cannot be told apart. */
    pdRoleLabelName: LabelKey,
    kvTransfer: z.object({ bootstrapPort: PortNumber.optional() }).optional(),
    trafficPolicy: z.object({ prefixCache: z.object(PrefixCacheModeFields).optional() }).optional(),
    prefillPolicyRef: z.string().min(1).optional(),
    decodePolicyRef: z.string().min(1).optional(),
  })
  .superRefine((pd, ctx) => {
    // A policy ref names a policy under trafficPolicy (ACK's seed: prefillPolicyRef: prefixCache).
    for (const field of ['prefillPolicyRef', 'decodePolicyRef'] as const) {
      const ref = pd[field];
      if (ref === undefined) continue;
      const defined = Object.keys(pd.trafficPolicy ?? {});
      if (!defined.includes(ref)) ctx.addIssue({ code: 'custom', path: [field], message: `names no policy under trafficPolicy (defined: ${defined.length === 0 ? 'none' : defined.join(', ')})`, input: ref });
    }
  });

export const InferenceTrafficPolicySchema = z
  .object({
    metadata: Metadata,
    spec: z.object({
      poolRef: z.object({ name: ObjectName }),
      modelServerRuntime: z.enum(RUNTIMES).optional(),
      profile: z.object({ pd: PdProfileSchema.optional(), single: z.unknown().optional() }).optional(),
    }),
  })
  .transform((r): KindBody<InferenceTrafficPolicy> => {
    const pd = r.spec.profile?.pd;
    return {
      metadata: r.metadata,
      spec: {
        poolRef: r.spec.poolRef,
        ...(r.spec.modelServerRuntime === undefined ? {} : { modelServerRuntime: r.spec.modelServerRuntime }),
        ...(pd === undefined ? {} : { profile: { pd: dropUndefined(pd) } }),
      },
    };
  });

/** exactOptionalPropertyTypes-friendly: keeps only the keys that have values. */
function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
