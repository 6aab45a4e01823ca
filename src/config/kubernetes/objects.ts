import { parseObject } from '../../api/load.js';
import { POD_ANNOTATIONS_READ, type Problem, type Resource } from '../../api/types.js';
import type { RawObject } from './reflector.js';
import { resourceName, type WatchedType } from './watched-kinds.js';

/*
 * API objects → Resources, through the same loader (src/api/load.ts) the files go through: one
 * parser, one set of rules and problem messages. What the API server adds that nothing reads
 * (managedFields, most of a Pod) is dropped first, so the view holds little per object.
 */

/** What became of one object. */
export interface Converted {
  /** The resource, or undefined when the object was refused (errors among `problems`). */
  readonly resource: Resource | undefined;
  readonly problems: readonly Problem[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The Pod fields endpoint discovery reads (src/api/kinds/core.ts); the rest of a Pod is large and unread. */
function slimPod(o: RawObject): RawObject {
  const meta = o.metadata;
  const spec = isRecord(o['spec']) ? o['spec'] : {};
  const status = isRecord(o['status']) ? o['status'] : {};
  const containers = Array.isArray(spec['containers']) ? spec['containers'] : [];
  // A Pod from the API server is Ready only when the kubelet says so: no Ready condition yet (just
  // scheduled) is not ready, unlike a hand-written Pod in a file (which reports no conditions at all).
  const conditions = Array.isArray(status['conditions']) ? status['conditions'] : [];
  const reportsReady = conditions.some((c: unknown) => isRecord(c) && c['type'] === 'Ready');
  const keep = (src: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> => Object.fromEntries(keys.filter((k) => src[k] !== undefined).map((k) => [k, src[k]]));
  // Only the annotations discovery reads: a Pod's others (up to 256 KiB of them, Kubernetes'
  // annotation limit, times every pod watched) are memory nothing uses, and one under a prefix the
  // loader checks for typos (another controller's `inference.networking.k8s.io/…`) would refuse the Pod.
  const annotations = isRecord(meta['annotations']) ? keep(meta['annotations'], POD_ANNOTATIONS_READ) : undefined;
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    metadata: { ...keep(meta, ['name', 'namespace', 'labels', 'creationTimestamp', 'deletionTimestamp', 'resourceVersion']), ...(annotations === undefined ? {} : { annotations }) } as RawObject['metadata'],
    spec: {
      containers: containers.map((c: unknown) => {
        const ports = isRecord(c) && Array.isArray(c['ports']) ? c['ports'] : [];
        return { ports: ports.map((p: unknown) => (isRecord(p) ? keep(p, ['name', 'containerPort']) : p)) };
      }),
    },
    status: {
      ...keep(status, ['podIP', 'phase']),
      conditions: [...conditions.map((c: unknown) => (isRecord(c) ? keep(c, ['type', 'status']) : c)), ...(reportsReady ? [] : [{ type: 'Ready', status: 'False' }])],
    },
  };
}

/** Where a resource came from, for problems and logs: `kubernetes inferencepools.inference.networking.k8s.io default/pool`. */
export function objectLabel(type: WatchedType, namespace: string | undefined, name: string): string {
  return `kubernetes ${resourceName(type)} ${namespace === undefined ? '' : `${namespace}/`}${name}`;
}

/** Validates one API object with the loader. */
export function convertObject(type: WatchedType, raw: RawObject): Converted {
  let value: RawObject;
  if (type.kind === 'Pod') value = slimPod(raw);
  else {
    const { managedFields: _dropped, ...meta } = raw.metadata;
    value = { ...raw, metadata: meta as RawObject['metadata'] };
  }
  const loaded = parseObject(value, { file: objectLabel(type, raw.metadata.namespace, raw.metadata.name), index: 0 });
  const failed = loaded.problems.some((p) => p.severity === 'error');
  const resource = failed ? undefined : loaded.resources[0];
  return { resource, problems: loaded.problems };
}
