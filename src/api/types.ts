/**
 * The resource model after loading: every accepted Kubernetes-shaped document becomes one of these
 * typed, defaulted objects. Schemas (src/api/kinds/*) produce them; the config compiler
 * (src/config) consumes them. Fields the gateway does not use are not carried.
 *
 * Both InferencePool versions are normalised into one shape (`targetPorts`, `selector` as a map,
 * `endpointPickerRef`), keeping `apiVersion` so messages can name what the user wrote.
 */

/** Where a resource came from: file path and 0-based document index in that file. */
export interface Source {
  readonly file: string;
  /** 0-based position of the document in the file. */
  readonly index: number;
  /**
   * 1-based line, when read from YAML/JSON text: where the document's content starts (a
   * resource's source), or where the problem is (a problem's: the field's own line when the
   * field is in the file, else its nearest enclosing field's, else the document's).
   */
  readonly line?: number;
  /** 1-based column of a problem, when the parser names one (YAML syntax errors). */
  readonly column?: number;
}

export interface ObjectMeta {
  readonly name: string;
  /** Defaults to `default`, as kubectl does. */
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** RFC 3339 as Kubernetes prints it; absent in hand-written files (then file order decides ties). */
  readonly creationTimestamp?: string;
  /**
   * `metadata.generation` as the API server sets it (bumped on each spec change); absent in
   * hand-written files. Status conditions carry it back as `observedGeneration`.
   */
  readonly generation?: number;
  /**
   * RFC 3339; set by the API server once a graceful deletion began (Kubernetes API conventions,
   * "graceful deletion"): a Pod with it is terminating and takes no new requests.
   */
  readonly deletionTimestamp?: string;
}

interface ResourceBase<K extends string> {
  readonly apiVersion: string;
  readonly kind: K;
  readonly metadata: ObjectMeta;
  readonly source: Source;
}

/** A reference to another object; `group` "" is the core group. */
export interface ObjectRef {
  readonly group: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
}

// ---------------------------------------------------------------- gateway.networking.k8s.io/v1

export interface GatewayClass extends ResourceBase<'GatewayClass'> {
  readonly spec: { readonly controllerName: string };
}

export interface Listener {
  readonly name: string;
  readonly port: number;
  /** HTTP is served; anything else is kept so the compiler can report it as unsupported. */
  readonly protocol: string;
  readonly hostname?: string;
}

export interface Gateway extends ResourceBase<'Gateway'> {
  readonly spec: {
    readonly gatewayClassName: string;
    readonly listeners: readonly Listener[];
  };
}

export interface ParentRef {
  /** Default `gateway.networking.k8s.io`. */
  readonly group: string;
  /** Default `Gateway`. */
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
  readonly sectionName?: string;
  readonly port?: number;
}

export interface PathMatch {
  /** Default `PathPrefix`. */
  readonly type: 'Exact' | 'PathPrefix' | 'RegularExpression';
  /** Default `/`. */
  readonly value: string;
}

export interface StringMatch {
  /** Default `Exact`. */
  readonly type: 'Exact' | 'RegularExpression';
  readonly name: string;
  readonly value: string;
}

export interface HTTPRouteMatch {
  /** Always present after defaulting (`PathPrefix /`). */
  readonly path: PathMatch;
  readonly headers: readonly StringMatch[];
  readonly queryParams: readonly StringMatch[];
  /** Upper-case HTTP method, if matched on. */
  readonly method?: string;
}

export interface HeaderValue {
  readonly name: string;
  readonly value: string;
}

export interface HeaderModifier {
  readonly set: readonly HeaderValue[];
  readonly add: readonly HeaderValue[];
  readonly remove: readonly string[];
}

/**
 * A route filter. The two header modifiers are applied by the data plane; every other type is
 * kept with its raw body so the compiler can report it as unsupported instead of failing.
 */
export interface HTTPRouteFilter {
  readonly type: string;
  readonly requestHeaderModifier?: HeaderModifier;
  readonly responseHeaderModifier?: HeaderModifier;
}

export interface BackendRef {
  /** Default `""` (core). */
  readonly group: string;
  /** Default `Service`. */
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
  readonly port?: number;
  /** Default 1; 0 means "never chosen". Range 0–1,000,000. */
  readonly weight: number;
  readonly filters: readonly HTTPRouteFilter[];
}

export interface HTTPRouteRule {
  readonly name?: string;
  /** Always at least one after defaulting (`PathPrefix /`). */
  readonly matches: readonly HTTPRouteMatch[];
  readonly filters: readonly HTTPRouteFilter[];
  readonly backendRefs: readonly BackendRef[];
  /** `timeouts.request` parsed to milliseconds (Gateway API Duration). */
  readonly requestTimeoutMs?: number;
}

export interface HTTPRoute extends ResourceBase<'HTTPRoute'> {
  readonly spec: {
    readonly parentRefs: readonly ParentRef[];
    readonly hostnames: readonly string[];
    readonly rules: readonly HTTPRouteRule[];
  };
}

// ---------------------------------------------------------------- inference extension

export type ModelServerRuntime = 'vllm' | 'sglang' | 'trt-llm';
export type RoutingStrategy = 'DEFAULT' | 'PREFIX_CACHE';
export type FailureMode = 'FailOpen' | 'FailClose';

export interface EndpointPickerRef {
  readonly group: string;
  readonly kind: string;
  readonly name: string;
  readonly port?: number;
  readonly failureMode: FailureMode;
}

export const RUNTIME_ANNOTATION = 'inference.networking.x-k8s.io/model-server-runtime';
export const ROUTING_STRATEGY_ANNOTATION = 'inference.networking.x-k8s.io/routing-strategy';
/** Pod annotation limiting which of a pool's target ports are live on that pod ("8000,8002"). */
export const ACTIVE_PORTS_ANNOTATION = 'inference.networking.k8s.io/active-ports';
/** SGLang's pod annotation announcing a prefill server's bootstrap port (SGLang docs/advanced_features/pd_disaggregation.md, python/sglang/srt/disaggregation; llm-d's P/D connector). */
export const BOOTSTRAP_PORT_ANNOTATION = 'sglang.ai/bootstrap-port';
/** Every Pod annotation the gateway reads (endpoint discovery); the others are neither kept nor checked. */
export const POD_ANNOTATIONS_READ: readonly string[] = [ACTIVE_PORTS_ANNOTATION, BOOTSTRAP_PORT_ANNOTATION];

/** Pool annotation holding Infergate's routing tunables as a YAML mapping (see docs/routing.md). */
export const ROUTING_CONFIG_ANNOTATION = 'infergate.dev/routing';

/**
 * Every annotation key the gateway reads under the prefixes it owns or reads. A key under one of
 * these prefixes that is not listed is a typo (`routing-stratgy` would otherwise leave the pool
 * on DEFAULT without a word), so the loader refuses it with the closest known key.
 */
export const KNOWN_ANNOTATIONS: ReadonlyMap<string, readonly string[]> = new Map([
  ['inference.networking.x-k8s.io/', [RUNTIME_ANNOTATION, ROUTING_STRATEGY_ANNOTATION]],
  ['inference.networking.k8s.io/', [ACTIVE_PORTS_ANNOTATION]],
  ['infergate.dev/', [ROUTING_CONFIG_ANNOTATION]],
]);

/**
 * Routing tunables of one pool, from the `infergate.dev/routing` annotation. Every field is
 * optional; the scheduling and flow-control layers own the defaults.
 */
export interface RoutingConfig {
  /** A baseline instead of the routing strategy (for benchmarks): uniform random or round-robin. */
  readonly policy?: 'random' | 'round-robin';
  /**
   * Whether streams that did not ask for usage get `stream_options.include_usage` added (and the
   * extra event removed): `inject`, or `off` for servers that refuse the field. Default by
   * runtime: vLLM and SGLang inject, Triton TensorRT-LLM does not (its OpenAI frontend refuses
   * the field before 25.11).
   */
  readonly streamUsage?: 'inject' | 'off';
  /**
   * Which model name the answers of a rewritten request carry: `served`, the target the model
   * server ran (`travel-helper-v2`), or `requested`, the name the client sent (`travelhelper`).
   * Unset: by what rewrote the name (an InferenceModel's targets stay visible, as the seeds and
   * GIE v0.3–v0.5 show; an InferenceModelRewrite or the rewrite header is put back, as GIE's
   * newer endpoint picker does). See docs/routing.md.
   */
  readonly responseModelName?: ResponseModelName;
  /** Prefill/decode pools (an InferenceTrafficPolicy with `profile.pd`). */
  readonly pd?: {
    /** Uncached prompt tokens on the decode endpoint at or below which a request runs there alone (vLLM). */
    readonly uncachedThresholdTokens?: number;
    /** Longest wait for the KV handshake beyond the prompt's prefill allowance, in ms. */
    readonly bootstrapTimeoutMs?: number;
  };
  /** Scorer weights; 0 removes a scorer, a positive weight adds one the strategy lacks. */
  readonly scorers?: {
    readonly queue?: number;
    readonly kvCache?: number;
    readonly inflight?: number;
    readonly prefill?: number;
    readonly lora?: number;
    readonly prefix?: number;
  };
  readonly prefix?: {
    readonly minBlocksForFullScore?: number;
    readonly hotspotQueueDelta?: number;
    readonly hotspotKvDelta?: number;
    /** Score of the prompt's prefix home in [0, 1]; 0 disables (src/scheduling/plugins/prefix-cache-scorer.ts). */
    readonly homeBonus?: number;
  } & PrefixCacheModeSettings;
  /** When the pool counts as saturated (requests then queue at the gateway, Sheddable is refused). */
  readonly saturation?: {
    readonly queueDepth?: number;
    readonly kvCacheUtilization?: number;
  };
  readonly queue?: {
    /** Requests the gateway holds for the pool at most; more get 429. */
    readonly maxRequests?: number;
    /** How long a request may wait, in milliseconds; longer gets 503. */
    readonly ttlMs?: number;
    /** `reject` (default): Sheddable requests get 429 while saturated; `queue`: they wait last. */
    readonly sheddable?: 'reject' | 'queue';
  };
}

/** InferencePool, either `inference.networking.x-k8s.io/v1alpha2` or `inference.networking.k8s.io/v1`. */
export interface InferencePool extends ResourceBase<'InferencePool'> {
  readonly spec: {
    /** v1alpha2 `selector` map, or v1 `selector.matchLabels`. */
    readonly selector: Readonly<Record<string, string>>;
    /** v1alpha2 `[targetPortNumber]`, or v1 `targetPorts[].number`; 1–8 unique ports. */
    readonly targetPorts: readonly number[];
    /** v1 only; `http` by default. */
    readonly appProtocol: 'http' | 'kubernetes.io/h2c';
    /** v1alpha2 `extensionRef` or v1 `endpointPickerRef`; optional (the ACK PD example has none). */
    readonly endpointPickerRef?: EndpointPickerRef;
  };
  /** From the model-server-runtime annotation; `vllm` when absent. */
  readonly runtime: ModelServerRuntime;
  /** From the routing-strategy annotation; `DEFAULT` when absent. */
  readonly routingStrategy: RoutingStrategy;
  /** From the `infergate.dev/routing` annotation; undefined when absent. */
  readonly routing?: RoutingConfig;
}

export type Criticality = 'Critical' | 'Standard' | 'Sheddable';

/** The model name an answer carries: the target the server ran, or the name the client sent. */
export type ResponseModelName = 'served' | 'requested';

export interface TargetModel {
  readonly name: string;
  /** Either every target has a weight (1–1,000,000) or none has. */
  readonly weight?: number;
}

export interface InferenceModel extends ResourceBase<'InferenceModel'> {
  readonly spec: {
    readonly modelName: string;
    /** No default in the CRD; the gateway treats unset as Standard. */
    readonly criticality?: Criticality;
    readonly targetModels: readonly TargetModel[];
    readonly poolRef: ObjectRef;
  };
}

export interface InferenceObjective extends ResourceBase<'InferenceObjective'> {
  readonly spec: {
    readonly priority?: number;
    readonly poolRef: ObjectRef;
  };
}

/** One weighted target of an InferenceModelRewrite rule. */
export interface RewriteTarget {
  readonly modelRewrite: string;
  /** 1–1,000,000; absent counts as 0 (never drawn) unless every target of the rule lacks one (then uniform). */
  readonly weight?: number;
}

export interface InferenceModelRewriteRule {
  /** Exact model names, any of which matches (OR); empty: the rule matches every model (generic). */
  readonly matches: readonly string[];
  /** At least one. */
  readonly targets: readonly RewriteTarget[];
}

/**
 * InferenceModelRewrite (`inference.networking.x-k8s.io/v1alpha2` or `llm-d.ai/v1alpha2`, one
 * schema): rewrites the body's model to a weighted target within one pool. `matches[].model.type`
 * is always `Exact` (the only value the CRD allows), so only the values are kept.
 */
export interface InferenceModelRewrite extends ResourceBase<'InferenceModelRewrite'> {
  readonly spec: {
    readonly poolRef: ObjectRef;
    readonly rules: readonly InferenceModelRewriteRule[];
  };
}

/** ACK's InferenceTrafficPolicy; kept for the PD issue. Unknown keys under `profile` are dropped. */
/**
 * How a pool's prefix affinity knows what the engines cache: `estimate` (default) learns from the
 * gateway's own routing; `precise` reads the engines' KV events (vLLM ≥ 0.10
 * `--kv-events-config`) and matches the request's token ids (docs/routing.md). The same fields in
 * an InferenceTrafficPolicy's `trafficPolicy.prefixCache` and in the routing annotation's `prefix`.
 */
export interface PrefixCacheModeSettings {
  readonly mode?: 'estimate' | 'precise';
  /** Tokens per KV block; default 16, vLLM's default on CUDA. Must divide the engines' block size. */
  readonly blockSize?: number;
  readonly kvEvents?: KvEventsSettings;
  /** Tokenizer directory per served model (`tokenizer.json` + `tokenizer_config.json`, as a cluster mounts them). */
  readonly tokenizers?: readonly TokenizerRef[];
}

/** Where each pod publishes its KV events. `{ip}`: the pod IP; `{port}`: the endpoint's target port; `{model}` (topic only): any model. */
export interface KvEventsSettings {
  /** Default `tcp://{ip}:5557` (vLLM's `endpoint` default, `tcp://*:5557`, seen from outside). */
  readonly endpoint?: string;
  /** The replay (ROUTER) socket; default `tcp://{ip}:5558`; `""` turns replay off. */
  readonly replayEndpoint?: string;
  /** Default `kv@{ip}:{port}@{model}` (llm-d's convention; vLLM's own default is no topic). */
  readonly topic?: string;
}

export interface TokenizerRef {
  /** The base model name the pods serve (`--served-model-name`); its LoRA adapters use the same tokenizer. */
  readonly model: string;
  readonly path: string;
}

export interface InferenceTrafficPolicy extends ResourceBase<'InferenceTrafficPolicy'> {
  readonly spec: {
    readonly poolRef: { readonly name: string };
    readonly modelServerRuntime?: ModelServerRuntime;
    readonly profile?: {
      readonly pd?: {
        readonly pdRoleLabelName?: string;
        readonly kvTransfer?: { readonly bootstrapPort?: number };
        readonly trafficPolicy?: {
          readonly prefixCache?: PrefixCacheModeSettings;
        };
        readonly prefillPolicyRef?: string;
        readonly decodePolicyRef?: string;
      };
    };
  };
}

// ---------------------------------------------------------------- gateway.envoyproxy.io/v1alpha1

export interface PolicyTargetRef {
  readonly group: string;
  readonly kind: string;
  readonly name: string;
  readonly sectionName?: string;
}

export interface ClientTrafficPolicy extends ResourceBase<'ClientTrafficPolicy'> {
  readonly spec: {
    /** `targetRefs`, or the older single `targetRef`, as a list. */
    readonly targetRefs: readonly PolicyTargetRef[];
    /** `connection.bufferLimit` (a Kubernetes quantity such as `20Mi`) in bytes. */
    readonly bufferLimitBytes?: number;
  };
}

export interface BackendTrafficPolicy extends ResourceBase<'BackendTrafficPolicy'> {
  readonly spec: {
    readonly targetRefs: readonly PolicyTargetRef[];
    /** `timeout.http.requestTimeout` (a duration such as `24h`, `30s`) in milliseconds. */
    readonly requestTimeoutMs?: number;
  };
}

// ---------------------------------------------------------------- core/v1

export interface ServicePort {
  readonly name?: string;
  readonly port: number;
  /** Number, or the name of a container port; defaults to `port`. */
  readonly targetPort: number | string;
}

export interface Service extends ResourceBase<'Service'> {
  readonly spec: {
    readonly selector: Readonly<Record<string, string>>;
    readonly ports: readonly ServicePort[];
  };
}

export interface ContainerPort {
  readonly name?: string;
  readonly containerPort: number;
}

export interface Pod extends ResourceBase<'Pod'> {
  readonly spec: {
    readonly containerPorts: readonly ContainerPort[];
  };
  readonly status: {
    /** Absent until scheduled; such a pod yields no endpoints. */
    readonly podIP?: string;
    readonly phase?: string;
    /** `status.conditions[type=Ready].status == "True"`; undefined when not reported. */
    readonly ready?: boolean;
  };
}

export type Resource =
  | GatewayClass
  | Gateway
  | HTTPRoute
  | InferencePool
  | InferenceModel
  | InferenceObjective
  | InferenceModelRewrite
  | InferenceTrafficPolicy
  | ClientTrafficPolicy
  | BackendTrafficPolicy
  | Service
  | Pod;

export type ResourceKind = Resource['kind'];
export type ResourceOf<K extends ResourceKind> = Extract<Resource, { kind: K }>;

// ---------------------------------------------------------------- problems

/**
 * A problem with the input. `subject` is `Kind/name` for a resource, or a file path for a document
 * that is not a resource (YAML syntax error, missing `kind`). `path` is the dotted field path
 * (`spec.targetModels[1].weight`), or `-` when the whole object is at fault.
 *
 * Errors reject the resource (and, on reload, the whole change); warnings describe something that
 * is accepted with a documented behaviour (an unsupported filter is ignored, a dangling backendRef
 * answers 500).
 */
export interface Problem {
  readonly severity: 'error' | 'warning';
  readonly subject: string;
  readonly path: string;
  readonly message: string;
  readonly source?: Source;
  /**
   * How many errors this entry stands for, when it summarises several (`11 more YAML syntax
   * error(s) not shown` stands for 11); 1 when absent. Counting entries instead undercounted.
   */
  readonly count?: number;
}

/** How many errors `problems` hold, each summary entry counted as the errors it stands for. */
export function errorCount(problems: readonly Problem[]): number {
  let n = 0;
  for (const p of problems) if (p.severity === 'error') n += p.count ?? 1;
  return n;
}

/** A document whose kind the gateway does not use (Deployment, ConfigMap, …). */
export interface IgnoredDocument {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly source: Source;
}

export interface LoadResult {
  readonly resources: readonly Resource[];
  readonly problems: readonly Problem[];
  readonly ignored: readonly IgnoredDocument[];
}

/** `Kind/name: field.path: reason`, the one format every problem is printed in. */
export function formatProblem(p: Problem): string {
  return `${p.subject}: ${p.path}: ${p.message}`;
}

/**
 * {@link formatProblem} with where the problem is, for a person to find it:
 * `Kind/name: field.path: reason (file.yaml, line 12)`; when the subject already names the file
 * (a problem of the file or a document, not of a resource) only the line: `file.yaml (document
 * 2): -: reason (line 7, column 3)`. The position is said once, here, never in the reason.
 */
export function formatProblemAt(p: Problem): string {
  const s = p.source;
  if (s === undefined) return formatProblem(p);
  const pos = s.line === undefined ? '' : s.column === undefined ? `line ${s.line}` : `line ${s.line}, column ${s.column}`;
  if (p.subject.startsWith(s.file)) return pos === '' ? formatProblem(p) : `${formatProblem(p)} (${pos})`;
  return `${formatProblem(p)} (${s.file}${pos === '' ? '' : `, ${pos}`})`;
}
