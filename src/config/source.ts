import type { Problem, Resource, ResourceKind } from '../api/types.js';

/** Identifies one resource within a source: kind, namespace and name. */
export interface ResourceKey {
  readonly kind: ResourceKind;
  readonly namespace: string;
  readonly name: string;
}

export function resourceKey(r: ResourceKey | Resource): string {
  const k = 'metadata' in r ? { kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name } : r;
  return `${k.kind}/${k.namespace}/${k.name}`;
}

/**
 * A set of changes from one source, applied all or nothing: if the result does not compile (or a
 * runtime cannot be built from it), none of it applies and the last good configuration keeps
 * serving.
 */
export interface ConfigBatch {
  /** Resources added or changed. */
  readonly upserts: readonly Resource[];
  /** Resources removed. */
  readonly deletes: readonly ResourceKey[];
  /**
   * True when `upserts` is the source's whole state (a file reload, a Kubernetes re-list): every
   * resource of this source not among them is removed.
   */
  readonly replace: boolean;
  /** Problems found reading the source; any error rejects the batch. */
  readonly problems: readonly Problem[];
  /** Documents of kinds the gateway does not read (for the log). */
  readonly ignored: number;
}

/** Where a source delivers its batches; resolves once the batch was applied or rejected. */
export type ConfigSink = (batch: ConfigBatch) => Promise<ApplyOutcome>;

/** What became of a batch. */
export type ApplyOutcome =
  | { readonly ok: true; readonly version: number; readonly warnings: readonly Problem[]; readonly configChanged: boolean }
  | { readonly ok: false; readonly errors: readonly Problem[]; readonly servingVersion: number | undefined };

/**
 * Where a source reports what it waits for or holds back (the gateway passes its logger):
 * structured fields, then the message.
 */
export interface SourceLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

/**
 * How current a source's view is, for `/readyz` and the `infergate_config_source_stale` gauge.
 * A stale source keeps serving its last view; the gateway stays ready and says so.
 */
export interface SourceHealth {
  /** The source type for the metric label (`kubernetes`). */
  readonly type: string;
  /** True while the source cannot follow its origin (an API server unreachable past its backoff). */
  readonly stale: boolean;
  /** Why, for a person reading `/readyz` (absent when fresh). */
  readonly detail?: string;
}

/**
 * Where configuration comes from: files (with watch), code (the `--backend` quick start, tests),
 * later the Kubernetes API. A source delivers its first complete state from `start` (resolving
 * once the sink has taken it), then a batch per change until `stop`. The gateway core knows
 * nothing else about it, so a Kubernetes source plugs in without touching the core.
 */
export interface ConfigSource {
  /** For logs, e.g. `files: examples/canary/`. */
  readonly name: string;
  /**
   * Delivers the initial state through `sink` and starts watching; resolves with the first
   * outcome. `log` receives what the source waits for (a change settling) and holds back.
   */
  start(sink: ConfigSink, log?: SourceLog): Promise<ApplyOutcome>;
  /** Re-reads the source now and delivers its whole state (a reload on demand). */
  resync(): Promise<ApplyOutcome>;
  stop(): Promise<void>;
  /** How current the source's view is; sources that cannot go stale (files) leave it out. */
  health?(): SourceHealth;
}
