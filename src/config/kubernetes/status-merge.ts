import { DEFAULT_PARENT_REF, MAX_STATUS_PARENTS, parentKey, type DesiredStatus, type StatusParentRef } from './status-conditions.js';

/*
 * Merging our entries into an object's `status.parents` as the API server holds it: only entries
 * that are ours are replaced or removed (by `controllerName`, or for InferencePool v1alpha2, which
 * has none, by parentRef); another controller's entries and conditions stay as they are, in place.
 * Pure: the caller reads the object, merges, and writes with the resourceVersion it read.
 */

/** A status parents entry as written (JSON). */
export interface ParentEntry {
  readonly parentRef: StatusParentRef;
  readonly controllerName?: string;
  readonly conditions: ReadonlyArray<WrittenCondition>;
}

/** metav1.Condition as written. */
export interface WrittenCondition {
  readonly type: string;
  readonly status: string;
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration?: number;
  /** RFC 3339; kept from the entry already there while `status` does not change (Kubernetes API conventions). */
  readonly lastTransitionTime: string;
}

export interface MergeContext {
  /** The object's namespace (a parentRef without one means this namespace). */
  readonly objectNamespace: string;
  /** RFC 3339 time for conditions whose status changes. */
  readonly now: string;
  /** observedGeneration to stamp; undefined leaves it out. */
  readonly generation: number | undefined;
  /** The API version's entries carry `controllerName` (InferencePool v1, HTTPRoute); v1alpha2 pools do not. */
  readonly withControllerName: boolean;
  /** More parentRef keys to treat as ours where entries carry no controllerName (ones we wrote earlier). */
  readonly extraOwnedKeys?: ReadonlySet<string>;
}

export interface MergeResult {
  /** The whole list to write: others' entries in place, then ours. */
  readonly parents: unknown[];
  /** Ours differ from what is there (a write is needed). */
  readonly changed: boolean;
  /** Entries of ours left out to keep the list within 32. */
  readonly truncated: number;
}

/** Merges `desired` into `existing` (the object's current parents list; anything not a list counts as empty). */
export function mergeParents(existing: unknown, desired: DesiredStatus, ctx: MergeContext): MergeResult {
  const list: unknown[] = Array.isArray(existing) ? existing : [];
  const isOurs = (entry: unknown): boolean => {
    if (!isRecord(entry)) return false;
    if (ctx.withControllerName) return entry['controllerName'] === desired.controllerName;
    const ref = entry['parentRef'];
    if (!isRecord(ref)) return false;
    const key = parentKey(ref, ctx.objectNamespace);
    return desired.ownedParentKeys.has(key) || (ctx.extraOwnedKeys?.has(key) ?? false);
  };
  const others = list.filter((e) => !isOurs(e));
  const oldOurs = list.filter(isOurs) as Array<Record<string, unknown>>;
  const oldByKey = new Map<string, Record<string, unknown>>();
  for (const e of oldOurs) oldByKey.set(parentKey(e['parentRef'] as Record<string, unknown>, ctx.objectNamespace), e);

  const room = Math.max(0, MAX_STATUS_PARENTS - others.length);
  const wanted = desired.parents.slice(0, room);
  const newOurs: ParentEntry[] = wanted.map((p) => {
    const old = oldByKey.get(parentKey(p.parentRef, ctx.objectNamespace));
    const oldConditions = Array.isArray(old?.['conditions']) ? (old['conditions'] as unknown[]).filter(isRecord) : [];
    return {
      parentRef: p.parentRef,
      ...(ctx.withControllerName ? { controllerName: desired.controllerName } : {}),
      conditions: p.conditions.map((c): WrittenCondition => {
        const before = oldConditions.find((o) => o['type'] === c.type);
        const kept = before !== undefined && before['status'] === c.status && typeof before['lastTransitionTime'] === 'string' ? before['lastTransitionTime'] : undefined;
        return {
          type: c.type,
          status: c.status,
          reason: c.reason,
          message: c.message,
          ...(ctx.generation === undefined ? {} : { observedGeneration: ctx.generation }),
          lastTransitionTime: kept ?? ctx.now,
        };
      }),
    };
  });

  const parents: unknown[] = [...others, ...newOurs];
  // v1alpha2: "Add the parent [kind: Status, name: default] when the controller will no longer
  // manage the InferencePool and no other parents exist" (GIE api/v1alpha2 InferencePoolStatus).
  if (!ctx.withControllerName && desired.target.kind === 'InferencePool' && parents.length === 0 && oldOurs.length > 0) {
    parents.push({
      parentRef: DEFAULT_PARENT_REF,
      conditions: [{ type: 'Accepted', status: 'Unknown', reason: 'Pending', message: 'Waiting for controller', lastTransitionTime: ctx.now }],
    });
  }
  const changed = canonical(oldOurs, ctx.objectNamespace) !== canonical(newOurs as unknown as Array<Record<string, unknown>>, ctx.objectNamespace);
  return { parents, changed, truncated: desired.parents.length - wanted.length };
}

/** Our entries as one comparable string: order of entries and of conditions does not matter. */
function canonical(entries: ReadonlyArray<Record<string, unknown>>, namespace: string): string {
  const rows = entries.map((e) => {
    const conditions = (Array.isArray(e['conditions']) ? (e['conditions'] as unknown[]) : []).filter(isRecord).map((c) =>
      JSON.stringify([c['type'], c['status'], c['reason'], c['message'], c['observedGeneration'] ?? null, c['lastTransitionTime'] ?? null]),
    );
    conditions.sort();
    const ref = isRecord(e['parentRef']) ? e['parentRef'] : {};
    return JSON.stringify([parentKey(ref, namespace), e['controllerName'] ?? null, conditions]);
  });
  rows.sort();
  return rows.join('\n');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
