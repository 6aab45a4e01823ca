import { z } from 'zod';
import { parseDurationMs } from '../duration.js';
import { parseQuantityBytes } from '../quantity.js';
import type { ObjectMeta } from '../types.js';

/*
 * Building blocks shared by the kind schemas, with the limits the CRDs state (Gateway API Inference Extension api/v1alpha2/shared_types.go, api/v1/shared_types.go).
 * Messages are written for people: they finish the sentence `Kind/name: field.path: …`.
 */

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const GROUP = /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const KIND = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;

/** A Kubernetes object name: an RFC 1123 subdomain of at most 253 characters. */
export const ObjectName = z
  .string()
  .min(1)
  .max(253)
  .regex(DNS_SUBDOMAIN, { message: "must be a lower-case RFC 1123 subdomain (a-z, 0-9, '-', '.'; starting and ending with a letter or digit)" });

/** A namespace or listener section name: an RFC 1123 label of at most 63 characters. */
export const DnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(DNS_LABEL, { message: "must be a lower-case RFC 1123 label (a-z, 0-9, '-'; starting and ending with a letter or digit)" });

export const Group = z.string().max(253).regex(GROUP, { message: 'must be an API group such as inference.networking.x-k8s.io, or "" for the core group' });
export const Kind = z.string().min(1).max(63).regex(KIND, { message: 'must be a Kind such as InferencePool or Service' });
export const PortNumber = z.number().int().min(1).max(65535);

/** `prefix/name` with an optional DNS prefix; the name part at most 63 characters. */
export const LabelKey = z
  .string()
  .min(1)
  .max(253)
  .refine(
    (key) => {
      const slash = key.lastIndexOf('/');
      const name = slash === -1 ? key : key.slice(slash + 1);
      const prefix = slash === -1 ? undefined : key.slice(0, slash);
      if (prefix !== undefined && (prefix.length === 0 || !DNS_SUBDOMAIN.test(prefix))) return false;
      return name.length <= 63 && LABEL_NAME.test(name);
    },
    { message: 'must be a label key: an optional DNS prefix and "/", then at most 63 of A-Z a-z 0-9 - _ . starting and ending with a letter or digit' },
  );

export const LabelValue = z
  .string()
  .max(63)
  .regex(LABEL_VALUE, { message: 'must be a label value: at most 63 of A-Z a-z 0-9 - _ . starting and ending with a letter or digit, or empty' });

export const LabelMap = z.record(LabelKey, LabelValue);

/** Annotation values are free text; keys follow the label-key rules. */
const AnnotationMap = z.record(LabelKey, z.string());

export const Metadata = z
  .object({
    name: ObjectName,
    namespace: DnsLabel.default('default'),
    labels: LabelMap.default({}),
    annotations: AnnotationMap.default({}),
    // YAML may hand us a Date when the timestamp is unquoted; normalise to RFC 3339 text.
    creationTimestamp: z.union([z.string(), z.date().transform((d) => d.toISOString())]).optional(),
    // The rest of ObjectMeta: what `kubectl get -o yaml` prints and a cluster sets. Accepted (a
    // strict loader must not refuse an object exported from a cluster) and not read.
    uid: z.unknown().optional(),
    resourceVersion: z.unknown().optional(),
    // Kept when it is what the API server writes (a non-negative integer); status reports it back.
    generation: z.unknown().optional(),
    generateName: z.unknown().optional(),
    selfLink: z.unknown().optional(),
    managedFields: z.unknown().optional(),
    ownerReferences: z.unknown().optional(),
    finalizers: z.unknown().optional(),
    // Set by the API server when a graceful deletion began (a Pod in its grace period): kept, so
    // endpoint discovery can stop sending new requests to a pod that is shutting down.
    deletionTimestamp: z.union([z.string(), z.date().transform((d) => d.toISOString())]).optional(),
    deletionGracePeriodSeconds: z.unknown().optional(),
  })
  .transform((m): ObjectMeta => ({
    name: m.name,
    namespace: m.namespace,
    labels: m.labels,
    annotations: m.annotations,
    ...(m.creationTimestamp === undefined ? {} : { creationTimestamp: m.creationTimestamp }),
    ...(typeof m.generation === 'number' && Number.isSafeInteger(m.generation) && m.generation >= 0 ? { generation: m.generation } : {}),
    ...(m.deletionTimestamp === undefined ? {} : { deletionTimestamp: m.deletionTimestamp }),
  }));

/** A Kubernetes quantity (`20Mi`, `1G`, `1048576`) parsed to bytes. */
export const QuantityBytes = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const bytes = parseQuantityBytes(v);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${String(v)}" is not a quantity (examples: 20Mi, 512Ki, 1G, 1048576)`, input: v });
    return z.NEVER;
  }
  return bytes;
});

/** A Gateway API duration (`24h`, `30s`, `1h30m`, `500ms`) parsed to milliseconds. */
export const DurationMs = z.string().transform((v, ctx) => {
  const ms = parseDurationMs(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (one to four of number+unit, units h, m, s, ms: 24h, 30s, 1h30m, 500ms)`, input: v });
    return z.NEVER;
  }
  return ms;
});

/** Policy attachment: `targetRefs`, or the older single `targetRef`, as one list. */
export const PolicyTargetRefSchema = z.object({
  group: Group.default('gateway.networking.k8s.io'),
  kind: Kind,
  name: ObjectName,
  sectionName: z.string().min(1).max(253).optional(),
});
