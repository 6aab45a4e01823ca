import type { z } from 'zod';
import { formatPath } from './issues.js';

/*
 * A typo such as `criticallity: Critical` or `wieght: 90` would otherwise be dropped silently: the
 * model would run at the default criticality, the backend would get weight 1 and a canary would
 * take most of the traffic. `kubectl apply` refuses such fields (strict field validation is its
 * default since Kubernetes 1.27), so the loader does too. The walk follows the schema that parsed
 * the document, so the list of known fields is the schema itself and cannot drift from it.
 */

type AnySchema = z.core.$ZodType;

interface Def {
  readonly type: string;
  readonly innerType?: AnySchema;
  readonly in?: AnySchema;
  readonly shape?: Readonly<Record<string, AnySchema>>;
  readonly catchall?: AnySchema;
  readonly element?: AnySchema;
  readonly valueType?: AnySchema;
  readonly options?: readonly AnySchema[];
}

function def(schema: AnySchema): Def {
  return schema._zod.def as unknown as Def;
}

/** Strips optional/default/nullable/transform wrappers down to the schema that sees the input. */
function unwrap(schema: AnySchema): AnySchema {
  let s = schema;
  for (let i = 0; i < 16; i++) {
    const d = def(s);
    if (d.innerType !== undefined) s = d.innerType;
    else if (d.type === 'pipe' && d.in !== undefined) s = d.in;
    else break;
  }
  return s;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A field the schema does not declare: its dotted path, its own key and the keys its object does declare. */
export interface UnknownField {
  readonly path: string;
  /** The same path as keys and indexes, for finding the field in its file. */
  readonly segments: readonly PropertyKey[];
  readonly key: string;
  readonly known: readonly string[];
}

/**
 * Fields present in `value` that `schema` does not declare. Objects with a catch-all
 * (deliberately open, like filter bodies we pass over) are not descended into. Unions are
 * skipped: which branch applied is not known here.
 */
export function unknownFields(schema: AnySchema, value: unknown, path: PropertyKey[] = [], out: UnknownField[] = []): UnknownField[] {
  const s = unwrap(schema);
  const d = def(s);
  if (d.type === 'object' && isRecord(value) && d.shape !== undefined) {
    if (d.catchall !== undefined && def(d.catchall).type !== 'never') return out;
    for (const [key, child] of Object.entries(value)) {
      const known = d.shape[key];
      if (known === undefined) out.push({ path: formatPath([...path, key]), segments: [...path, key], key, known: Object.keys(d.shape) });
      else unknownFields(known, child, [...path, key], out);
    }
  } else if (d.type === 'array' && Array.isArray(value) && d.element !== undefined) {
    value.forEach((item, i) => unknownFields(d.element as AnySchema, item, [...path, i], out));
  } else if (d.type === 'record' && isRecord(value) && d.valueType !== undefined) {
    for (const [key, child] of Object.entries(value)) unknownFields(d.valueType, child, [...path, key], out);
  }
  return out;
}
