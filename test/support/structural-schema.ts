/**
 * A small validator for the part of a CRD's structural OpenAPI v3 schema (apiextensions.k8s.io/v1
 * `openAPIV3Schema`) that deploy/crds/ uses: `type` (object, string, integer, number, boolean,
 * array), `properties`, `required`, `enum`, `minimum`/`maximum`, `minLength`/`maxLength`,
 * `pattern`, `maxItems`, `items` and `x-kubernetes-preserve-unknown-fields`. A field the schema
 * does not declare is reported, as the API server's strict field validation (`kubectl apply
 * --validate=strict`, the default since Kubernetes 1.27 warns) reports it; the server itself would
 * prune it. Returns one message per violation, `path: reason`; empty when the value conforms.
 */
export function validateStructural(schema: unknown, value: unknown, path = ''): string[] {
  if (!isRecord(schema)) return [];
  const here = path === '' ? '<root>' : path;
  const out: string[] = [];
  const type = schema['type'];
  if (type === 'object') {
    if (!isRecord(value)) return [`${here}: must be an object`];
    const properties = isRecord(schema['properties']) ? schema['properties'] : undefined;
    for (const key of Array.isArray(schema['required']) ? (schema['required'] as string[]) : []) {
      if (!(key in value)) out.push(`${path === '' ? key : `${path}.${key}`}: required`);
    }
    if (properties === undefined) return out; // `type: object` alone (metadata) or preserve-unknown-fields
    for (const [key, v] of Object.entries(value)) {
      const sub = properties[key];
      const at = path === '' ? key : `${path}.${key}`;
      if (sub === undefined) {
        if (schema['x-kubernetes-preserve-unknown-fields'] !== true) out.push(`${at}: unknown field`);
        continue;
      }
      out.push(...validateStructural(sub, v, at));
    }
    return out;
  }
  if (type === 'array') {
    if (!Array.isArray(value)) return [`${here}: must be a list`];
    if (typeof schema['maxItems'] === 'number' && value.length > schema['maxItems']) out.push(`${here}: at most ${schema['maxItems']} items`);
    value.forEach((item, i) => out.push(...validateStructural(schema['items'], item, `${path}[${i}]`)));
    return out;
  }
  if (type === 'string' && typeof value !== 'string') return [`${here}: must be a string`];
  if (type === 'integer' && !Number.isInteger(value)) return [`${here}: must be an integer`];
  if (type === 'number' && typeof value !== 'number') return [`${here}: must be a number`];
  if (type === 'boolean' && typeof value !== 'boolean') return [`${here}: must be a boolean`];
  if (Array.isArray(schema['enum']) && !schema['enum'].includes(value)) out.push(`${here}: must be one of ${(schema['enum'] as unknown[]).join(', ')}`);
  if (typeof value === 'number') {
    if (typeof schema['minimum'] === 'number' && value < schema['minimum']) out.push(`${here}: below ${schema['minimum']}`);
    if (typeof schema['maximum'] === 'number' && value > schema['maximum']) out.push(`${here}: above ${schema['maximum']}`);
  }
  if (typeof value === 'string') {
    if (typeof schema['minLength'] === 'number' && value.length < schema['minLength']) out.push(`${here}: shorter than ${schema['minLength']}`);
    if (typeof schema['maxLength'] === 'number' && value.length > schema['maxLength']) out.push(`${here}: longer than ${schema['maxLength']}`);
    if (typeof schema['pattern'] === 'string' && !new RegExp(schema['pattern'], 'u').test(value)) out.push(`${here}: does not match ${schema['pattern']}`);
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
