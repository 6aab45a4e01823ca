import type { HeaderEdit } from '../core/headers.js';
import type { PbHeaderMap, PbHeaderMutation, PbHeaderValueOption, PbMetadata, PbStruct, PbValue } from './messages.js';

/**
 * Headers as the ext_proc layer hands them to a processor: lower-case names (HTTP/2 style, as
 * Envoy sends them), pseudo-headers included (`:method`, `:path`, `:authority`, `:scheme` on a
 * request; `:status` on a response), repeated names joined by `,` (RFC 9110 §5.3), except
 * `set-cookie`, whose values are joined by `\n` since they cannot be combined.
 */
export type HeaderRecord = Record<string, string>;

/** Bounds on one header map from Envoy; a map past either ends the stream (RESOURCE_EXHAUSTED). */
export interface HeaderLimits {
  /** Sum of name and value bytes. Envoy's own default request-header limit is 60 KiB (max_request_headers_kb). */
  readonly maxBytes: number;
  /**
   * Number of header fields (entries of Envoy's map: a name sent twice is two, pseudo-headers
   * count). Envoy's default max_headers_count is 100.
   */
  readonly maxCount: number;
}

/** Defaults above Envoy's own defaults so only a misconfigured or hostile peer reaches them. */
export const DEFAULT_HEADER_LIMITS: HeaderLimits = { maxBytes: 96 * 1024, maxCount: 256 };

/** A header map over its bounds. */
export class HeaderLimitError extends Error {
  override readonly name = 'HeaderLimitError';
}

/**
 * Envoy's HeaderMap as a HeaderRecord. `raw_value` (bytes, what Envoy sends) wins over `value`;
 * bytes are decoded as latin1 so no byte is lost or replaced. Throws HeaderLimitError past `limits`.
 */
export function headerRecord(map: PbHeaderMap | undefined, limits: HeaderLimits = DEFAULT_HEADER_LIMITS): HeaderRecord {
  const out: HeaderRecord = Object.create(null) as HeaderRecord;
  const list = map?.headers ?? [];
  if (list.length > limits.maxCount) throw new HeaderLimitError(countMessage(list, limits.maxCount));
  let bytes = 0;
  for (const h of list) {
    const name = (h.key ?? '').toLowerCase();
    const value = h.raw_value !== undefined && h.raw_value.length > 0 ? latin1(h.raw_value) : (h.value ?? '');
    bytes += name.length + value.length;
    if (bytes > limits.maxBytes) throw new HeaderLimitError(`${headerBytes(list)} bytes of header names and values, more than the ${limits.maxBytes} accepted`);
    if (name === '') continue;
    const prior = out[name];
    out[name] = prior === undefined ? value : `${prior}${name === 'set-cookie' ? '\n' : ','}${value}`;
  }
  return out;
}

/**
 * What a header map over the count bound has, for the refusal: Envoy sends one entry per header
 * field (a name sent twice is two), its pseudo-headers (`:method`, `:path`, …) among them, so the
 * count is of header fields and says how many of them the client did not write itself.
 */
function countMessage(list: NonNullable<PbHeaderMap['headers']>, max: number): string {
  const pseudo = list.filter((h) => (h.key ?? '').startsWith(':')).length;
  return `${list.length} header fields (${pseudo} of them pseudo-headers such as :method and :path), more than the ${max} accepted`;
}

/** Header name and value bytes of a whole map, as the byte bound counts them (only for a refusal). */
function headerBytes(list: NonNullable<PbHeaderMap['headers']>): number {
  let bytes = 0;
  for (const h of list) bytes += (h.key ?? '').length + (h.raw_value !== undefined && h.raw_value.length > 0 ? h.raw_value.length : (h.value ?? '').length);
  return bytes;
}

/** Bytes as latin1 text, without copying them first (Buffer.from(buffer) would: once per header, per message). */
function latin1(b: Buffer | Uint8Array): string {
  return (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toString('latin1');
}

/** A HeaderRecord as Envoy's HeaderMap (raw_value bytes), e.g. for the stand-in playing Envoy. */
export function headerMap(headers: Readonly<Record<string, string | readonly string[] | undefined>>): PbHeaderMap {
  const list: { key: string; raw_value: Buffer }[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of typeof value === 'string' ? [value] : value) list.push({ key: name.toLowerCase(), raw_value: Buffer.from(v, 'latin1') });
  }
  return { headers: list };
}

/**
 * Header edits as Envoy's HeaderMutation. `set` overwrites (OVERWRITE_IF_EXISTS_OR_ADD), `add`
 * appends (APPEND_IF_EXISTS_OR_ADD), `remove` goes to remove_headers. Envoy applies set_headers
 * before remove_headers, so an edit list that removes then sets the same name keeps the set:
 * a removal is dropped when a later edit sets that name again. Undefined when there is nothing to do.
 */
export function headerMutation(edits: readonly HeaderEdit[]): PbHeaderMutation | undefined {
  const set: PbHeaderValueOption[] = [];
  const remove: string[] = [];
  for (let i = 0; i < edits.length; i++) {
    const e = edits[i] as HeaderEdit;
    const name = e.name.toLowerCase();
    if (e.op === 'remove') {
      if (!setLater(edits, i + 1, name)) remove.push(name);
      continue;
    }
    set.push({
      header: { key: name, raw_value: Buffer.from(e.value, 'latin1') },
      append_action: e.op === 'set' ? 'OVERWRITE_IF_EXISTS_OR_ADD' : 'APPEND_IF_EXISTS_OR_ADD',
      ...(e.value === '' ? { keep_empty_value: true } : {}),
    });
  }
  if (set.length === 0 && remove.length === 0) return undefined;
  return { ...(set.length > 0 ? { set_headers: set } : {}), ...(remove.length > 0 ? { remove_headers: remove } : {}) };
}

/** True when an edit from `from` on sets or adds `name` (lower-case). */
function setLater(edits: readonly HeaderEdit[], from: number, name: string): boolean {
  for (let j = from; j < edits.length; j++) {
    const later = edits[j] as HeaderEdit;
    if (later.op !== 'remove' && later.name.toLowerCase() === name) return true;
  }
  return false;
}

/** A JSON value that fits google.protobuf.Value. */
export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [k: string]: JsonValue };

/** A JSON value as google.protobuf.Value. */
export function pbValue(v: JsonValue): PbValue {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: (v as readonly JsonValue[]).map(pbValue) } };
  return { structValue: pbStruct(v as { readonly [k: string]: JsonValue }) };
}

/** A JSON object as google.protobuf.Struct. */
export function pbStruct(obj: { readonly [k: string]: JsonValue }): PbStruct {
  return { fields: Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, pbValue(v)])) };
}

/** google.protobuf.Value as JSON (depth-bounded: deeper values become null). */
export function jsonValue(v: PbValue | undefined, depth = 0): JsonValue {
  if (v === undefined || depth > 32) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.numberValue !== undefined) return v.numberValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.structValue !== undefined) return jsonObject(v.structValue, depth + 1);
  if (v.listValue !== undefined) return (v.listValue.values ?? []).map((x) => jsonValue(x, depth + 1));
  return null;
}

/** google.protobuf.Struct as a JSON object. */
export function jsonObject(s: PbStruct | undefined, depth = 0): { [k: string]: JsonValue } {
  const out: { [k: string]: JsonValue } = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = jsonValue(v, depth);
  return out;
}

/** Envoy's per-request metadata, namespace → JSON object (`envoy.lb`, `envoy.lb.subset_hint`, …). */
export type FilterMetadata = Readonly<Record<string, { readonly [k: string]: JsonValue }>>;

/** metadata_context as FilterMetadata. */
export function filterMetadata(m: PbMetadata | undefined): FilterMetadata {
  const out: Record<string, { [k: string]: JsonValue }> = {};
  for (const [ns, s] of Object.entries(m?.filter_metadata ?? {})) out[ns] = jsonObject(s);
  return out;
}
