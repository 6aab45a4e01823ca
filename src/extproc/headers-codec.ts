import type { BodySendMode, PbHeaderMap, PbHeaderMutation, PbHeaderValue, PbHeaderValueOption, PbHttpHeaders, PbMetadata, PbProtocolConfiguration, PbStruct, PbValue, ProcessingRequest, ProcessingResponse } from './messages.js';

/*
 * The picker's own codec for the header messages of every request: request_headers and
 * response_headers in (a HeaderMap, metadata_context, protocol_config), and the headers answers out
 * (a HeaderMutation, clear_route_cache, dynamic_metadata). protobufjs builds a message object, then
 * converts it (toObject, fromObject) at each level; these read and write the bytes directly,
 * giving the same objects and the same bytes. Anything outside that subset (an unknown or repeated
 * field, another wire type, a long varint, a non-ASCII string to write) returns undefined and
 * protobufjs handles the message, so no input is read differently. Field numbers: Envoy's
 * data-plane-api (envoy/service/ext_proc/v3/external_processor.proto, envoy/config/core/v3/base.proto,
 * processing_mode.proto) and google/protobuf/struct.proto.
 */

/** Thrown inside the decoder or encoder when protobufjs must handle the message; never escapes. */
const GIVE_UP = Symbol('give up');

/** ProcessingMode.BodySendMode by number. */
const BODY_SEND_MODES: readonly BodySendMode[] = ['NONE', 'STREAMED', 'BUFFERED', 'BUFFERED_PARTIAL', 'FULL_DUPLEX_STREAMED', 'GRPC'];

/** HeaderValueOption.HeaderAppendAction by name. */
const APPEND_ACTIONS: ReadonlyMap<unknown, number> = new Map([
  ['APPEND_IF_EXISTS_OR_ADD', 0],
  ['ADD_IF_ABSENT', 1],
  ['OVERWRITE_IF_EXISTS_OR_ADD', 2],
  ['OVERWRITE_IF_EXISTS', 3],
]);

/** Wire types. */
const VARINT = 0;
const I64 = 1;
const LEN = 2;

/** A position in a message's bytes; every read checks its bounds and gives up past them. */
class Reader {
  pos: number;
  constructor(
    readonly b: Buffer,
    pos: number,
  ) {
    this.pos = pos;
  }

  /** A varint below 2^28 (lengths, tags, booleans and enums here); longer ones give up. */
  varint(): number {
    const b = this.b;
    let value = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (this.pos >= b.length) throw GIVE_UP;
      const byte = b[this.pos++] as number;
      value |= (byte & 0x7f) << shift;
      if (byte < 0x80) return value;
    }
    throw GIVE_UP;
  }

  /** The end of a length-delimited field that starts here. */
  end(limit: number): number {
    const n = this.varint();
    const end = this.pos + n;
    if (end > limit) throw GIVE_UP;
    return end;
  }

  string(limit: number): string {
    const end = this.end(limit);
    const s = this.b.toString('utf8', this.pos, end);
    this.pos = end;
    return s;
  }

  /** A view of the bytes, or a fresh empty Buffer for an empty field, as protobufjs reads them. */
  bytes(limit: number): Buffer {
    const end = this.end(limit);
    const v = end === this.pos ? Buffer.alloc(0) : this.b.subarray(this.pos, end);
    this.pos = end;
    return v;
  }
}

/**
 * The next field's number, checked against `wire` (its expected wire type; any other number gives
 * up) and against `seen` (a bit per field number already read: a repeated field gives up, as the
 * fields here are read once). Returns the number; the caller adds its bit to `seen`.
 */
function fieldOf(r: Reader, wire: Readonly<Record<number, number>>, seen: number): number {
  const tag = r.varint();
  const field = tag >>> 3;
  if (wire[field] !== (tag & 7) || (seen & (1 << field)) !== 0) throw GIVE_UP;
  return field;
}

const REQUEST_WIRE: Readonly<Record<number, number>> = { 2: LEN, 3: LEN, 8: LEN, 10: VARINT, 11: LEN };
const HTTP_HEADERS_WIRE: Readonly<Record<number, number>> = { 1: LEN, 3: VARINT };
const HEADER_VALUE_WIRE: Readonly<Record<number, number>> = { 1: LEN, 2: LEN, 3: LEN };
const PROTOCOL_WIRE: Readonly<Record<number, number>> = { 1: VARINT, 2: VARINT, 3: VARINT };
const ENTRY_WIRE: Readonly<Record<number, number>> = { 1: LEN, 2: LEN };
const VALUE_WIRE: Readonly<Record<number, number>> = { 1: VARINT, 2: I64, 3: LEN, 4: VARINT, 5: LEN, 6: LEN };

/**
 * A ProcessingRequest carrying request_headers or response_headers (with metadata_context,
 * protocol_config, observability_mode beside it), decoded by hand into the object protobufjs
 * gives with proto.ts's options; undefined for anything else (protobufjs decodes it).
 */
export function decodeHeadersMessage(b: Buffer): ProcessingRequest | undefined {
  const first = b[0];
  // request_headers (2) or response_headers (3) first, as Envoy writes them; else protobufjs.
  if (first !== 0x12 && first !== 0x1a) return undefined;
  try {
    const r = new Reader(b, 0);
    const msg: ProcessingRequest = {};
    let seen = 0;
    while (r.pos < b.length) {
      const field = fieldOf(r, REQUEST_WIRE, seen);
      seen |= 1 << field;
      if (field === 2 || field === 3) {
        // One member of the oneof.
        if (msg.request !== undefined) throw GIVE_UP;
        const headers = httpHeaders(r, r.end(b.length));
        if (field === 2) {
          msg.request_headers = headers;
          msg.request = 'request_headers';
        } else {
          msg.response_headers = headers;
          msg.request = 'response_headers';
        }
      } else if (field === 8) msg.metadata_context = metadata(r, r.end(b.length));
      else if (field === 10) msg.observability_mode = r.varint() !== 0;
      else msg.protocol_config = protocolConfig(r, r.end(b.length));
    }
    return msg;
  } catch (err) {
    if (err === GIVE_UP) return undefined;
    throw err;
  }
}

function httpHeaders(r: Reader, end: number): PbHttpHeaders {
  const out: PbHttpHeaders = {};
  let seen = 0;
  while (r.pos < end) {
    const field = fieldOf(r, HTTP_HEADERS_WIRE, seen);
    seen |= 1 << field;
    if (field === 1) out.headers = headerMap(r, r.end(end));
    else out.end_of_stream = r.varint() !== 0;
  }
  if (r.pos !== end) throw GIVE_UP;
  return out;
}

function headerMap(r: Reader, end: number): PbHeaderMap {
  const list: PbHeaderValue[] = [];
  while (r.pos < end) {
    // HeaderMap has one field: repeated HeaderValue headers = 1.
    if (r.varint() !== 0x0a) throw GIVE_UP;
    const itemEnd = r.end(end);
    const h: PbHeaderValue = {};
    let seen = 0;
    while (r.pos < itemEnd) {
      const field = fieldOf(r, HEADER_VALUE_WIRE, seen);
      seen |= 1 << field;
      if (field === 1) h.key = r.string(itemEnd);
      else if (field === 2) h.value = r.string(itemEnd);
      else h.raw_value = r.bytes(itemEnd);
    }
    if (r.pos !== itemEnd) throw GIVE_UP;
    list.push(h);
  }
  if (r.pos !== end) throw GIVE_UP;
  // protobufjs leaves an empty repeated field out (defaults: false).
  return list.length === 0 ? {} : { headers: list };
}

function protocolConfig(r: Reader, end: number): PbProtocolConfiguration {
  const out: PbProtocolConfiguration = {};
  let seen = 0;
  while (r.pos < end) {
    const field = fieldOf(r, PROTOCOL_WIRE, seen);
    seen |= 1 << field;
    const v = r.varint();
    if (field === 3) out.send_body_without_waiting_for_header_response = v !== 0;
    else {
      const mode = BODY_SEND_MODES[v];
      // An enum number this subset does not name: protobufjs gives the number.
      if (mode === undefined) throw GIVE_UP;
      if (field === 1) out.request_body_mode = mode;
      else out.response_body_mode = mode;
    }
  }
  if (r.pos !== end) throw GIVE_UP;
  return out;
}

/** A map<string, T> entry's key and where its value starts, both required (protobufjs fills in defaults otherwise). */
function mapEntry<T>(r: Reader, end: number, value: (r: Reader, end: number) => T, into: Record<string, T>): void {
  const entryEnd = r.end(end);
  let key: string | undefined;
  let v: T | undefined;
  let seen = 0;
  while (r.pos < entryEnd) {
    const field = fieldOf(r, ENTRY_WIRE, seen);
    seen |= 1 << field;
    if (field === 1) key = r.string(entryEnd);
    else v = value(r, r.end(entryEnd));
  }
  if (r.pos !== entryEnd || key === undefined || v === undefined || key === '__proto__') throw GIVE_UP;
  into[key] = v;
}

function metadata(r: Reader, end: number): PbMetadata {
  const filter: Record<string, PbStruct> = {};
  let any = false;
  while (r.pos < end) {
    // Metadata's filter_metadata = 1 (map<string, Struct>); typed_filter_metadata is not in the subset.
    if (r.varint() !== 0x0a) throw GIVE_UP;
    mapEntry(r, end, struct, filter);
    any = true;
  }
  if (r.pos !== end) throw GIVE_UP;
  return any ? { filter_metadata: filter } : {};
}

function struct(r: Reader, end: number): PbStruct {
  const fields: Record<string, PbValue> = {};
  let any = false;
  while (r.pos < end) {
    if (r.varint() !== 0x0a) throw GIVE_UP;
    mapEntry(r, end, value, fields);
    any = true;
  }
  if (r.pos !== end) throw GIVE_UP;
  return any ? { fields } : {};
}

/** google.protobuf.Value with its one member and `kind` naming it, as protobufjs converts it. */
function value(r: Reader, end: number): PbValue {
  if (r.pos === end) return {};
  const field = fieldOf(r, VALUE_WIRE, 0);
  let out: PbValue;
  if (field === 1) {
    if (r.varint() !== 0) throw GIVE_UP;
    out = { nullValue: 'NULL_VALUE', kind: 'nullValue' };
  } else if (field === 2) {
    if (r.pos + 8 > end) throw GIVE_UP;
    out = { numberValue: r.b.readDoubleLE(r.pos), kind: 'numberValue' };
    r.pos += 8;
  } else if (field === 3) out = { stringValue: r.string(end), kind: 'stringValue' };
  else if (field === 4) out = { boolValue: r.varint() !== 0, kind: 'boolValue' };
  else if (field === 5) out = { structValue: struct(r, r.end(end)), kind: 'structValue' };
  else out = { listValue: list(r, r.end(end)), kind: 'listValue' };
  // A second member (or a second field of any kind): protobufjs decides.
  if (r.pos !== end) throw GIVE_UP;
  return out;
}

function list(r: Reader, end: number): { values?: PbValue[] } {
  const values: PbValue[] = [];
  while (r.pos < end) {
    if (r.varint() !== 0x0a) throw GIVE_UP;
    values.push(value(r, r.end(end)));
  }
  if (r.pos !== end) throw GIVE_UP;
  return values.length === 0 ? {} : { values };
}

/**
 * Bytes written into one scratch buffer (reused: encoding is synchronous), a length-delimited field
 * written before its length is known and its length put in front afterwards.
 */
class Writer {
  static #scratch = Buffer.allocUnsafe(4096);
  b = Writer.#scratch;
  pos = 0;

  #room(n: number): void {
    if (this.pos + n <= this.b.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.b.length * 2, this.pos + n));
    this.b.copy(bigger, 0, 0, this.pos);
    this.b = bigger;
    Writer.#scratch = bigger;
  }

  varint(n: number): void {
    this.#room(5);
    let v = n;
    while (v >= 0x80) {
      this.b[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.b[this.pos++] = v;
  }

  /** A tag, then the start of its length-delimited content (pass it to close()). */
  open(tag: number): number {
    this.varint(tag);
    this.#room(1);
    return ++this.pos;
  }

  /** Writes the length of the content started at `start` in front of it (one byte was kept for it). */
  close(start: number): void {
    const n = this.pos - start;
    let size = 1;
    for (let v = n; v >= 0x80; v >>>= 7) size++;
    if (size > 1) {
      this.#room(size - 1);
      this.b.copyWithin(start + size - 1, start, this.pos);
      this.pos += size - 1;
    }
    let at = start - 1;
    let v = n;
    while (v >= 0x80) {
      this.b[at++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.b[at] = v;
  }

  /**
   * An ASCII string (protobufjs writes UTF-8; any other string gives up, so no encoding can differ),
   * copied by this loop: the strings here are short, and a native write per string costs more.
   */
  string(tag: number, s: string): void {
    if (typeof s !== 'string') throw GIVE_UP;
    this.varint(tag);
    this.varint(s.length);
    this.#room(s.length);
    const b = this.b;
    let p = this.pos;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) throw GIVE_UP;
      b[p++] = c;
    }
    this.pos = p;
  }

  bytes(tag: number, v: Buffer): void {
    this.varint(tag);
    this.varint(v.length);
    this.#room(v.length);
    this.pos += v.copy(this.b, this.pos);
  }

  bool(tag: number, v: boolean): void {
    if (typeof v !== 'boolean') throw GIVE_UP;
    this.varint(tag);
    this.varint(v ? 1 : 0);
  }

  double(tag: number, v: number): void {
    if (typeof v !== 'number') throw GIVE_UP;
    this.varint(tag);
    this.#room(8);
    this.pos = this.b.writeDoubleLE(v, this.pos);
  }

  /** A copy of what was written. */
  done(): Buffer {
    return Buffer.from(this.b.subarray(0, this.pos));
  }
}

/** `o` is an object whose enumerable keys are all in `allowed`. */
function only(o: unknown, allowed: readonly string[]): void {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw GIVE_UP;
  for (const k in o) if (!allowed.includes(k)) throw GIVE_UP;
}

/** `v` as an array (protobufjs's fromObject rejects anything else). */
function items<T>(v: readonly T[] | undefined): readonly T[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw GIVE_UP;
  return v;
}

/**
 * The bytes of a headers answer, `{ request_headers | response_headers: { response: {
 * header_mutation?, clear_route_cache? } }, dynamic_metadata? }`, the same protobufjs writes (every
 * field present written, in field-number order; map entries in key order). Undefined for any
 * other answer or field (protobufjs encodes it).
 */
export function encodeHeadersAnswer(msg: ProcessingResponse): Buffer | undefined {
  const kind = msg.request_headers !== undefined ? 'request_headers' : msg.response_headers !== undefined ? 'response_headers' : undefined;
  if (kind === undefined) return undefined;
  const w = new Writer();
  try {
    only(msg, [kind, 'dynamic_metadata']);
    const answer = msg[kind] as object & { response?: object };
    only(answer, ['response']);
    // ProcessingResponse.request_headers 1, response_headers 2 (HeadersResponse); its response 1 (CommonResponse).
    const top = w.open(kind === 'request_headers' ? 0x0a : 0x12);
    if (answer.response !== undefined) {
      const common = answer.response as { header_mutation?: PbHeaderMutation; clear_route_cache?: boolean };
      only(common, ['header_mutation', 'clear_route_cache']);
      const at = w.open(0x0a);
      if (common.header_mutation !== undefined) headerMutation(w, common.header_mutation);
      if (common.clear_route_cache !== undefined) w.bool(0x28, common.clear_route_cache);
      w.close(at);
    }
    w.close(top);
    if (msg.dynamic_metadata !== undefined) structField(w, 0x42, msg.dynamic_metadata);
    return w.done();
  } catch (err) {
    if (err === GIVE_UP) return undefined;
    throw err;
  }
}

/** CommonResponse.header_mutation 2: set_headers 1 (HeaderValueOption), remove_headers 2. */
function headerMutation(w: Writer, m: PbHeaderMutation): void {
  only(m, ['set_headers', 'remove_headers']);
  const at = w.open(0x12);
  for (const o of items(m.set_headers)) headerValueOption(w, o);
  for (const name of items(m.remove_headers)) w.string(0x12, name);
  w.close(at);
}

/** HeaderValueOption: header 1 (key 1, raw_value 3), append_action 3, keep_empty_value 4. */
function headerValueOption(w: Writer, o: PbHeaderValueOption): void {
  only(o, ['header', 'append_action', 'keep_empty_value']);
  const at = w.open(0x0a);
  if (o.header !== undefined) {
    only(o.header, ['key', 'raw_value']);
    const h = w.open(0x0a);
    if (o.header.key !== undefined) w.string(0x0a, o.header.key);
    if (o.header.raw_value !== undefined) {
      if (!Buffer.isBuffer(o.header.raw_value)) throw GIVE_UP;
      w.bytes(0x1a, o.header.raw_value);
    }
    w.close(h);
  }
  if (o.append_action !== undefined) {
    const action = APPEND_ACTIONS.get(o.append_action);
    if (action === undefined) throw GIVE_UP;
    w.varint(0x18);
    w.varint(action);
  }
  if (o.keep_empty_value !== undefined) w.bool(0x20, o.keep_empty_value);
  w.close(at);
}

/** A google.protobuf.Struct field: fields 1, map<string, Value> entries (key 1, value 2). */
function structField(w: Writer, tag: number, s: PbStruct): void {
  only(s, ['fields']);
  const at = w.open(tag);
  if (s.fields !== undefined) {
    if (typeof s.fields !== 'object' || s.fields === null) throw GIVE_UP;
    for (const key of Object.keys(s.fields)) {
      const entry = w.open(0x0a);
      w.string(0x0a, key);
      valueField(w, 0x12, s.fields[key] as PbValue);
      w.close(entry);
    }
  }
  w.close(at);
}

/** google.protobuf.Value: null_value 1, number_value 2, string_value 3, bool_value 4, struct_value 5, list_value 6 (values 1). */
function valueField(w: Writer, tag: number, v: PbValue): void {
  only(v, ['nullValue', 'numberValue', 'stringValue', 'boolValue', 'structValue', 'listValue']);
  const at = w.open(tag);
  let members = 0;
  for (const k in v) {
    members++;
    if (k === 'nullValue') {
      if (v.nullValue !== 'NULL_VALUE' && v.nullValue !== 0) throw GIVE_UP;
      w.varint(0x08);
      w.varint(0);
    } else if (k === 'numberValue') w.double(0x11, v.numberValue as number);
    else if (k === 'stringValue') w.string(0x1a, v.stringValue as string);
    else if (k === 'boolValue') w.bool(0x20, v.boolValue as boolean);
    else if (k === 'structValue') structField(w, 0x2a, v.structValue as PbStruct);
    else if (k === 'listValue') {
      const l = v.listValue as { values?: PbValue[] };
      only(l, ['values']);
      const lat = w.open(0x32);
      for (const x of items(l.values)) valueField(w, 0x0a, x);
      w.close(lat);
    } else throw GIVE_UP;
  }
  // One member: protobufjs would write several in field order, which a loop over keys need not keep.
  if (members > 1) throw GIVE_UP;
  w.close(at);
}
